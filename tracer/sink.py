"""The event sink: records from the ring buffer, decoded, recorded and told to the observers."""
from __future__ import annotations

import ctypes
from collections.abc import Callable

from tracer.events import Decoder, Event
from tracer.observer import Observer
from tracer.record import RecordingWriter
from tracer.stacks import PathJoiner

DRAIN_EVERY = 2048          # events decoded between two drains of the ring buffer


class EventSink:
    """The ring buffer callback only copies the bytes out; they are decoded between polls,
    and the ring is drained again every DRAIN_EVERY events, so that a burst waits in user
    memory rather than overflowing the kernel's ring. Each event gets its kernel stack
    (PathJoiner) before it is recorded and shown."""

    def __init__(self, decoder: Decoder, observer: Observer, writer: RecordingWriter | None,
                 paths: PathJoiner | None = None) -> None:
        self.decoder = decoder
        self.observer = observer
        self.writer = writer
        self.paths = paths
        self.pending: list[bytes] = []
        self.count = 0

    def take(self, data: int, size: int) -> None:
        self.pending.append(ctypes.string_at(data, size))

    def decode_pending(self, drain: Callable[[], None]) -> None:
        batch, self.pending = self.pending, []
        for count, data in enumerate(batch, start=1):
            if count % DRAIN_EVERY == 0:
                drain()
            if self.paths is None:
                self._emit(self.decoder.decode(data))
                continue
            for event in self.paths.take(*self.decoder.decode_with_stack(data)):
                self._emit(event)
        for event in self.paths.batch_done() if self.paths else ():
            self._emit(event)

    def flush(self) -> None:
        """At the end: the events still waiting for their path go on without it."""
        for event in self.paths.flush() if self.paths else ():
            self._emit(event)

    def _emit(self, event: Event) -> None:
        self.count += 1
        if self.writer:
            self.writer.write_event(event)
        self.observer.event(event)
