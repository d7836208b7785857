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
from tracer.paths import (
    INLINED,
    MARK_LEGEND,
    RENAMED_HERE,
    SEEN,
    ArticleFrame,
    Paths,
    Row,
    StepView,
    step_views,
)
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


def article_groups(article: list[ArticleFrame]) -> list[tuple[str, list[str]]]:
    """The article's frames grouped by what this run shows of them, in the legend's order:
    first the ones seen, as a chain, then each kind of absence, so that a path reads as the
    chain the kernel took and not as a list of what is missing."""
    groups: dict[str, list[str]] = {}
    for frame in article:
        groups.setdefault(frame.status, []).append(f"{frame.name} ({frame.note})" if frame.note else frame.name)
    return [(mark, groups[mark]) for mark in MARK_LEGEND if mark in groups]


def article_line(article: list[ArticleFrame]) -> str:
    return "; ".join(f"{mark}: {(' → ' if mark == SEEN else ', ').join(names)}"
                     for mark, names in article_groups(article))


def _article_text(view: StepView) -> Text:
    text = Text()
    for mark, names in article_groups(view.article):
        text.append(f"{MARK_SIGNS.get(mark, '-')} {mark}: ", style=MARK_STYLES.get(mark, "dim"))
        text.append((" → " if mark == SEEN else ", ").join(names) + "\n", style="" if mark == SEEN else "dim")
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
    legend = Text("  ".join(legend_entries()), style="dim")
    return [Group(*(step_panel(view) for view in views), legend)]


def legend_entries() -> list[str]:
    return [f"{MARK_SIGNS.get(mark, '-')} {mark}: {meaning}" for mark, meaning in MARK_LEGEND.items()]


def path_legend_lines(paths: Paths, header: Mapping[str, Any]) -> list[str]:
    """What each mark beside the article's frames means, once under the paths (plain output)."""
    views = step_views(paths, header)
    if not any(view.article for view in views):
        return []
    return ["marks: " + "; ".join(f"{mark}: {meaning}" for mark, meaning in MARK_LEGEND.items())]


def path_lines(paths: Paths, header: Mapping[str, Any]) -> list[str]:
    lines = []
    for view in step_views(paths, header):
        lines.append(f"path of {view.path.step}: {captured(view)}")
        lines += ["  " + _row_text(row, frozenset()).plain for row in view.rows]
        if view.article:
            lines.append("  article: " + article_line(view.article))
    return lines


def chain_text(event: Event, frames: int = 4) -> str:
    """An event's path in one line: the innermost frames, outermost first (--follow-file)."""
    if not event.stack:
        return ""
    return " → ".join(reversed(event.stack[:frames]))
