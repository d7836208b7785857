"""The floor under syspath's overhead in the benchmark's loops (bench/run.py runs it).

    floor.py hooks -- COMMAND...     syspath's hooks and its process-tree filter, nothing sent
    floor.py records -- COMMAND...   the same, plus as many records as syspath sends, in the
                                     same places, through the probes' own event path
                                     (probes/common.h): nothing read from the kernel's
                                     objects, no stacks

What separates `records` from syspath is what syspath reads and shows; what separates it
from the untraced loop is the cost of sending that many records at all. No design that
sends syspath's records can be cheaper than `records`.

The hooks are those of syspath's syscall tier for memfd-share (probes/memfd_share/syscall.bpf.c,
probes/memfd_share/paths.bpf.c). The command starts once its pid is in the filter, like syspath's gate.
"""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tracer import kernel
from tracer.loader import program_text, ring_pages, track_thread
from tracer.offsets import load_layout
from tracer.ringbuf import PAGE, RingReader
from tracer.session import POLL_S

# after probes/common.h: its maps (the ring, `tracked`), filter and event path, without stacks
PROGRAM = r"""
#ifndef AF_UNIX
#define AF_UNIX 1               /* include/linux/socket.h */
#endif
BPF_PERCPU_ARRAY(files_sent, u8, 1);      /* the sendmsg under way passes files: its skb carries them */

/* What a probe does to send an event (common.h new_event, submit_with_stack), without
 * the probe's reads: the step is only a number here. */
static __always_inline void send(void *ctx)
{
#ifdef RECORDS
    struct syspath_event *e = new_event(0);
    if (e)
        submit_with_stack(ctx, e, -1);
#endif
}

TRACEPOINT_PROBE(syscalls, sys_exit_memfd_create)
{
    if (args->ret >= 0 && is_tracked())
        send(args);
    return 0;
}

/* every mmap: the loops map only files (syspath skips anonymous maps, of which the loader
 * makes a few at the start) */
TRACEPOINT_PROBE(syscalls, sys_exit_mmap)
{
    if (is_tracked())
        send(args);
    return 0;
}

/* syspath sends one passed-file record per fd, and an in-flight one only for an skb with files:
 * here, one of each for a message with control data (the loops pass one fd at a time) */
TRACEPOINT_PROBE(syscalls, sys_enter_sendmsg)
{
    u64 control_length = 0;
    int zero = 0;
    u8 *files = files_sent.lookup(&zero);
    if (!files || !is_tracked())
        return 0;
    bpf_probe_read_user(&control_length, sizeof(control_length), (void *)((u64)args->msg + MSGHDR_CONTROLLEN));
    send(args);
    *files = control_length > 0;
    if (*files)
        send(args);
    return 0;
}

TRACEPOINT_PROBE(syscalls, sys_exit_recvmsg)
{
    if (args->ret >= 0 && is_tracked())
        send(args);
    return 0;
}

TRACEPOINT_PROBE(sock, sk_data_ready)
{
    int zero = 0;
    u8 *files = files_sent.lookup(&zero);
    if (args->family != AF_UNIX || !files || !is_tracked())
        return 0;
    if (*files)
        send(args);
    *files = 0;
    return 0;
}

/* path points: in a loop their stacks are sampled out, and they send nothing */
#ifdef HAVE_VM_UNMAPPED_AREA
RAW_TRACEPOINT_PROBE(vm_unmapped_area) { is_tracked(); return 0; }
#endif
#ifdef HAVE_SKB_COPY_DATAGRAM_IOVEC
RAW_TRACEPOINT_PROBE(skb_copy_datagram_iovec) { is_tracked(); return 0; }
#endif

/* inside the steps (probes/memfd_share): kmem:kmem_cache_alloc fires for every slab object, and
 * syspath asks the process tree first; a fault on a memfd mapping (exceptions:page_fault_user)
 * that allocates a page (kmem:mm_page_alloc) is one record: the loops touch each new memfd once */
#ifdef HAVE_KMEM_CACHE_ALLOC
RAW_TRACEPOINT_PROBE(kmem_cache_alloc) { is_tracked(); return 0; }
#endif
#if defined(HAVE_PAGE_FAULT_USER) && defined(HAVE_MM_PAGE_ALLOC)
BPF_PERCPU_ARRAY(fault_seen, u8, 1);

RAW_TRACEPOINT_PROBE(page_fault_user)
{
    int zero = 0;
    u8 *seen = fault_seen.lookup(&zero);
    if (seen && is_tracked())
        *seen = 1;
    return 0;
}

TRACEPOINT_PROBE(kmem, mm_page_alloc)
{
    int zero = 0;
    u8 *seen = fault_seen.lookup(&zero);
    if (!seen || !is_tracked() || !*seen)
        return 0;
    if (args->gfp_flags & 0x8)            /* ___GFP_MOVABLE: user data, not a page table */
        send(args);
    *seen = 0;
    return 0;
}
#endif

/* the roundtrip loop forks its receiver */
RAW_TRACEPOINT_PROBE(sched_process_fork)
{
    u32 child = 0;
    if (!is_tracked())
        return 0;
    READ_KERNEL(child, ctx->args[1], TASK_PID);
    track_child(child);
    return 0;
}
"""

