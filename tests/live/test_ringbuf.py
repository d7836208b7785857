"""The ring reader against the kernel's ring buffer: a reservation is refused only when the
ring is full (tracer/ringbuf.py RingReader, kernel/bpf/ringbuf.c __bpf_ringbuf_reserve)."""
from __future__ import annotations

import ctypes
import subprocess
import sys
import threading
import time

RECORD = 256
RING_PAGES = 4096
CALLS = 3_000_000

# Each refusal is told apart by the ring's fill at that moment: the bytes reserved, less the
# bytes the reader has taken (which it publishes after each take, so the fill seen is never
# below the true one). A refusal below half the ring cannot be a full ring.
PRODUCER = r"""
BPF_RINGBUF_OUTPUT(records, RING_PAGES);
BPF_ARRAY(producer, u32, 1);
BPF_ARRAY(counts, u64, 4);          /* reserved bytes, taken bytes, refusals, refusals with room */

static __always_inline u64 *count(int index)
{
    return counts.lookup(&index);
}

TRACEPOINT_PROBE(syscalls, sys_enter_getppid)
{
    int zero = 0;
    u32 *tgid = producer.lookup(&zero);
    u64 *reserved = count(0), *taken = count(1), *refused = count(2), *with_room = count(3);
    if (!tgid || *tgid != bpf_get_current_pid_tgid() >> 32 || !reserved || !taken || !refused || !with_room)
        return 0;
    char *record = records.ringbuf_reserve(RECORD);
    if (record) {
        __builtin_memset(record, 0, RECORD);
        records.ringbuf_submit(record, BPF_RB_NO_WAKEUP);
        __sync_fetch_and_add(reserved, RECORD + 8);
        return 0;
    }
    __sync_fetch_and_add(refused, 1);
    if (*reserved - *taken < RING_PAGES * 4096 / 2)
        __sync_fetch_and_add(with_room, 1);
    return 0;
}
"""


def test_the_kernel_refuses_no_record_while_the_ring_has_room() -> None:
    from tracer import kernel
    from tracer.ringbuf import PAGE, RingReader

    kernel.use_headers()
    from bcc import BPF

    bpf = BPF(text=PRODUCER.encode(), cflags=[f"-DRING_PAGES={RING_PAGES}", f"-DRECORD={RECORD}"])
    reader = RingReader(bpf[b"records"].map_fd, RING_PAGES * PAGE)
    counts = bpf[b"counts"]
    start = reader.position
    taken = 0
    loop = subprocess.Popen([sys.executable, "-c", f"import os, sys\nsys.stdin.read(1)\n"
                             f"for _ in range({CALLS}): os.getppid()"], stdin=subprocess.PIPE)
    bpf[b"producer"][ctypes.c_int(0)] = ctypes.c_uint32(loop.pid)
    running = True

    def take() -> None:          # many small takes: every one moves the position the kernel reads
        nonlocal taken
        while running:
            while (block := reader.read()) is not None:
                taken += len(block.offsets)
            counts[ctypes.c_int(1)] = ctypes.c_uint64(reader.position - start)
            time.sleep(0.0002)

    taker = threading.Thread(target=take)
    taker.start()
    try:
        assert loop.stdin is not None
        loop.stdin.write(b"go")
        loop.stdin.close()
        assert loop.wait(timeout=120) == 0
    finally:
        running = False
        taker.join()
    while (block := reader.read()) is not None:
        taken += len(block.offsets)
    reader.close()
    refused, with_room = counts[ctypes.c_int(2)].value, counts[ctypes.c_int(3)].value
    bpf.cleanup()
    assert (with_room, taken + refused) == (0, CALLS), (with_room, refused, taken)
