"""The session header (which hook stands for each step) and the findings panel."""
from __future__ import annotations

from typing import Any

from rich import box
from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from tracer.findings import PRIVATE_MAPPING, Findings, Holder, NewTask, SharedFile, StructureRow
from tracer.views.hooks import hook_line, kernel_line, session_title

SHOWN_FINDINGS = 3
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


def holder_line(role: str, holder: Holder) -> str:
    who = holder.comm if holder.comm == role else f"{role} {holder.comm}"
    text = f"{who} (pid {holder.pid}, tgid {holder.tgid}) holds it as fd {holder.fd}"
    if holder.address:
        text += f", mapped at {holder.address}"
        if holder.vm_flags:
            text += f" ({holder.sharing})"
    return text


def finding_lines(story: SharedFile) -> list[str]:
    lines = [f"One struct file {story.file} (inode {story.inode}) in {1 + len(story.receivers)} processes:",
             f"  it is a {story.what}",
             "  " + holder_line("sender", story.creator)]
    lines += ["  " + holder_line("receiver", holder) for holder in story.receivers]
    fds = {story.creator.fd, *(h.fd for h in story.receivers)}
    lines.append("  different fd numbers, same kernel object" if len(fds) > 1
                 else "  same fd number by chance; what they share is the kernel object")
    if story.refcounts:
        counts = " -> ".join(f"{count} ({step} in {comm})" for step, comm, count in story.refcount_changes())
        lines.append(f"  refcount: {counts}")
    for flight in story.in_flight[:1]:
        lines.append(f"  in flight: skb {flight.skb} on the receiving sock {flight.sock}'s queue held this very "
                     "struct file pointer (UNIXCB(skb).fp), between sendmsg and recvmsg")
    lines += page_lines(story)
    if story.mapped_privately:
        lines.append(f"  {PRIVATE_MAPPING}")
    return lines


def compact_finding_lines(story: SharedFile) -> list[str]:
    """The finding beside the object view, which already draws each holder: a few short lines,
    so that objects and findings fit one 80x24 screen."""
    fds = " and ".join(str(fd) for fd in (story.creator.fd, *(h.fd for h in story.receivers)))
    lines = [f"One struct file {story.file} in {1 + len(story.receivers)} processes: fds {fds}, one object"]
    if story.refcounts:
        lines.append("  refcount " + " -> ".join(str(count) for _, _, count in story.refcount_changes()))
    for flight in story.in_flight[:1]:
        lines.append(f"  in flight: in skb {flight.skb} on the receiver's queue")
    same = story.same_page()
    if same:
        lines.append(f"  one physical page behind both mappings: PFN {same[0]:#x}")
    for _, copy in story.private_copies()[:1]:
        lines.append(f"  {copy.comm}'s write: copy on write, its own PFN {copy.pfn:#x}")
    return lines


def page_lines(story: SharedFile) -> list[str]:
    lines = []
    same = story.same_page()
    if same:
        pfn, seen = same
        where = " and ".join(f"{page.comm} (tgid {page.tgid}) at {page.address}" for page in seen)
        lines.append(f"  same physical page: {where} map PFN {pfn:#x}, the file's page-cache page")
    for shared, copy in story.private_copies()[:2]:
        lines.append(f"  copy on write: {copy.comm}'s write gave it PFN {copy.pfn:#x} of its own in place of "
                     f"{shared.pfn:#x}")
    return lines


def task_heading(task: NewTask) -> str:
    detail, event = task.event.detail, task.event
    group = ("same thread group as its parent" if task.same_thread_group
             else "a thread group of its own: a new process")
    door = f" by {detail['entry']}()" if detail.get("entry") else ""
    return (f"{event.comm}[{event.pid}] -> new {detail.get('kind')} tid {detail.get('child_tid')} "
            f"tgid {detail.get('child_tgid')}{door} ({group})")


def row_verdict(row: StructureRow) -> str:
    counted = f"; {row.count_text}" if row.count_text else ""
    if row.shared:
        return f"shared ({row.flag}){counted}"
    verdict = f"copied (no {row.flag})" + (f", by {row.copied_by}" if row.copied_by else "") + counted
    if row.name == "files":
        # fs/file.c dup_fd: get_file() on each open file, so both tables name the same objects
        verdict += "; both tables point at the same struct files"
    return verdict


def clone_lines(findings: Findings) -> list[str]:
    lines = []
    for task in findings.tasks():
        lines.append(task_heading(task) + ":")
        lines += [f"  {row.name:<8} parent {row.parent}  child {row.child}  {row_verdict(row)}" for row in task.rows]
        lines.append(f"  {task.pid_line}")
        lines += [f"  observed: {line}" for line in task.consequences]
    more = findings.new_tasks.count - len(findings.new_tasks.clones)
    if more > 0:
        lines.append(f"... and {more} more new tasks")
    return lines


def signal_lines(findings: Findings) -> list[str]:
    """Each signal sent and the thread that took it; SIGSTOP/SIGCONT seen per thread."""
    lines = [f"Signal: {story.line()}" for story in findings.signals.stories]
    notices = findings.signals.child_notices
    if notices:
        also = "and " if lines else ""
        lines.append(f"Signal: {also}{notices} SIGCHLD notice{'s' if notices > 1 else ''} to parents, "
                     "ignored (their default action)")
    for report in (r for r in findings.reports if r.get("role") == "stop"):
        lines.append(f"SIGSTOP to process {report.get('process')}: every thread stopped "
                     f"({_states(report.get('stopped'))}); SIGCONT: {_states(report.get('resumed'))}")
    return lines


def _states(states: object) -> str:
    if not isinstance(states, dict):
        return "?"
    return ", ".join(f"tid {tid} {state}" for tid, state in states.items())


def lost_lines(lost: int, steps: dict[str, int] | None = None) -> list[str]:
    """How many events the ring buffer refused (full, or failing: README, Losses), and of which steps."""
    if not lost:
        return []
    which = ", ".join(f"{step} {count}" for step, count in sorted((steps or {}).items(), key=lambda kv: -kv[1]))
    return [f"{lost} events were lost (the ring buffer refused them{': ' + which if which else ''}): "
            "what is above may be incomplete."]


def conclusion_lines(findings: Findings, clones: bool = True, compact: bool = False) -> list[str]:
    stories = findings.shared_files()
    told = compact_finding_lines if compact else finding_lines
    lines = [line for story in stories[:SHOWN_FINDINGS] for line in told(story)]
    if findings.shared_count > SHOWN_FINDINGS:
        lines.append(f"... and {findings.shared_count - SHOWN_FINDINGS} more struct files shared the same way "
                     f"({findings.shared_count} in all)")
    if clones:
        lines += clone_lines(findings)
    elif findings.new_tasks.count:
        lines.append("Each new task's structures are compared above, parent beside child.")
    lines += signal_lines(findings)
    if not lines:
        lines.append(f"No struct file was seen shared between two processes ({findings.events} events).")
    return lines + lost_lines(findings.lost, findings.lost_steps)


def findings_panel(findings: Findings, output: bool = True) -> Panel:
    """Beside the object view and the new tasks' tables, which show the holders and structures."""
    body: list[RenderableType] = [Text("\n".join(conclusion_lines(findings, clones=False, compact=True)))]
    if output and findings.output_lines:
        body.append(Text("\n".join(findings.output_lines), style="dim"))
    return Panel(Group(*body), title="what the kernel did", subtitle=f"{findings.events} events, {findings.lost} lost",
                 border_style="red" if findings.lost else "green")
