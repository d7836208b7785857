"""The event sink: records from the ring buffer, decoded, recorded and told to the observers.

Taking records out of the kernel's ring and decoding them are two jobs. Taking is
cheap (a block copy) and must keep up with the probes, or the ring overflows and
events are lost. Decoding, recording and showing cost microseconds an event and may
fall behind in a burst: the records wait in a spool, in memory up to SPOOL_MEMORY
bytes, then in an unlinked temporary file, so a burst costs disk, not memory, and
nothing is dropped. Decoding works in time slices between two takes.
"""
from __future__ import annotations

import array
import ctypes
import struct
import tempfile
import time
from collections import deque
from collections.abc import Callable
from typing import IO

from tracer.events import STEP_OFFSET, STEP_SIZE, TWIN_OFFSET, Decoder, Event
from tracer.observer import Observer
from tracer.pages import PageWatch
from tracer.recording import RecordingWriter
from tracer.ringbuf import Block, record_stride
from tracer.stacks import PathJoiner

SPOOL_MEMORY = 16 << 20         # bytes of undecoded records kept in memory (~75k events) before spilling to disk
SPILL_HEADER = struct.Struct("<III")   # data bytes, record size, record count
DECODE_BATCH = 256              # records decoded between two looks at the kernel's ring
READ_AHEAD_RECORDS = 2048       # records the page watch may read ahead of the decoder (~20 ms of work)


def events_in(block: Block, first: int = 0) -> int:
    """The events the block's records from its `first` on stand for: one each, two for a
    record with a twin (probes/event.h). Records lie in the ring (and so in the block) one
    size apart, so every record's twin byte is one slice, read without a Python loop."""
    if first >= len(block.offsets):
        return 0
    twins = block.data[block.offsets[first] + TWIN_OFFSET:block.offsets[-1] + TWIN_OFFSET + 1:
                       record_stride(block.size)]
    return len(block.offsets) - first + len(twins) - twins.count(0)


class Spool:
    """Blocks of records, first in first out: in memory, then on disk past SPOOL_MEMORY.
    `events` counts what the records stand for."""

    def __init__(self, memory_limit: int = SPOOL_MEMORY) -> None:
        self.memory: deque[Block] = deque()
        self.memory_bytes = 0
        self.memory_limit = memory_limit
        self.disk: IO[bytes] | None = None
        self.disk_read = 0
        self.disk_write = 0
        self.events = 0

    def put(self, block: Block) -> None:
        self.events += events_in(block)
        if self.disk_write > self.disk_read or self.memory_bytes + len(block.data) > self.memory_limit:
            self._spill(block)
        else:
            self.memory.append(block)
            self.memory_bytes += len(block.data)

    def _spill(self, block: Block) -> None:
        if self.disk is None:
            self.disk = tempfile.TemporaryFile(prefix="syspath-spool-")     # noqa: SIM115 (closed by close())
        offsets = array.array("I", block.offsets).tobytes()
        self.disk.seek(self.disk_write)
        self.disk.write(SPILL_HEADER.pack(len(block.data), block.size, len(block.offsets)) + offsets + block.data)
        self.disk_write = self.disk.tell()

    def get(self) -> Block | None:
        if self.memory:
            block = self.memory.popleft()
            self.memory_bytes -= len(block.data)
        elif self.disk is not None and self.disk_read < self.disk_write:
            block = self._unspill()
        else:
            return None
        self.events -= events_in(block)
        return block

    def _unspill(self) -> Block:
        assert self.disk is not None
        self.disk.seek(self.disk_read)
        length, size, count = SPILL_HEADER.unpack(self.disk.read(SPILL_HEADER.size))
        offsets = array.array("I")
        offsets.frombytes(self.disk.read(4 * count))
        data = self.disk.read(length)
        self.disk_read = self.disk.tell()
        if self.disk_read == self.disk_write:          # caught up: start the file over
            self.disk.seek(0)
            self.disk.truncate()
            self.disk_read = self.disk_write = 0
        return Block(data, offsets.tolist(), size)

    def close(self) -> None:
        if self.disk is not None:
            self.disk.close()


