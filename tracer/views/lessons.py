"""`syspath lessons`: each lesson, its steps, and which hook can show each step on this kernel."""
from __future__ import annotations

from typing import Any

from rich.table import Table
from rich.text import Text

from tracer import lessons
from tracer.catalog import FROM_USER_SPACE, HookChoice
from tracer.errors import SyspathError


def _choices(name: str) -> dict[str, HookChoice] | str:
    """The hooks resolution picks for the lesson's steps here, or why that cannot be asked."""
    from tracer.build import choose_hooks

    try:
        return {choice.step: choice for choice in choose_hooks(name, "auto")}
    except SyspathError as why:
        return str(why)


def _step_row(step: Any, choices: dict[str, HookChoice] | str) -> dict[str, Any]:
    row: dict[str, Any] = {"name": step.name, "summary": step.summary, "optional": step.optional}
    if FROM_USER_SPACE in step.roles:
        row.update(hook="user space", status="attached", reason=step.summary)
    elif isinstance(choices, dict) and step.name in choices:
        choice = choices[step.name]
        row.update(hook=choice.hook or None, status=choice.status, reason=choice.reason)
    else:
        row.update(hook=None, status="unknown", reason=choices if isinstance(choices, str) else "")
    return row


def lesson_rows() -> list[dict[str, Any]]:
    """design.md: a JSON list of objects with at least name, summary and steps (step names)."""
    rows = []
    for lesson in lessons.all_lessons():
        choices = _choices(lesson.name)
        rows.append({"name": lesson.name, "summary": lesson.summary, "runnable": bool(lesson.program),
                     "any_program": lesson.any_program, "steps": [step.name for step in lesson.steps],
                     "hooks": [_step_row(step, choices) for step in lesson.steps]})
    return rows


def lessons_table(rows: list[dict[str, Any]]) -> Table:
    table = Table(title="syspath lessons: which hook shows each step on this kernel", expand=False)
    table.add_column("lesson / step", no_wrap=True)
    table.add_column("hook here", overflow="fold")
    table.add_column("what it shows", overflow="fold")
    for row in rows:
        table.add_row(Text(row["name"], style="bold"), "", row["summary"])
        for step in row["hooks"]:
            hook = Text(step["hook"]) if step["hook"] else Text(step["status"], style="dim")
            name = Text(f"  {step['name']}").append(" (extra)" if step["optional"] else "", style="dim")
            table.add_row(name, hook, step["summary"])
        table.add_section()
    unknown = next((step["reason"] for row in rows for step in row["hooks"] if step["status"] == "unknown"), "")
    if unknown:
        table.caption = f"hooks not resolved: {unknown}"
    return table
