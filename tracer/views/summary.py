"""The session header (which hook stands for each step) and the findings panel: the lessons'
stories, told by their own views (scenarios/<lesson>/views.py)."""
from __future__ import annotations

from typing import Any

from rich import box
from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from tracer.findings import Findings
from tracer.views.hooks import hook_line, kernel_line, session_title

STATUS_STYLES = {"attached": "green", "fallback": "yellow", "unavailable": "red"}


def hooks_table(header: dict[str, Any]) -> Table:
    """The kernel's verdict once, in the title; then one line per step (the reading cut with an
    ellipsis at narrow widths: it is prose; step and hook names are never cut)."""
    table = Table(title=f"{session_title(header)}\n{kernel_line(header)}", expand=True, title_justify="left",
                  box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("step", no_wrap=True)
    table.add_column("hook", no_wrap=True)
    table.add_column("status", no_wrap=True)
    table.add_column("reads", no_wrap=True, overflow="ellipsis", ratio=1)
    for line in map(hook_line, header.get("hooks", [])):
        table.add_row(line.step, line.hook, Text(line.status, style=STATUS_STYLES.get(line.status, "")),
                      Text(line.reads, style="dim"))
    return table


def lost_lines(lost: int, steps: dict[str, int] | None = None) -> list[str]:
    """How many events the ring buffer refused (full, or failing: README, Losses), and of which steps."""
    if not lost:
        return []
    which = ", ".join(f"{step} {count}" for step, count in sorted((steps or {}).items(), key=lambda kv: -kv[1]))
    return [f"{lost} events were lost (the ring buffer refused them{': ' + which if which else ''}): "
            "what is above may be incomplete."]


def conclusion_lines(findings: Findings, compact: bool = False) -> list[str]:
    """Each lesson's story in its own words (compact: beside its panels, which draw the rest)."""
    lines = findings.conclusion_lines(compact)
    if not lines:
        lines.append(findings.nothing_seen())
    return lines + lost_lines(findings.lost, findings.lost_steps)


def findings_panel(findings: Findings, output: bool = True) -> Panel:
    """Beside the object view and the new tasks' tables, which show the holders and structures."""
    body: list[RenderableType] = [Text("\n".join(conclusion_lines(findings, compact=True)))]
    if output and findings.output_lines:
        body.append(Text("\n".join(findings.output_lines), style="dim"))
    return Panel(Group(*body), title="what the kernel did", subtitle=f"{findings.events} events, {findings.lost} lost",
                 border_style="red" if findings.lost else "green")
