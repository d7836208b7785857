"""Live terminal view while a session runs, and the final screen after it."""
from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.panel import Panel
from rich.text import Text

from tracer.events import Event, in_call_order
from tracer.findings import shared_files
from tracer.session import Observer, OutputLine, SessionResult
from tracer.views.clone import clone_tables
from tracer.views.follow import life_story_panels
from tracer.views.narration import narration_panel
from tracer.views.objects import object_panels
from tracer.views.summary import findings_panel, hooks_table
from tracer.views.timeline import timeline_table

REFRESH_S = 0.1
LIVE_ROWS = 25


def program_lines(output: list[OutputLine]) -> list[str]:
    lines = []
    for line in output:
        if line.report and "pause" in line.report:
            continue                      # step mode's "next:" announcements: shown while paused
        if line.report and "say" in line.report:
            lines.append(f"{line.report.get('role', '?')}: {line.report['say']}")
        else:
            lines.append(f"{line.stream}: {line.text}")
    return lines


def program_reports(output: list[OutputLine]) -> list[dict[str, Any]]:
    return [line.report for line in output if line.report]


def final_screen(header: dict[str, Any], events: list[Event], output: list[str], lost: int,
                 reports: Sequence[dict[str, Any]] = (), follow: bool = False) -> Group:
    stories = shared_files(events)
    highlight = {story.file for story in stories}
    parts: list[RenderableType] = [hooks_table(header), timeline_table(events, header["started_ns"], highlight)]
    parts += object_panels(stories)
    parts += clone_tables(events, reports)
    if follow:
        parts += life_story_panels(events, header["started_ns"])
    parts += [narration_panel(events, header), findings_panel(stories, events, lost, output)]
    return Group(*parts)


class LiveView(Observer):
    """The screen while tracing; in step mode, the step about to run and what the last one caused."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.result: SessionResult | None = None
        self.live = Live(console=console, auto_refresh=False, transient=True)
        self.last_refresh = 0.0
        self.next_step: str | None = None
        self.step_began = 0               # index of the first event of the step shown last
        self.last_step_events: list[Event] = []

    def started(self, result: SessionResult) -> None:
        self.result = result
        self.live.start()

    def paused(self, role: str, next_step: str, how: str) -> None:
        assert self.result is not None
        self.last_step_events = self.result.events[self.step_began:]
        self.step_began = len(self.result.events)
        self.next_step = f"next, in the {role}: {next_step}  ({how})"
        self.last_refresh = 0.0
        self.tick()

    def tick(self) -> None:
        now = time.monotonic()
        if self.result is None or now - self.last_refresh < REFRESH_S:
            return
        self.last_refresh = now
        self.live.update(self._render(), refresh=True)

    def _render(self) -> RenderableType:
        assert self.result is not None
        header = self.result.header
        output = program_lines(self.result.output)[-6:]
        if self.next_step is None:
            return Group(Text(f"tracing... {len(self.result.events)} events", style="bold"),
                         timeline_table(self.result.events[-LIVE_ROWS:], header["started_ns"]),
                         Panel(Text("\n".join(output)), title="program output"))
        caused = self.last_step_events[-LIVE_ROWS:]
        return Group(timeline_table(caused, header["started_ns"], title="what the last step made the kernel do"),
                     narration_panel(caused, header, title="why"),
                     Panel(Text("\n".join(output)), title="program output"),
                     Panel(Text(self.next_step, style="bold"), border_style="yellow"))

    def stop(self) -> None:
        if self.live.is_started:
            self.live.stop()


def replay_live(header: dict[str, Any], events: list[Event], speed: float, console: Console) -> None:
    """Events shown at their recorded pace (times `speed`), then the final screen."""
    shown: list[Event] = []
    with Live(console=console, auto_refresh=False, transient=True) as live:
        previous = None
        for event in in_call_order(events):
            if previous is not None:
                time.sleep(max(0.0, (event.ts_ns - previous) / 1e9 / speed))
            previous = event.ts_ns
            shown.append(event)
            live.update(Group(Text(f"replaying at {speed:g}x... {len(shown)}/{len(events)} events", style="bold"),
                              timeline_table(shown[-LIVE_ROWS:], header["started_ns"])), refresh=True)
