"""--no-live: the same information as plain lines, for pipes and CI."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TextIO

from tracer.events import Event, in_call_order
from tracer.findings import shared_files
from tracer.views.summary import conclusion_lines
from tracer.views.timeline import TIMELINE_COLUMNS, timeline_row


def print_plain(header: dict[str, Any], events: list[Event], output: list[str], lost: int,
                stream: TextIO, reports: Sequence[dict[str, Any]] = ()) -> None:
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
    for line in conclusion_lines(shared_files(events), events, lost, reports):
        say(line)
    say(f"{len(events)} events, {lost} lost")
