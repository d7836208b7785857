"""Live terminal view while a session runs, and the final screen after it."""
from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.panel import Panel
from rich.text import Text

from tracer.events import Event
from tracer.findings import shared_files
from tracer.session import Observer, OutputLine, SessionResult
from tracer.views.clone import clone_tables
from tracer.views.summary import findings_panel, hooks_table
from tracer.views.timeline import timeline_table

REFRESH_S = 0.1
LIVE_ROWS = 25


def program_lines(output: list[OutputLine]) -> list[str]:
    lines = []
    for line in output:
        if line.report and "say" in line.report:
            lines.append(f"{line.report.get('role', '?')}: {line.report['say']}")
        else:
            lines.append(f"{line.stream}: {line.text}")
    return lines


def program_reports(output: list[OutputLine]) -> list[dict[str, Any]]:
    return [line.report for line in output if line.report]


def final_screen(header: dict[str, Any], events: list[Event], output: list[str], lost: int,
                 reports: Sequence[dict[str, Any]] = ()) -> Group:
    stories = shared_files(events)
    highlight = {story.file for story in stories}
    return Group(hooks_table(header), timeline_table(events, header["started_ns"], highlight),
                 *clone_tables(events, reports), findings_panel(stories, events, lost, output))


class LiveView(Observer):
    def __init__(self, console: Console) -> None:
        self.console = console
        self.result: SessionResult | None = None
        self.live = Live(console=console, auto_refresh=False, transient=True)
        self.last_refresh = 0.0

    def started(self, result: SessionResult) -> None:
        self.result = result
        self.live.start()

    def tick(self) -> None:
        now = time.monotonic()
        if self.result is None or now - self.last_refresh < REFRESH_S:
            return
        self.last_refresh = now
        self.live.update(self._render(), refresh=True)

    def _render(self) -> RenderableType:
        assert self.result is not None
        events = self.result.events[-LIVE_ROWS:]
        output = program_lines(self.result.output)[-6:]
        return Group(
            Text(f"tracing... {len(self.result.events)} events", style="bold"),
            timeline_table(events, self.result.header["started_ns"]),
            Panel(Text("\n".join(output)), title="program output"),
        )

    def stop(self) -> None:
        if self.live.is_started:
            self.live.stop()


class QuietView(Observer):
    """--no-live: nothing while running; plain text at the end."""
