"""fork-vs-thread's sentences and tables: every one rendered from the facts of story.py.

What rests on the program's own observation cites its report ("observed [program report 3
(fork)]: ..."); what is the kernel source's rule, not this run's, says so.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from tracer.events import Event
from tracer.story import Fact, QuietView

from .story import (
    CLONE_STEP,
    Check,
    ChildNotices,
    HandledSeen,
    NewTask,
    PauseLeft,
    SignalSeen,
    StatesSeen,
    StopCompleted,
    StructureRow,
    TaskTotal,
)

if TYPE_CHECKING:
    from rich.console import RenderableType
    from rich.table import Table

# the count each structure's sharing is made of (kernel/fork.c), as the kernel names it
COUNT_NAME = {"mm": "mm_users", "fs": "fs->users", "files": "files->count", "sighand": "sighand->count",
              "signal": "signal->sigcnt"}
SIGSTOP, SIGCONT = 19, 18


def tasks_of(facts: Sequence[Fact]) -> list[NewTask]:
    return [fact for fact in facts if isinstance(fact, NewTask)]


def task_heading(task: NewTask) -> str:
    group = ("same thread group as its parent" if task.same_thread_group
             else "a thread group of its own: a new process")
    door = f" by {task.entry}()" if task.entry else ""
    return (f"{task.parent_comm}[{task.parent_pid}] -> new {task.kind} tid {task.child_tid} "
            f"tgid {task.child_tgid}{door} ({group})")


def count_text(row: StructureRow) -> str:
    """The count read in the child right after the clone; the count before it was not read."""
    if row.count_after is None:
        return ""
    name = COUNT_NAME[row.name]
    return f"{name} {row.count_after} after the clone" if row.shared else f"{name} {row.count_after} (a new copy)"


def row_verdict(row: StructureRow) -> str:
    counted = f"; {count_text(row)}" if count_text(row) else ""
    if row.shared:
        return f"shared ({row.flag}){counted}"
    return f"copied (no {row.flag})" + (f", by {row.copied_by}" if row.copied_by else "") + counted


def pid_line(task: NewTask) -> str:
    """Its thread group id beside its parent's, as the clone event recorded them."""
    if task.same_thread_group:
        return (f"one thread group: tgid {task.child_tgid} for both (what getpid() returns), "
                f"tid {task.child_tid} vs {task.parent_pid}")
    if task.shares_address_space and "CLONE_VFORK" not in task.flags:
        return (f"tgid {task.child_tgid} for it, {task.parent_tgid} for its parent: it shares the address space "
                "but is a thread group of its own, LinuxThreads' pid problem")
    return f"tgid {task.child_tgid} for it, {task.parent_tgid} for its parent: another process"


def check_line(check: Check, task: NewTask) -> str:
    seen = "sees it" if check.seen else "does not see it"
    text = f"observed [{check.cited}]: {check.action}: the {check.looked_in} {seen}"
    row = task.row(check.structure)
    if row is not None:
        recorded = "shared" if row.shared else "copied"
        text += f" (the recording: {check.structure} {recorded})"
        if row.shared != check.seen:
            text += "; the program's observation and the recording disagree"
    return text


def observed_lines(task: NewTask) -> list[str]:
    lines = [check_line(check, task) for check in task.checks]
    pids = task.pids
    if pids is not None:
        how = "" if pids.source == "getpid()" else f" (read as its {pids.source})"
        text = (f"observed [{pids.cited}]: getpid() is {pids.task_pid} in the new task{how}, "
                f"{pids.parent_pid} in the parent")
        if pids.task_pid != task.child_tgid:
            text += f"; the recording says tgid {task.child_tgid}: they disagree"
        lines.append(text)
    seen = task.exec_seen
    if seen is not None:
        vfork = " (CLONE_VFORK: the parent waited for it)" if "CLONE_VFORK" in task.flags else ""
        lines.append(f"observed [{seen.cited}]: when the parent's call returned, the new task already ran "
                     f"{seen.program}{vfork}; the recording holds no exec event")
    return lines


def task_lines(facts: Sequence[Fact]) -> list[str]:
    lines = []
    tasks = tasks_of(facts)
    for task in tasks:
        lines.append(task_heading(task) + ":")
        lines += [f"  {row.name:<8} parent {row.parent}  child {row.child}  {row_verdict(row)}" for row in task.rows]
        lines.append(f"  {pid_line(task)}")
        lines += [f"  {line}" for line in observed_lines(task)]
    total = next((fact.total for fact in facts if isinstance(fact, TaskTotal)), len(tasks))
    if total > len(tasks):
        lines.append(f"... and {total - len(tasks)} more new tasks")
    return lines


