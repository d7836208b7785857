"""--follow-file: the life story of each memfd's struct file, whoever touched it."""
from __future__ import annotations

from typing import TYPE_CHECKING

from tracer.findings import Chapter, Findings
from tracer.views.path import chain_text
from tracer.views.timeline import relative_ms

if TYPE_CHECKING:
    from rich.panel import Panel


def chapter_line(chapter: Chapter, started_ns: int) -> list[str]:
    event = chapter.event
    return [relative_ms(event, started_ns), f"{event.comm}[{event.pid}]", chapter.text,
            "" if event.refcount is None else str(event.refcount), event.hook, chain_text(event)]


SHOWN_STORIES = 3           # a loop can make thousands of memfds: the first few tell the story
CHAPTER_COLUMNS = ("ms", "process", "what happened to it", "ref", "seen at", "path (innermost frames)")


def life_story_panels(findings: Findings) -> list[Panel]:
    from rich.panel import Panel  # the plain path imports this module, not rich
    from rich.table import Table

    panels = []
    for file, chapters in findings.life_stories()[:SHOWN_STORIES]:
        table = Table(*CHAPTER_COLUMNS, expand=True, box=None)
        for chapter in chapters:
            table.add_row(*chapter_line(chapter, findings.started_ns))
        panels.append(Panel(table, title=f"the life of struct file {file}", border_style="magenta"))
    return panels


def life_story_lines(findings: Findings) -> list[str]:
    lines = []
    for file, chapters in findings.life_stories()[:SHOWN_STORIES]:
        lines.append(f"The life of struct file {file}:")
        lines += ["  " + "  ".join(chapter_line(chapter, findings.started_ns)) for chapter in chapters]
    return lines