class PageReadAhead:
    """Finds, in records not decoded yet, the steps the page watch follows (mappings, files
    passed), and tells it of them: decoded without symbols, which may still be loading."""

    def __init__(self, decoder: Decoder, pages: PageWatch) -> None:
        self.decoder = decoder.without_symbols()
        self.pages = pages
        self.step_ids = {step_id for step_id, name in enumerate(decoder.step_names) if name in pages.steps.followed}

    def read(self, block: Block, most: int) -> int:
        """Tells the page watch of at most `most` of the block's records; returns how many."""
        data, step_ids, told = block.data, self.step_ids, 0
        for offset in block.offsets:
            if told >= most:
                break
            if int.from_bytes(data[offset + STEP_OFFSET:offset + STEP_OFFSET + STEP_SIZE], "little") in step_ids:
                self.pages.read_ahead(self.decoder.decode(memoryview(data)[offset:offset + block.size]))
                told += 1
        return told


class EventSink:
    """Takes records as blocks (ring buffer) or one by one (perf buffer callback), and
    decodes them in time slices: each event gets its kernel stack (PathJoiner), then is
    recorded and told to the observers."""

    def __init__(self, decoder: Decoder, observer: Observer, writer: RecordingWriter | None,
                 paths: PathJoiner | None = None, pages: PageWatch | None = None) -> None:
        self.decoder = decoder
        self.pages = pages
        self.observer = observer
        self.writer = writer
        self.paths = paths
        self.spool = Spool()
        self.count = 0
        self.current: Block | None = None
        self.next_record = 0
        self.decoded_once = False
        self.ahead = PageReadAhead(decoder, pages) if pages else None
        self.ahead_budget = READ_AHEAD_RECORDS

    def take_block(self, block: Block) -> None:
        self._read_ahead(block)
        self.spool.put(block)

    def take(self, data: int, size: int) -> None:
        """A perf buffer callback's record (kernels without the BPF ring buffer)."""
        self.take_block(Block(ctypes.string_at(data, size), [0], size))

    def _read_ahead(self, block: Block) -> None:
        """Records taken before the first decode, while the kernel symbols load: the page watch
        reads the mappings in them now, while their processes live. Only then, and only so
        many: decoding twice in the take would slow it below the probes' pace (a backlog
        read ahead lost 4,595 of 160k events in the one-process loop)."""
        if self.ahead is not None and not self.decoded_once and self.ahead_budget > 0:
            self.ahead_budget -= self.ahead.read(block, self.ahead_budget)

    @property
    def backlog(self) -> int:
        """Events taken but not decoded yet."""
        pending = events_in(self.current, self.next_record) if self.current else 0
        return self.spool.events + pending

    def decode(self, budget_s: float | None = None, take: Callable[[], None] = lambda: None) -> None:
        """Decode what waits, for at most budget_s seconds (None: all of it), calling `take`
        between two small batches so that the kernel's ring is emptied meanwhile."""
        deadline = None if budget_s is None else time.monotonic() + budget_s
        self.decoded_once = True
        while True:
            if self.current is None or self.next_record >= len(self.current.offsets):
                self.current, self.next_record = self.spool.get(), 0
                if self.current is None:
                    break
            self._decode_some(self.current, DECODE_BATCH)
            take()
            if deadline is not None and time.monotonic() >= deadline:
                break
        for event in self.paths.batch_done() if self.paths else ():
            self._emit(event)

    def _decode_some(self, block: Block, most: int) -> None:
        view = memoryview(block.data)
        size = block.size
        first = self.next_record
        last = min(first + most, len(block.offsets))
        for offset in block.offsets[first:last]:
            # counted as decoded before it is: a stop (Ctrl-C, SIGTERM: an exception raised
            # anywhere in here) then leaves the rest of the batch to the backlog, not lost
            self.next_record += 1
            event, stack_id, twin = self.decoder.decode_with_stack(view[offset:offset + size])
            if twin is not None:
                self._with_path(twin, stack_id)
            self._with_path(event, stack_id)

    def _with_path(self, event: Event, stack_id: int) -> None:
        if self.paths is None:
            self._emit(event)
            return
        for ready in self.paths.take(event, stack_id):
            self._emit(ready)

    def flush(self) -> None:
        """At the end: the events still waiting for their path go on without it."""
        for event in self.paths.flush() if self.paths else ():
            self._emit(event)

    def look_at_pages(self) -> None:
        """The frames behind the watched mappings, as `page` events (tracer/pages.py)."""
        for event in self.pages.look() if self.pages else ():
            self._emit(event)

    def _emit(self, event: Event) -> None:
        if self.pages:
            self.pages.note(event)
        self.count += 1
        if self.writer:
            self.writer.write_event(event)
        self.observer.event(event)

    def close(self) -> None:
        self.spool.close()
