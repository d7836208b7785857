"""The BPF ring buffer, read straight from its memory: many records per wake-up, one copy.

bcc's ring buffer API calls back into Python once per record through ctypes, which
costs more than the record is worth at a few hundred thousand events a second. The
kernel lets user space mmap the ring (kernel/bpf/ringbuf.c ringbuf_map_mmap_kern):
one read-write page with the consumer position, then one read-only page with the
producer position, then the data pages mapped twice in a row, so that a record that
wraps around the end reads as one piece. This module walks the records the way
libbpf's ringbuf_process_ring does and hands them over in blocks.
"""
from __future__ import annotations

import mmap
import select
import struct
from dataclasses import dataclass

PAGE = mmap.PAGESIZE
HEADER = 8                       # include/uapi/linux/bpf.h: BPF_RINGBUF_HDR_SZ
BUSY = 1 << 31                   # BPF_RINGBUF_BUSY_BIT: reserved, not yet committed
DISCARD = 1 << 30                # BPF_RINGBUF_DISCARD_BIT: the program gave it up
LENGTH = struct.Struct("<I")


def record_stride(size: int) -> int:
    """From one record's start to the next's: its header and itself, 8-aligned
    (kernel/bpf/ringbuf.c __bpf_ringbuf_reserve rounds the same way)."""
    return (size + HEADER + 7) & ~7


@dataclass(frozen=True)
class Block:
    """Records copied out of the ring in one piece: `data` and where each record starts."""

    data: bytes
    offsets: list[int]
    size: int                    # every record's length (the probes emit one fixed-size struct)


class RingReader:
    """The consumer side of one BPF_MAP_TYPE_RINGBUF map, given its fd and data size."""

    def __init__(self, map_fd: int, data_size: int) -> None:
        self.mask = data_size - 1
        self.data_size = data_size
        self.consumer = mmap.mmap(map_fd, PAGE, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE, offset=0)
        self.producer = mmap.mmap(map_fd, PAGE + 2 * data_size, mmap.MAP_SHARED, mmap.PROT_READ, offset=PAGE)
        self.data = memoryview(self.producer)[PAGE:]
        # Both positions are read and written with no lock on either side (kernel/bpf/ringbuf.c
        # __bpf_ringbuf_reserve reads ours): each must move in one 8-byte load or store, as an
        # item of a "Q" memoryview does. struct.pack_into wrote ours byte by byte, and a
        # reservation that read it half written saw a full ring: 130-400 refused in 2M
        # records, in bursts of up to 450 tries.
        self.consumer_word = memoryview(self.consumer).cast("Q")
        self.producer_word = memoryview(self.producer).cast("Q")
        self.position = self.consumer_word[0]
        self.poller = select.epoll()
        self.poller.register(map_fd, select.EPOLLIN)

    def wait(self, timeout_s: float) -> None:
        """Until the kernel says there is data (it may not, when probes submit without a
        wake-up: then the timeout is the pace)."""
        self.poller.poll(timeout_s)

    def read(self) -> Block | None:
        """Every committed record from the consumer position on, copied in one piece; the
        consumer position moves past them, which frees their room for the probes."""
        produced = self.producer_word[0]
        available = min(produced - self.position, self.data_size)
        if available <= 0:
            return None
        start = self.position & self.mask
        chunk = bytes(self.data[start:start + available])        # the double mapping: no wrap here
        offsets: list[int] = []
        size = 0
        walked = 0
        while walked + HEADER <= available:
            length = LENGTH.unpack_from(chunk, walked)[0]
            if length & BUSY:
                break                                             # committed records stop here
            record = length & ~(BUSY | DISCARD)
            if not length & DISCARD:
                offsets.append(walked + HEADER)
                size = record
            walked += record_stride(record)
        if not walked:
            return None
        self.position += walked
        self.consumer_word[0] = self.position
        return Block(chunk, offsets, size) if offsets else None

    def close(self) -> None:
        self.poller.close()
        self.consumer_word.release()
        self.producer_word.release()
        self.data.release()
        self.producer.close()
        self.consumer.close()
