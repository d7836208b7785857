"""The bridge between a session (or a replay) running in a worker thread and the explorer.

The worker tells the Feed what happens; the Feed keeps the findings model up to date and
a bounded window of the latest events, under one lock; the explorer reads them on its
own clock. Memory stays bounded: the window holds WINDOW events, older ones are counted
(the findings model and the recording have them all).
"""
from __future__ import annotations

import signal
import threading
from collections import deque
from dataclasses import dataclass
from typing import Any

from tracer.errors import Interrupted
from tracer.events import Event
from tracer.findings import Findings
from tracer.observer import Observer, OutputLine

WINDOW = 10_000


@dataclass(frozen=True)
class Pause:
    role: str
    next_step: str
    how: str


class Feed(Observer):
    def __init__(self, findings: Findings, window: int = WINDOW) -> None:
        self.findings = findings
        self.lock = threading.Lock()
        self.window: deque[tuple[int, Event]] = deque(maxlen=window)
        self.count = 0
        self.outputs: deque[str] = deque(maxlen=200)
        self.pause: Pause | None = None
        self.done: tuple[int, int] | None = None       # (lost, exit code)
        self.waiting = 0                                # events left to decode after the program ended
        self.go_on = threading.Event()                  # the explorer releases a pause
        self.stop_signal: int | None = None             # the explorer asks the session to end
        self.failed: BaseException | None = None        # the work ended with this error

    # told by the worker thread
    def started(self, header: dict[str, Any]) -> None:
        with self.lock:
            self.findings.started(header)

    def event(self, event: Event) -> None:
        with self.lock:
            self.findings.event(event)
            self.count += 1
            self.window.append((self.count, event))

    def output(self, line: OutputLine) -> None:
        with self.lock:
            self.findings.output(line)
            shown = line.shown()
            if shown is not None:
                self.outputs.append(shown)

    def paused(self, role: str, next_step: str, how: str) -> None:
        self.go_on.clear()
        with self.lock:
            self.pause = Pause(role, next_step, how)

    def catching_up(self, waiting: int) -> None:
        with self.lock:
            self.waiting = waiting

    def tick(self) -> None:
        if self.stop_signal is not None:
            raise Interrupted(self.stop_signal)

    def finished(self, lost: int, exit_code: int, lost_steps: dict[str, int] | None = None) -> None:
        with self.lock:
            self.findings.finished(lost, exit_code, lost_steps)
            self.done = (lost, exit_code)
            self.pause = None

    def ready(self) -> bool:
        """Pacing asks: may the scenario go on? (a key in the explorer, or the session ends)"""
        return self.go_on.is_set() or self.stop_signal is not None

    def resumed(self) -> None:
        with self.lock:
            self.pause = None

    # told by the explorer
    def release(self) -> None:
        self.go_on.set()

    def stop(self, signum: int = signal.SIGINT) -> None:
        self.stop_signal = signum
        self.go_on.set()

    def since(self, seen: int) -> tuple[list[tuple[int, Event]], bool]:
        """Events after number `seen`, and whether some fell out of the window before being read."""
        with self.lock:
            fresh = []
            for item in reversed(self.window):
                if item[0] <= seen:
                    break
                fresh.append(item)
            fresh.reverse()
            missed = bool(fresh) and fresh[0][0] > seen + 1
        return fresh, missed

    def snapshot(self) -> list[Event]:
        with self.lock:
            return [event for _, event in self.window]
