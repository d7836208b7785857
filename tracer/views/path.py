"""The path view: per step, the call chain the running kernel took (its events' stacks merged
into a tree, outermost first) beside the chain the source article draws, each frame marked."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from tracer.events import Event
from tracer.paths import INLINED, MARK_LEGEND, RENAMED_HERE, SEEN, Paths, Row, StepView, step_views
from tracer.stacks import base_name

MARK_STYLES = {SEEN: "green", INLINED: "yellow", RENAMED_HERE: "cyan"}
MARK_SIGNS = {SEEN: "+", INLINED: "~", RENAMED_HERE: ">"}      # anything else: "-"


def captured(view: StepView) -> str:
    path = view.path
    where = ", ".join(f"{hook} ({count})" if len(path.captured_at) > 1 else hook
                      for hook, count in path.captured_at.most_common(3))
    text = f"{path.events} event{'s' if path.events != 1 else ''}"
    text += f", stack captured at {where}" if where else ", no kernel stack recorded"
    if path.without_stack and where:
        text += f"; {path.without_stack} without a stack"
    if path.frames_dropped:
        text += f"; {path.frames_dropped} frames beyond the tree's size not drawn"
    return text


def _row_text(row: Row, highlight: frozenset[str]) -> Text:
    text = Text("  " * row.depth + ("└ " if row.depth else ""))
    for index, frame in enumerate(row.frames):
        if index:
            text.append(" → ", style="dim")
        text.append(frame, style="bold magenta" if base_name(frame) in highlight else "")
    if row.count > 1:
        text.append(f"  ×{row.count}", style="dim")
    return text


def _article_text(view: StepView) -> Text:
    text = Text()
    for frame in view.article:
        style = MARK_STYLES.get(frame.status, "dim")
        text.append(f"{MARK_SIGNS.get(frame.status, '-')} {frame.name}", style=style)
        text.append(f"  {frame.status}{': ' + frame.note if frame.note else ''}\n", style="dim")
    return text


def step_panel(view: StepView) -> Panel:
    tree = Text("\n").join(_row_text(row, view.highlight) for row in view.rows) if view.rows else Text("-")
    grid = Table.grid(padding=(0, 2), expand=True)
    grid.add_column(ratio=3)
    grid.add_column(ratio=2)
    grid.add_row(Text("the path this kernel took (outermost first)", style="dim"),
                 Text("the chain the article draws", style="dim"))
    grid.add_row(tree, _article_text(view) if view.article else Text("-"))
    return Panel(grid, title=f"path of {view.path.step}: {captured(view)}", title_align="left",
                 border_style="cyan")


def path_panels(paths: Paths, header: Mapping[str, Any]) -> list[RenderableType]:
    views = step_views(paths, header)
    if not any(view.rows for view in views):
        return []
    legend = Text("  ".join(f"{MARK_SIGNS.get(mark, '-')} {mark}: {meaning}" for mark, meaning in MARK_LEGEND.items()),
                  style="dim")
    return [Group(*(step_panel(view) for view in views), legend)]


def path_lines(paths: Paths, header: Mapping[str, Any]) -> list[str]:
    lines = []
    for view in step_views(paths, header):
        lines.append(f"path of {view.path.step}: {captured(view)}")
        lines += ["  " + _row_text(row, frozenset()).plain for row in view.rows]
        if view.article:
            frames = (f"{frame.name} [{frame.status}{': ' + frame.note if frame.note else ''}]"
                      for frame in view.article)
            lines.append("  article: " + ", ".join(frames))
    return lines


def chain_text(event: Event, frames: int = 4) -> str:
    """An event's path in one line: the innermost frames, outermost first (--follow-file)."""
    if not event.stack:
        return ""
    return " → ".join(reversed(event.stack[:frames]))
