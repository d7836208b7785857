"""fork-vs-thread: parent and child side by side, one table per new task."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.table import Table
from rich.text import Text

from tracer.events import Event
from tracer.findings import NewTask, new_tasks
from tracer.views.summary import row_verdict, task_heading


SHOWN_TASKS = 6


def task_table(task: NewTask) -> Table:
    flags = "|".join(task.event.detail.get("flags", [])) or "none"
    table = Table(title=task_heading(task), caption=f"clone flags: {flags}", expand=True,
                  title_justify="left", caption_justify="left")
    for column in ("structure", "parent", "child", "", "decided by"):
        table.add_column(column, no_wrap=column != "decided by", overflow="fold")
    for row in task.rows:
        style = "green" if row.shared else "yellow"
        table.add_row(f"{row.name}_struct", row.parent or "-", Text(row.child or "-", style=style),
                      Text("= same" if row.shared else "≠ copy", style=f"bold {style}"), row_verdict(row))
    for line in task.consequences:
        table.add_row("", "", "", "", Text(f"observed: {line}", style="italic"))
    return table


def clone_tables(events: Sequence[Event], reports: Sequence[dict[str, Any]] = ()) -> list[Table]:
    return [task_table(task) for task in new_tasks(events, reports)[:SHOWN_TASKS]]
