"""The final screen after a session (and a replay played at its recorded pace)."""
from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterable

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.panel import Panel
from rich.text import Text

from tracer.events import Event, call_ordered
from tracer.findings import RECENT_EVENTS, Findings
from tracer.views.narration import narration_panel
from tracer.views.path import path_panels
from tracer.views.summary import findings_panel, hooks_table
from tracer.views.timeline import timeline_table


def essentials(findings: Findings) -> Group:
    """What the run proved: each lesson's panels (the object view, each new task's table) and the findings."""
    parts: list[RenderableType] = [*findings.panels(), findings_panel(findings, output=False)]
    return Group(*parts)


def final_screen(findings: Findings, follow: bool = False) -> Group:
    """The details first and the essentials last: in a terminal the last screenful is what
    stays in view, so the object view and the findings are seen without scrolling."""
    highlight = findings.highlighted_files()
    parts: list[RenderableType] = [hooks_table(findings.header),
                                   timeline_table(findings.timeline.first, findings.started_ns, highlight,
                                                  total=findings.events),
                                   narration_panel(findings.first_events_by_step(), findings.header),
                                   *path_panels(findings.paths, findings.header)]
    if follow:
        parts += findings.follow_panels()
    if findings.output_lines:
        parts.append(Panel(Text("\n".join(findings.output_lines)), title="program output", border_style="dim"))
    return Group(*parts, essentials(findings))


def replay_live(findings: Findings, events: Iterable[Event], speed: float, console: Console) -> None:
    """Events shown at their recorded pace (times `speed`), then the final screen."""
    shown: deque[Event] = deque(maxlen=RECENT_EVENTS)
    total = findings.events
    with Live(console=console, auto_refresh=False, transient=True) as live:
        previous = None
        for count, event in enumerate(call_ordered(events), start=1):
            if previous is not None:
                time.sleep(max(0.0, (event.ts_ns - previous) / 1e9 / speed))
            previous = event.ts_ns
            shown.append(event)
            live.update(Group(Text(f"replaying at {speed:g}x... {count}/{total} events", style="bold"),
                              timeline_table(shown, findings.started_ns)), refresh=True)
