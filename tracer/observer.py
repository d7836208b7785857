"""What a running (or replayed) session tells the views: no kernel, no bcc here."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from tracer.events import Event


@dataclass
class OutputLine:
    """A line the traced program printed; scenarios print JSON {"role", "say", ...}.
    `ts_ns` is when syspath read it, on the events' clock (CLOCK_MONOTONIC: the probes'
    bpf_ktime_get_ns); `pid` is the process it is told of (the session sets it)."""

    stream: str
    text: str
    report: dict[str, Any] | None = None
    ts_ns: int = field(default_factory=time.monotonic_ns)
    pid: int | None = None

    @property
    def role(self) -> str:
        """Who said it: the report's role, else the stream the line came on."""
        role = self.report.get("role") if self.report else None
        return role if isinstance(role, str) else self.stream

    def shown(self) -> str | None:
        """The line as the views print it (None: step mode's pause announcements)."""
        if self.report and "pause" in self.report:
            return None
        if self.report and "say" in self.report:
            return f"{self.report.get('role', '?')}: {self.report['say']}"
        return f"{self.stream}: {self.text}"


class Observer:
    """What a view gets told while a session runs or a recording plays."""

    def started(self, header: dict[str, Any]) -> None: ...
    def event(self, event: Event) -> None: ...
    def output(self, line: OutputLine) -> None: ...
    def tick(self) -> None: ...
    def catching_up(self, waiting: int) -> None:
        """The traced program has ended with `waiting` of its events taken from the kernel but
        not decoded yet (a burst outruns decoding); told again as they go down, 0 at the end."""
    def paused(self, role: str, next_step: str, how: str) -> None: ...
    def finished(self, lost: int, exit_code: int, lost_steps: dict[str, int] | None = None) -> None: ...


class Observers(Observer):
    """Several observers told the same things, in order."""

    def __init__(self, *observers: Observer) -> None:
        self.observers = observers

    def started(self, header: dict[str, Any]) -> None:
        for observer in self.observers:
            observer.started(header)

    def event(self, event: Event) -> None:
        for observer in self.observers:
            observer.event(event)

    def output(self, line: OutputLine) -> None:
        for observer in self.observers:
            observer.output(line)

    def tick(self) -> None:
        for observer in self.observers:
            observer.tick()

    def catching_up(self, waiting: int) -> None:
        for observer in self.observers:
            observer.catching_up(waiting)

    def paused(self, role: str, next_step: str, how: str) -> None:
        for observer in self.observers:
            observer.paused(role, next_step, how)

    def finished(self, lost: int, exit_code: int, lost_steps: dict[str, int] | None = None) -> None:
        for observer in self.observers:
            observer.finished(lost, exit_code, lost_steps)
