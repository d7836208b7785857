"""The final screen after a session (and a replay played at its recorded pace)."""
from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterable, Sequence

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.panel import Panel
from rich.text import Text

from tracer.events import Event
from tracer.findings import RECENT_EVENTS, Findings
from tracer.observer import OutputLine
from tracer.recording import Played
from tracer.replay import in_call_order
from tracer.views.clone import clone_tables
from tracer.views.follow import life_story_panels
from tracer.views.narration import narration_panel
from tracer.views.objects import object_panels
from tracer.views.path import path_panels
from tracer.views.summary import findings_panel, hooks_table
from tracer.views.timeline import timeline_table

REPLAYED_LINES = 8          # the program's latest lines under the replayed events


def essentials(findings: Findings) -> Group:
    """What the run proved: the object view (or each new task's table) and the findings."""
    parts: list[RenderableType] = [*object_panels(findings.shared_files(), findings.shared_count),
                                   *clone_tables(findings), findings_panel(findings, output=False)]
    return Group(*parts)


def final_screen(findings: Findings, follow: bool = False) -> Group:
    """The details first and the essentials last: in a terminal the last screenful is what
    stays in view, so the object view and the findings are seen without scrolling."""
    highlight = {story.file for story in findings.shared_files()}
    parts: list[RenderableType] = [hooks_table(findings.header),
                                   timeline_table(findings.timeline.first, findings.started_ns, highlight,
                                                  total=findings.events),
                                   narration_panel(findings.first_events_by_step(), findings.header),
                                   *path_panels(findings.paths, findings.header)]
    if follow:
        parts += life_story_panels(findings)
    if findings.output_lines:
        parts.append(Panel(Text("\n".join(findings.output_lines)), title="program output", border_style="dim"))
    return Group(*parts, essentials(findings))


def replay_live(findings: Findings, played: Iterable[Played], speed: float, console: Console) -> None:
    """Events and the program's lines shown at their recorded pace (times `speed`), then the final screen."""
    shown: deque[Event] = deque(maxlen=RECENT_EVENTS)
    said: deque[str] = deque(maxlen=REPLAYED_LINES)
    total = findings.events
    count = 0
    with Live(console=console, auto_refresh=False, transient=True) as live:
        previous = None
        for item in in_call_order(played):
            if previous is not None:
                time.sleep(max(0.0, (item.ts_ns - previous) / 1e9 / speed))
            previous = item.ts_ns
            if isinstance(item, OutputLine):
                line = item.shown()
                if line is None:
                    continue
                said.append(line)
            else:
                count += 1
                shown.append(item)
            live.update(replay_screen(findings, shown, said, f"replaying at {speed:g}x... {count}/{total} events"),
                        refresh=True)


def replay_screen(findings: Findings, shown: Iterable[Event], said: Sequence[str], status: str) -> Group:
    parts: list[RenderableType] = [Text(status, style="bold"), timeline_table(shown, findings.started_ns)]
    if said:
        parts.append(Panel(Text("\n".join(said)), title="program output", border_style="dim"))
    return Group(*parts)