def signal_line(seen: SignalSeen) -> str:
    to = f"process {seen.target} (the whole thread group)" if seen.group else f"thread {seen.target} alone"
    text = f"{seen.name} sent by {seen.sender.comm}[{seen.sender.pid}] to {to}"
    if seen.sig == SIGCONT and seen.result == "ignored":
        return (f"{text}: the signal itself was dropped when queued (ignored); kernel source (kernel/signal.c "
                "prepare_signal): SIGCONT resumes the stopped threads as it is sent, and continuing is its "
                "default action")
    if seen.result != "delivered":
        return f"{text}: {seen.result} when queued"
    taker = seen.taken_by
    if taker is None:
        return f"{text}: queued, not seen taken"
    if taker.pid != taker.tgid:
        text += (f": taken by thread {taker.pid}, not the main thread {taker.tgid} (kernel source: "
                 "complete_signal picks a thread that does not block it)")
    else:
        text += f": taken by {taker.comm}[{taker.pid}]"
    if seen.sig == SIGSTOP:
        text += "; the stop acted when it was taken (get_signal), not when it was sent"
    return text


def stop_completed_line(stop: StopCompleted) -> str:
    return (f"the group stop completed in thread {stop.thread.pid} of process {stop.thread.tgid} (do_signal_stop, "
            f"on the stack of the SIGCHLD it sent to {stop.notified})")


def _states(states: Mapping[str, str]) -> str:
    return ", ".join(f"tid {tid} {state}" for tid, state in states.items()) or "?"


def states_line(seen: StatesSeen) -> str:
    stopped = "every thread stopped" if seen.all_stopped else "not every thread stopped"
    resumed = "none stopped" if seen.all_resumed else "some still stopped"
    return (f"observed [{seen.cited}]: after SIGSTOP to process {seen.process}, {stopped} ({_states(seen.stopped)}); "
            f"after SIGCONT, {resumed} ({_states(seen.resumed)})")


def handled_line(seen: HandledSeen) -> str:
    handled = "handled" if seen.handled else "not handled within the program's wait"
    threads = ", ".join(str(tid) for tid in seen.not_blocking) or "none"
    return (f"observed [{seen.cited}]: signal {seen.sig} sent to process {seen.process}: {handled}; "
            f"threads not blocking it at the time: {threads}")


def pause_line(seen: PauseLeft) -> str:
    if seen.left_pause:
        ended = f"left pause() and exited ({seen.exit_code})"
    else:
        ended = "did not leave pause() in time (the program killed it)"
    return f"observed [{seen.cited}]: signal {seen.sig} sent to task {seen.target}: it {ended}"


def signal_lines(facts: Sequence[Fact]) -> list[str]:
    lines: list[str] = []
    for fact in facts:
        if isinstance(fact, SignalSeen):
            lines.append(f"Signal: {signal_line(fact)}")
        elif isinstance(fact, StopCompleted):
            lines.append(f"Signal: {stop_completed_line(fact)}")
        elif isinstance(fact, ChildNotices):
            also = "and " if lines else ""
            lines.append(f"Signal: {also}{fact.count} SIGCHLD notice{'s' if fact.count > 1 else ''} to parents, "
                         "ignored (their default action)")
        elif isinstance(fact, StatesSeen):
            lines.append(states_line(fact))
        elif isinstance(fact, HandledSeen):
            lines.append(handled_line(fact))
        elif isinstance(fact, PauseLeft):
            lines.append(pause_line(fact))
    return lines


def task_table(task: NewTask) -> Table:
    from rich.table import Table
    from rich.text import Text

    flags = "|".join(task.flags) or "none"
    table = Table(title=task_heading(task), caption=f"clone flags: {flags}", expand=True,
                  title_justify="left", caption_justify="left")
    for column in ("structure", "parent", "child", "", "decided by"):
        table.add_column(column, no_wrap=column != "decided by", overflow="fold")
    for row in task.rows:
        style = "green" if row.shared else "yellow"
        table.add_row(f"{row.name}_struct", row.parent or "-", Text(row.child or "-", style=style),
                      Text("= same" if row.shared else "≠ copy", style=f"bold {style}"), row_verdict(row))
    table.add_row("", "", "", "", Text(pid_line(task), style="bold"))
    for line in observed_lines(task):
        table.add_row("", "", "", "", Text(line, style="italic"))
    return table


def clone_text(detail: Mapping[str, Any]) -> str:
    shared = detail.get("shared", {})
    same = [name for name, yes in shared.items() if yes]
    copied = [name for name, yes in shared.items() if not yes]
    return (f"{detail.get('kind')} tid={detail.get('child_tid')} tgid={detail.get('child_tgid')}: "
            f"shares {','.join(same) or 'nothing'}; own copy of {','.join(copied) or 'nothing'}")


class TasksView(QuietView):
    """What the core's views call (tracer/story.py StoryView)."""

    def lines(self, facts: Sequence[Fact], compact: bool) -> list[str]:
        """Beside the tables (compact) the tasks are not told again."""
        if compact:
            told = ["Each new task's structures are compared above, parent beside child."] if tasks_of(facts) else []
        else:
            told = task_lines(facts)
        return told + signal_lines(facts)

    def panels(self, facts: Sequence[Fact]) -> list[RenderableType]:
        return [task_table(task) for task in tasks_of(facts)]

    def event_text(self, event: Event) -> str | None:
        return clone_text(event.detail) if event.step == CLONE_STEP else None

    def step_style(self, step: str) -> str | None:
        return None

    def nothing_seen(self) -> str:
        return "no new task, no signal"

    def folded_note(self, count: int) -> str:
        return f"{count} events"


def view() -> TasksView:
    """This lesson's renderer, for the core (tracer/stories.py)."""
    return TasksView()