TRACEFS_EVENTS = (Path("/sys/kernel/tracing/events"), Path("/sys/kernel/debug/tracing/events"))


def has_tracepoint(group: str, name: str) -> bool:
    return any((events / group / name).is_dir() for events in TRACEFS_EVENTS)


def cflags(records: bool) -> list[str]:
    """common.h's fields at this kernel's offsets, read by helper calls (no kfunc rewriting here)."""
    flags = [*load_layout().cflags(), f"-DRINGBUF_PAGES={ring_pages()}", "-DSYSPATH_NO_STACKS"]
    flags += ["-DRECORDS"] if records else []
    flags += ["-DHAVE_VM_UNMAPPED_AREA"] if has_tracepoint("mmap", "vm_unmapped_area") else []
    flags += ["-DHAVE_SKB_COPY_DATAGRAM_IOVEC"] if has_tracepoint("skb", "skb_copy_datagram_iovec") else []
    flags += [f"-DHAVE_{name.upper()}" for group, name in (("kmem", "kmem_cache_alloc"), ("kmem", "mm_page_alloc"),
                                                          ("exceptions", "page_fault_user"))
              if has_tracepoint(group, name)]
    return flags


def run(records: bool, command: list[str]) -> int:
    kernel.use_headers()
    from bcc import BPF

    bpf = BPF(text=program_text(["common.h"]) + PROGRAM, cflags=cflags(records))
    reader = RingReader(bpf["events"].map_fd, ring_pages() * PAGE)
    gate_read, gate_write = os.pipe()
    child = os.fork()
    if child == 0:
        os.read(gate_read, 1)
        try:
            os.execvp(command[0], command)
        except OSError as error:
            print(f"floor: cannot run {command[0]}: {error.strerror}", file=sys.stderr)
        os._exit(127)
    track_thread(bpf["tracked"].map_fd, child)
    os.write(gate_write, b"go")
    taken = 0
    while True:
        finished, status = os.waitpid(child, os.WNOHANG)
        while (block := reader.read()) is not None:
            taken += len(block.offsets)
        if finished:
            break
        time.sleep(POLL_S)
    print(f"floor: {taken} records taken", file=sys.stderr)
    return os.waitstatus_to_exitcode(status)


def main(argv: list[str]) -> int:
    if len(argv) < 4 or argv[1] not in ("hooks", "records") or argv[2] != "--":
        print(__doc__, file=sys.stderr)
        return 2
    return run(argv[1] == "records", argv[3:])


if __name__ == "__main__":
    sys.exit(main(sys.argv))
