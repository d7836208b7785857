"""Live terminal view while a session runs, and the final screen after it."""
from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterable
from typing import Any

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.panel import Panel
from rich.text import Text

from tracer.events import Event, in_call_order
from tracer.findings import RECENT_EVENTS, Findings
from tracer.paths import Paths
from tracer.observer import Observer, OutputLine
from tracer.views.clone import clone_tables
from tracer.views.follow import life_story_panels
from tracer.views.narration import narration_panel
from tracer.views.objects import object_panels
from tracer.views.path import path_panels
from tracer.views.summary import findings_panel, hooks_table
from tracer.views.timeline import timeline_table

REFRESH_S = 0.1
OUTPUT_ROWS = 6


def final_screen(findings: Findings, follow: bool = False) -> Group:
    stories = findings.shared_files()
    highlight = {story.file for story in stories}
    parts: list[RenderableType] = [hooks_table(findings.header),
                                   timeline_table(findings.timeline.first, findings.started_ns, highlight,
                                                  total=findings.events)]
    parts += object_panels(stories, findings.shared_count)
    parts += clone_tables(findings)
    parts += path_panels(findings.paths, findings.header)
    if follow:
        parts += life_story_panels(findings)
    parts += [narration_panel(findings.first_events_by_step(), findings.header), findings_panel(findings)]
    return Group(*parts)


class StepEvents:
    """The events one step of the scenario caused: the latest rows and the first of each step."""

    def __init__(self) -> None:
        self.rows: deque[Event] = deque(maxlen=RECENT_EVENTS)
        self.first_of_step: dict[str, Event] = {}
        self.paths = Paths()

    def add(self, event: Event) -> None:
        self.rows.append(event)
        self.first_of_step.setdefault(event.step, event)
        self.paths.add(event)


class LiveView(Observer):
    """The screen while tracing; in step mode, the step about to run and what the last one caused."""

    def __init__(self, console: Console, findings: Findings) -> None:
        self.console = console
        self.findings = findings
        self.live = Live(console=console, auto_refresh=False, transient=True)
        self.last_refresh = 0.0
        self.next_step: str | None = None
        self.this_step = StepEvents()
        self.last_step = StepEvents()
        self.output_rows: deque[str] = deque(maxlen=OUTPUT_ROWS)

    def started(self, header: dict[str, Any]) -> None:
        self.live.start()

    def event(self, event: Event) -> None:
        self.this_step.add(event)

    def output(self, line: OutputLine) -> None:
        shown = line.shown()
        if shown is not None:
            self.output_rows.append(shown)

    def paused(self, role: str, next_step: str, how: str) -> None:
        self.last_step, self.this_step = self.this_step, StepEvents()
        self.next_step = f"next, in the {role}: {next_step}  ({how})"
        self.last_refresh = 0.0
        self.tick()

    def tick(self) -> None:
        now = time.monotonic()
        if not self.live.is_started or now - self.last_refresh < REFRESH_S:
            return
        self.last_refresh = now
        self.live.update(self._render(), refresh=True)

    def _render(self) -> RenderableType:
        started_ns = self.findings.started_ns
        output = Panel(Text("\n".join(self.output_rows)), title="program output")
        if self.next_step is None:
            return Group(Text(f"tracing... {self.findings.events} events", style="bold"),
                         timeline_table(self.findings.timeline.recent, started_ns), output)
        caused = self.last_step
        return Group(timeline_table(caused.rows, started_ns, title="what the last step made the kernel do"),
                     narration_panel(list(caused.first_of_step.values()), self.findings.header, title="why"),
                     *path_panels(caused.paths, self.findings.header), output, Panel(Text(self.next_step, style="bold"), border_style="yellow"))

    def finished(self, lost: int, exit_code: int) -> None:
        self.stop()

    def stop(self) -> None:
        if self.live.is_started:
            self.live.stop()


def replay_live(findings: Findings, events: Iterable[Event], speed: float, console: Console) -> None:
    """Events shown at their recorded pace (times `speed`), then the final screen."""
    shown: deque[Event] = deque(maxlen=RECENT_EVENTS)
    total = findings.events
    with Live(console=console, auto_refresh=False, transient=True) as live:
        previous = None
        for count, event in enumerate(in_call_order(list(events)), start=1):
            if previous is not None:
                time.sleep(max(0.0, (event.ts_ns - previous) / 1e9 / speed))
            previous = event.ts_ns
            shown.append(event)
            live.update(Group(Text(f"replaying at {speed:g}x... {count}/{total} events", style="bold"),
                              timeline_table(shown, findings.started_ns)), refresh=True)
