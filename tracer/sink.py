"""The event sink: records from the ring buffer, decoded, recorded and told to the observers."""
from __future__ import annotations

import ctypes
from collections.abc import Callable

from tracer.events import Decoder
from tracer.observer import Observer
from tracer.record import RecordingWriter

DRAIN_EVERY = 2048          # events decoded between two drains of the ring buffer


class EventSink:
    """The ring buffer callback only copies the bytes out; they are decoded between polls,
    and the ring is drained again every DRAIN_EVERY events, so that a burst waits in user
    memory rather than overflowing the kernel's ring."""

    def __init__(self, decoder: Decoder, observer: Observer, writer: RecordingWriter | None) -> None:
        self.decoder = decoder
        self.observer = observer
        self.writer = writer
        self.pending: list[bytes] = []
        self.count = 0

    def take(self, data: int, size: int) -> None:
        self.pending.append(ctypes.string_at(data, size))

    def decode_pending(self, drain: Callable[[], None]) -> None:
        batch, self.pending = self.pending, []
        for count, data in enumerate(batch, start=1):
            if count % DRAIN_EVERY == 0:
                drain()
            event = self.decoder.decode(data)
            self.count += 1
            if self.writer:
                self.writer.write_event(event)
            self.observer.event(event)
