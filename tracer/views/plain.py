"""--no-live: the same information as plain lines, for pipes and CI.

Event rows are written as they come (in call order, within a short reordering
window), so a long trace prints everything without keeping it in memory."""
from __future__ import annotations

import sys
import textwrap
from collections.abc import Sequence
from typing import Any, TextIO

from tracer.events import CallOrder, Event
from tracer.findings import Findings
from tracer.observer import Observer
from tracer.views.hooks import hook_line, kernel_line
from tracer.views.narration import first_narrations
from tracer.views.path import path_legend_lines, path_lines
from tracer.views.summary import conclusion_lines
from tracer.views.timeline import TIMELINE_COLUMNS, timeline_row

# A tail this long takes a second or more to decode: said once on stderr, so that a
# syspath still busy after its program ended says why
CATCH_UP_NOTICE = 20_000


def narration_lines(events: Sequence[Event], header: dict[str, Any]) -> list[str]:
    return [f"why {event.step} in {event.comm}: {text} [{where}]"
            for event, where, text in first_narrations(events, header)]


def header_lines(header: dict[str, Any]) -> list[str]:
    lines = [f"syspath: kernel {header.get('kernel')}, mode {header.get('mode')}, "
             f"{header.get('scenario') or ' '.join(header.get('command') or [])}",
             f"kernel: {kernel_line(header)}"]
    lines += [f"hook {line.step}: {line.hook} [{line.status}] {line.reads}"
              for line in map(hook_line, header.get("hooks", []))]
    return [*lines, "", "\t".join(TIMELINE_COLUMNS)]


def closing_lines(findings: Findings, follow: bool) -> list[str]:
    lines = [""] + [f"program: {line}" for line in findings.output_lines]
    if findings.output_dropped:
        lines.append(f"program: ... {findings.output_dropped} more lines not kept")
    lines += narration_lines(findings.first_events_by_step(), findings.header)
    lines += path_lines(findings.paths, findings.header)
    lines += path_legend_lines(findings.paths, findings.header)
    if follow:
        lines += findings.follow_lines()
    lines += conclusion_lines(findings)
    return lines + folded_lines(findings) + [f"{findings.events} events, {findings.lost} lost"]


def folded_lines(findings: Findings) -> list[str]:
    """What the lessons folded away from the rows, each in its own words."""
    return [f"{note}: in the recording, not in the rows above" for note in findings.folded_notes()]


def fitted(lines: Sequence[str], width: int | None) -> list[str]:
    """Prose lines folded at spaces to `width` (a terminal's), continued two columns deeper than
    they began; no word is split, so an address or a path stays whole. None: one line each, for
    pipes and grep."""
    if width is None:
        return list(lines)
    out: list[str] = []
    for line in lines:
        if len(line) <= width or "\t" in line:
            out.append(line)
            continue
        indent = line[:len(line) - len(line.lstrip(" "))]
        out += textwrap.wrap(line, width, subsequent_indent=indent + "  ", break_long_words=False,
                             break_on_hyphens=False) or [line]
    return out


class PlainView(Observer):
    """The header first, then each event as a row, then what they prove. In step mode,
    the rows of each step are written when the scenario pauses before the next one."""

    def __init__(self, findings: Findings, stream: TextIO = sys.stdout, follow: bool = False,
                 notes: TextIO = sys.stderr, width: int | None = None) -> None:
        self.findings = findings
        self.width = width              # a terminal's columns: prose folded to them
        self.stream = stream
        self.follow = follow
        self.notes = notes
        self.order = CallOrder()
        self.told_catching_up = False

    def _say(self, lines: Sequence[str]) -> None:
        self.stream.write("".join(line + "\n" for line in fitted(lines, self.width)))

    def _rows(self, events: Sequence[Event]) -> None:
        started_ns = self.findings.started_ns
        self._say(["\t".join(timeline_row(event, started_ns)) for event in events])

    def started(self, header: dict[str, Any]) -> None:
        self._say(header_lines(header))

    def event(self, event: Event) -> None:
        if self.findings.folds(event):
            return
        ready = self.order.add(event)
        if ready:
            self._rows(ready)

    def catching_up(self, waiting: int) -> None:
        if waiting >= CATCH_UP_NOTICE and not self.told_catching_up:
            self.told_catching_up = True
            self.notes.write(f"syspath: the program has ended; {waiting:,} of its events are still to decode\n")
            self.notes.flush()

    def paused(self, role: str, next_step: str, how: str) -> None:
        self._rows(self.order.drain())
        self._say([f"--- next, in the {role}: {next_step} ({how})"])
        self.stream.flush()

    def finished(self, lost: int, exit_code: int, lost_steps: dict[str, int] | None = None) -> None:
        self._rows(self.order.drain())
        self._say(closing_lines(self.findings, self.follow))
        self.stream.flush()
