"""fork-vs-thread: parent and child side by side, one table per new task."""
from __future__ import annotations

from rich.table import Table
from rich.text import Text

from tracer.findings import Findings, NewTask
from tracer.views.summary import row_verdict, task_heading


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
    table.add_row("", "", "", "", Text(task.pid_line, style="bold"))
    for line in task.consequences:
        table.add_row("", "", "", "", Text(f"observed: {line}", style="italic"))
    return table


def clone_tables(findings: Findings) -> list[Table]:
    return [task_table(task) for task in findings.tasks()]
