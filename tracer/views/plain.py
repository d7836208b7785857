"""--no-live: the same information as plain lines, for pipes and CI."""
from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any, TextIO

from tracer.events import Event, in_call_order
from tracer.findings import shared_files
from tracer.session import Observer, SessionResult
from tracer.views.follow import life_story_lines
from tracer.views.narration import first_narrations
from tracer.views.summary import conclusion_lines
from tracer.views.timeline import TIMELINE_COLUMNS, timeline_row


def narration_lines(events: Sequence[Event], header: dict[str, Any]) -> list[str]:
    return [f"why {event.step} in {event.comm}: {text} [{where}]"
            for event, where, text in first_narrations(events, header)]


def print_plain(header: dict[str, Any], events: list[Event], output: list[str], lost: int,
                stream: TextIO, reports: Sequence[dict[str, Any]] = (), follow: bool = False) -> None:
    def say(line: str = "") -> None:
        stream.write(line + "\n")

    say(f"syspath: kernel {header.get('kernel')}, mode {header.get('mode')}, "
        f"{header.get('scenario') or ' '.join(header.get('command') or [])}")
    for hook in header.get("hooks", []):
        say(f"hook {hook['step']}: {hook['hook'] or '-'} [{hook['status']}] {hook['reason']}")
    say()
    say("\t".join(TIMELINE_COLUMNS))
    for event in in_call_order(events):
        say("\t".join(timeline_row(event, header["started_ns"])))
    say()
    for line in output:
        say(f"program: {line}")
    for line in narration_lines(events, header):
        say(line)
    if follow:
        for line in life_story_lines(events, header["started_ns"]):
            say(line)
    for line in conclusion_lines(shared_files(events), events, lost, reports):
        say(line)
    say(f"{len(events)} events, {lost} lost")


class PlainStepView(Observer):
    """--no-live with --step/--pace: each step's kernel events as lines, as the scenario pauses."""

    def __init__(self, stream: TextIO = sys.stdout) -> None:
        self.stream = stream
        self.result: SessionResult | None = None
        self.step_began = 0

    def started(self, result: SessionResult) -> None:
        self.result = result

    def paused(self, role: str, next_step: str, how: str) -> None:
        assert self.result is not None
        for event in in_call_order(self.result.events[self.step_began:]):
            self.stream.write("\t".join(timeline_row(event, self.result.header["started_ns"])) + "\n")
        self.step_began = len(self.result.events)
        self.stream.write(f"--- next, in the {role}: {next_step} ({how})\n")
        self.stream.flush()
