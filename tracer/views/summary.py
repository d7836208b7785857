"""The session header (which hook stands for each step) and the findings panel."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from tracer.events import Event
from tracer.findings import Holder, SharedFile

STATUS_STYLES = {"attached": "green", "fallback": "yellow", "unavailable": "red"}


def hooks_table(header: dict[str, Any]) -> Table:
    title = (f"kernel {header.get('kernel')}  mode {header.get('mode')}  "
             f"{header.get('scenario') or ' '.join(header.get('command') or [])}")
    table = Table(title=title, expand=True, title_justify="left")
    for column in ("step", "hook", "status", "why"):
        table.add_column(column, overflow="fold", no_wrap=column != "why")
    for hook in header.get("hooks", []):
        status = hook.get("status", "")
        table.add_row(hook.get("step", ""), hook.get("hook", "") or "-",
                      Text(status, style=STATUS_STYLES.get(status, "")), hook.get("reason", ""))
    return table


def holder_line(role: str, holder: Holder) -> str:
    who = holder.comm if holder.comm == role else f"{role} {holder.comm}"
    text = f"{who} (pid {holder.pid}, tgid {holder.tgid}) holds it as fd {holder.fd}"
    if holder.address:
        text += f", mapped at {holder.address}"
        if holder.vm_flags:
            text += f" ({'|'.join(f for f in holder.vm_flags if 'SHARE' in f)})"
    return text


def finding_lines(story: SharedFile) -> list[str]:
    lines = [f"One struct file {story.file} (inode {story.inode}) in {1 + len(story.receivers)} processes:",
             "  " + holder_line("sender", story.creator)]
    lines += ["  " + holder_line("receiver", holder) for holder in story.receivers]
    fds = {story.creator.fd, *(h.fd for h in story.receivers)}
    lines.append("  different fd numbers, same kernel object" if len(fds) > 1
                 else "  same fd number by chance; what they share is the kernel object")
    if story.refcounts:
        counts = " -> ".join(f"{count} ({step} in {comm})" for step, comm, count in story.refcounts)
        lines.append(f"  refcount: {counts}")
    return lines


# kernel/fork.c: which flag makes copy_process share each structure instead of copying it
SHARING_FLAG = {"mm": "CLONE_VM", "fs": "CLONE_FS", "files": "CLONE_FILES", "sighand": "CLONE_SIGHAND",
                "signal": "CLONE_THREAD"}


def clone_lines(events: Sequence[Event]) -> list[str]:
    lines = []
    for event in (e for e in events if e.step == "clone"):
        detail = event.detail
        lines.append(f"{event.comm}[{event.pid}] -> new {detail.get('kind')} tid {detail.get('child_tid')} "
                     f"tgid {detail.get('child_tgid')}:")
        for name, flag in SHARING_FLAG.items():
            shared = detail.get("shared", {}).get(name)
            parent, child = detail.get("parent", {}).get(name), detail.get("child", {}).get(name)
            how = f"shared ({flag})" if shared else f"copied (no {flag})"
            lines.append(f"  {name:<8} parent {parent}  child {child}  {how}")
    return lines


def no_finding_lines(events: int, lost: int) -> list[str]:
    lines = [f"No struct file was seen shared between two processes ({events} events)."]
    if lost:
        lines.append(f"{lost} events were lost: the story may be incomplete.")
    return lines


def conclusion_lines(stories: Sequence[SharedFile], events: Sequence[Event], lost: int) -> list[str]:
    lines = [line for story in stories for line in finding_lines(story)] + clone_lines(events)
    return lines or no_finding_lines(len(events), lost)


def findings_panel(stories: Sequence[SharedFile], events: Sequence[Event], lost: int,
                   output: Sequence[str]) -> Panel:
    lines = conclusion_lines(stories, events, lost)
    body: list[RenderableType] = [Text("\n".join(lines))]
    if output:
        body.append(Text("\n".join(output), style="dim"))
    body.append(Text(f"{len(events)} events, {lost} lost", style="dim"))
    return Panel(Group(*body), title="what the kernel did", border_style="red" if lost else "green")
