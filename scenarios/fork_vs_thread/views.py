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
    SENT_STEP,
    SIGCHLD,
    SIGSETXID,
    TAKEN_STEP,
    Check,
    ChildNotices,
    CloneRefused,
    CredChanged,
    HandledSeen,
    JoinWait,
    NewTask,
    NiceSet,
    PauseLeft,
    SignalSeen,
    SoleStopSeen,
    StatesSeen,
    StopCompleted,
    StructureRow,
    TaskTotal,
    ThreadStack,
)

if TYPE_CHECKING:
    from rich.console import Console, ConsoleOptions, RenderableType, RenderResult
    from rich.table import Table

# the count each structure's sharing is made of (kernel/fork.c), as the kernel names it
COUNT_NAME = {"mm": "mm_users", "fs": "fs->users", "files": "files->count", "sighand": "sighand->count",
              "signal": "signal->sigcnt"}
SIGSTOP, SIGCONT = 19, 18
# include/uapi/asm-generic/siginfo.h: si_code, who sent a signal (SI_*) or, for SIGCHLD, what
# happened to the child (CLD_*)
SENDER_CODES = {0: ("SI_USER", "kill()"), -6: ("SI_TKILL", "tgkill()"), -1: ("SI_QUEUE", "sigqueue()"),
                -2: ("SI_TIMER", "a POSIX timer"), -5: ("SI_SIGIO", "I/O readiness"),
                0x80: ("SI_KERNEL", "the kernel")}
CHILD_CODES = {1: ("CLD_EXITED", "the child exited"), 2: ("CLD_KILLED", "the child was killed"),
               3: ("CLD_DUMPED", "the child was killed and dumped core"),
               4: ("CLD_TRAPPED", "the traced child trapped"), 5: ("CLD_STOPPED", "the child stopped"),
               6: ("CLD_CONTINUED", "the child continued")}
IGNORED = ("dropped as it was queued (ignored): the target's handler is SIG_IGN, or SIG_DFL for a signal whose "
           "default action is to ignore it; kernel source: kernel/signal.c prepare_signal -> sig_ignored")
NOT_QUEUED = {"ignored": IGNORED,
              "already pending": "already pending when queued: a standard signal is queued once until taken "
                                 "(kernel source: kernel/signal.c legacy_queue)",
              "overflow": "not queued: the queue was full (RLIMIT_SIGPENDING)",
              "lost info": "queued without its siginfo (the queue was full)"}
HANDLERS = {"default": "default action", "ignore": "SIG_IGN"}


def code_text(sig: int, code: int | None) -> str:
    """si_code decoded: "CLD_EXITED: the child exited", "SI_TKILL: tgkill()"."""
    if code is None:
        return ""
    if sig == SIGCHLD and code in CHILD_CODES:
        name, what = CHILD_CODES[code]
        return f"{name}: {what}"
    if code in SENDER_CODES:
        name, who = SENDER_CODES[code]
        return f"{name}: {who}"
    return f"si_code {code}"


def named_with_code(name: str, sig: int, code: int | None) -> str:
    """"SIGCHLD [CLD_EXITED: the child exited]": the signal's name with its si_code decoded."""
    decoded = code_text(sig, code)
    return f"{name} [{decoded}]" if decoded else name


def code_name(sig: int, code: int) -> str:
    table = CHILD_CODES if sig == SIGCHLD and code in CHILD_CODES else SENDER_CODES
    return table[code][0] if code in table else f"si_code {code}"


def signal_row_text(step: str, detail: Mapping[str, Any]) -> str | None:
    """A signal row decoded: its code, where it went, what became of it, or who took it how."""
    sig, code = int(detail.get("sig") or 0), detail.get("code")
    name = str(detail.get("name") or f"signal {sig}")
    head = named_with_code(name, sig, code if isinstance(code, int) else None)
    if step == SENT_STEP:
        target = detail.get("target_tid")
        where = f"process {target}" if detail.get("group") else f"thread {target} alone"
        result = str(detail.get("result"))
        fate = "queued" if result == "delivered" else NOT_QUEUED.get(result, result).split(":")[0]
        blocks = "; the target blocks it" if detail.get("target_blocks") else ""
        return f"{head} to {where}: {fate}{blocks}"
    if step == TAKEN_STEP:
        handler = str(detail.get("handler"))
        blocks = "; this thread blocks it" if detail.get("blocks") else ""
        return f"{head} taken here, handler: {HANDLERS.get(handler, f'at {handler}')}{blocks}"
    return None


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


# kernel/fork.c copy_process and kernel_clone: what these flags make the kernel do
FLAG_MEANING = {
    "CLONE_SETTLS": "the thread pointer (fs base on x86-64) set to clone's tls",
    "CLONE_CHILD_CLEARTID": "at its exit the kernel writes 0 to its child_tid word and wakes that futex "
                            "(mm_release): what pthread_join waits on",
    "CLONE_VFORK": "the parent sleeps until the child execs or exits (wait_for_vfork_done)",
    "CLONE_PIDFD": "a pidfd for the child returned to the parent",
}


def flag_lines(task: NewTask) -> list[str]:
    flags = "|".join(task.flags) or "none"
    lines = [f"clone flags: {flags}"]
    meant = [f"{flag}: {FLAG_MEANING[flag]}" for flag in task.flags if flag in FLAG_MEANING]
    if meant:
        lines.append("kernel source (kernel/fork.c): " + "; ".join(meant))
    return lines


def caller_line(task: NewTask) -> str | None:
    """The creating thread made the clone call itself (the clone event runs in it)."""
    if task.kind != "thread" or not task.entry:
        return None
    return (f"made by thread {task.parent_pid} itself, in its own {task.entry}() call: no manager thread "
            "(history: LinuxThreads asked a manager thread to clone each thread; NPTL, Linux 2.6, removed it)")


def cpu_line(task: NewTask) -> str | None:
    if task.first_cpu is None:
        return None
    where = ("its parent's CPU too this time" if task.first_cpu == task.parent_cpu
             else f"its parent ran on CPU {task.parent_cpu}")
    return (f"first woke on CPU {task.first_cpu} ({where}): the CPU is chosen at the first wake-up "
            "(sched_wakeup_new; kernel/sched/core.c wake_up_new_task -> select_task_rq), not kept from the "
            "parent as the article says")


def stack_lines(made: ThreadStack) -> list[str]:
    """Its stack mapping as the kernel saw it made, and the program's reading of /proc/PID/maps."""
    how = ", ".join((*(made.mmap_prot or ()), *(made.mmap_flags or ()))) or "prot and flags not read"
    lines = [f"stack: {made.length} bytes mapped at {made.addr} by {made.creator.comm}[{made.creator.pid}] "
             f"({how}; do_mmap's address from mmap:vm_unmapped_area) before the clone"]
    if made.guard:
        lines.append(f"guard: the lowest {made.guard} bytes stayed PROT_NONE (the mprotect opened the rest): "
                     "a stack overflow faults there instead of writing into the next mapping")
    elif made.guard == 0:
        lines.append("guard: none (the mapping was accessible at once)")
    if made.tls:
        lines.append(f"clone3 got stack {made.stack} + {made.stack_size} bytes and tls {made.tls} "
                     f"(CLONE_SETTLS), {made.tls_below_top} bytes below the mapping's top: glibc's struct "
                     "pthread sits there, at the top of the thread's own stack mapping (glibc source: "
                     "nptl/allocatestack.c)")
    seen = made.seen
    if seen is not None:
        text = (f"observed [{seen.cited}]: the thread's stack pointer {seen.sp} lies in {seen.start}-{seen.end}"
                + (f", above {seen.below_start} {seen.below_perms}" if seen.below_start else ""))
        end = int(made.addr, 16) + made.length
        inside = int(made.addr, 16) <= int(seen.sp, 16) < end
        lines.append(text + ("; inside the recorded stack mapping" if inside
                             else "; outside the recorded stack mapping: they disagree"))
    return lines


def task_lines(facts: Sequence[Fact]) -> list[str]:
    lines = []
    tasks = tasks_of(facts)
    for task in tasks:
        lines.append(task_heading(task) + ":")
        lines += [f"  {row.name:<8} parent {row.parent}  child {row.child}  {row_verdict(row)}" for row in task.rows]
        lines.append(f"  {pid_line(task)}")
        more = [*flag_lines(task), caller_line(task), cpu_line(task),
                *(stack_lines(task.stack) if task.stack else [])]
        lines += [f"  {line}" for line in more if line]
        lines += [f"  {line}" for line in observed_lines(task)]
    total = next((fact.total for fact in facts if isinstance(fact, TaskTotal)), len(tasks))
    if total > len(tasks):
        lines.append(f"... and {total - len(tasks)} more new tasks")
    return lines + history_lines(tasks)


_NO_ROW = StructureRow("", None, None, False, "")


def history_lines(tasks: Sequence[NewTask]) -> list[str]:
    """The article's flag table and structures, against the clones this recording holds."""
    if not tasks:
        return []
    pidfd = sum("CLONE_PIDFD" in task.flags for task in tasks)
    lines = [f"History: the article's CLONE_PID (0x1000, Linux 2.4: the child kept its parent's pid) was removed "
             f"in 2.5; 0x1000 is CLONE_PIDFD since 5.2, set in {pidfd} of the {len(tasks)} clones here"]
    apart = next((task for task in tasks if (task.row("sighand") or _NO_ROW).shared
                  and not (task.row("signal") or _NO_ROW).shared), None)
    if apart is not None:
        lines.append(f"History: tid {apart.child_tid} shares sighand_struct (the handlers) but not signal_struct "
                     "(the group's pending signals, rlimits, stop state), which only CLONE_THREAD shares: "
                     "LinuxThreads threads shared handlers, never one signal_struct (kernel/fork.c copy_signal)")
    return lines



def signal_line(seen: SignalSeen) -> str:
    to = f"process {seen.target} (the whole thread group)" if seen.group else f"thread {seen.target} alone"
    name = named_with_code(seen.name, seen.sig, seen.code)
    text = f"{name} sent by {seen.sender.comm}[{seen.sender.pid}] to {to}"
    if seen.sig == SIGCONT and seen.result == "ignored":
        return (f"{text}: the signal itself was dropped when queued (ignored); kernel source (kernel/signal.c "
                "prepare_signal): SIGCONT resumes the stopped threads as it is sent, and continuing is its "
                "default action")
    if seen.result != "delivered":
        return f"{text}: {NOT_QUEUED.get(seen.result, seen.result + ' when queued')}"
    taker = seen.taken_by
    if taker is None:
        return f"{text}: queued, not seen taken"
    if not seen.group:
        text += f": taken by thread {taker.pid}"
    elif taker.pid != taker.tgid:
        text += (f": taken by thread {taker.pid}, not the main thread {taker.tgid} (kernel source: "
                 "complete_signal picks a thread that does not block it)")
    else:
        text += f": taken by {taker.comm}[{taker.pid}]"
    if seen.sig == SIGSTOP:
        text += "; the stop acted when it was taken (get_signal), not when it was sent"
    if seen.group and seen.target_blocks and taker.pid != seen.target:
        text += (f"; thread {seen.target} blocks it and thread {taker.pid} does not (task_struct.blocked, read in "
                 "the kernel): the blocked mask is each thread's own although they share one sighand_struct; "
                 "the article's CLONE_SIGHAND sharing the mask is wrong for today")
    if seen.sig == SIGSETXID and not seen.group:
        text += " (glibc's setuid() asking this thread to change its own credentials)"
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


def sole_stop_line(seen: SoleStopSeen, facts: Sequence[Fact]) -> str:
    others = ", ".join(f"tid {tid} {state}" for tid, state in seen.others.items()) or "?"
    alone = seen.state == "T" and all(state != "T" for state in seen.others.values())
    text = (f"observed [{seen.cited}]: after SIGSTOP to task {seen.target}: it {seen.state}, the parent's threads "
            f"{others}; after SIGCONT it {seen.resumed}")
    own_group = any(isinstance(f, StopCompleted) and f.thread.pid == f.thread.tgid == seen.target for f in facts)
    if alone and own_group:
        text += (f": it alone stopped, since its thread group is itself (the group stop completed in it, "
                 f"tgid {seen.target}); a pthread process stops whole")
    return text


def cred_line(changed: CredChanged) -> str:
    who = f"{changed.thread.comm}[{changed.thread.pid}]"
    text = f"setuid({changed.uid}) ran in {who}: its struct cred {changed.old_cred} -> {changed.new_cred}"
    if changed.prompted_by is not None:
        return (text + f", after signal 33 from thread {changed.prompted_by}: each thread changes its own "
                "credentials (kernel/sys.c: setuid acts on the calling task only), glibc makes every thread do it")
    if changed.sent_to:
        sent = ", ".join(str(tid) for tid in changed.sent_to)
        return text + f", after it sent signal 33 to thread {sent} (glibc's setuid(), nptl/nptl_setxid.c)"
    if changed.others_near:
        return text
    return (text + ": this thread's alone, no signal 33 sent and no other thread's cred changed (the raw system "
            "call: the kernel's setuid is per thread, as LinuxThreads exposed it; glibc hides that)")


def nice_line(seen: NiceSet) -> str:
    reads = ", ".join(f"tid {tid} {value}" for tid, value in seen.read_back.items())
    text = (f"nice: {seen.thread.comm}[{seen.thread.pid}] set nice {seen.nice} on tid {seen.who} "
            f"(setpriority PRIO_PROCESS, returned {seen.ret})")
    if reads:
        text += f"; read back (getpriority): {reads}"
    if len(set(seen.read_back.values())) > 1 and seen.read_back.get(seen.who) == seen.nice:
        text += ": the nice value is the thread's own, not the process's (still true; POSIX says per process)"
    return text


def join_line(wait: JoinWait) -> str:
    text = (f"join: {wait.thread.comm}[{wait.thread.pid}] waited {wait.waited_ns // 1_000_000} ms in "
            f"futex({wait.op}) on {wait.uaddr}, the child_tid word of thread {wait.owner_tid} "
            f"(CLONE_CHILD_CLEARTID), returned {wait.ret}")
    if wait.signals_meanwhile == 0:
        text += ("; no signal was sent meanwhile: threads wait for each other with futexes (history: "
                 "LinuxThreads' join and condition waits used signals)")
    return text


def refused_line(refused: CloneRefused) -> str:
    caller = f"{refused.caller.comm}[{refused.caller.pid}]"
    text = (f"clone refused: {caller}'s {refused.entry or 'clone'}() for a new {refused.kind} failed with "
            f"{refused.errno}")
    if refused.nproc_limit is not None:
        text += f"; its RLIMIT_NPROC was {refused.nproc_limit}"
    if refused.nproc_count is not None:
        text += f" and its user had {refused.nproc_count} tasks (cred->ucounts)"
    if refused.limit == "RLIMIT_NPROC" and refused.kind == "thread":
        text += (": RLIMIT_NPROC counts threads, each a task of the user (kernel/fork.c copy_process, "
                 "unless root or CAP_SYS_RESOURCE/CAP_SYS_ADMIN)")
    return text


def limits_line(refused: CloneRefused) -> str | None:
    limits = refused.limits
    if not limits or refused.cited is None:
        return None
    text = (f"observed [{refused.cited}]: {limits.get('threads_started')} thread(s) started under RLIMIT_NPROC "
            f"{limits.get('nproc_limit')}; threads-max {limits.get('threads_max')}, pid_max {limits.get('pid_max')} "
            "(/proc/sys/kernel)")
    system = [limits.get(key) for key in ("threads_max", "pid_max")]
    count = refused.nproc_count
    if count is not None and all(isinstance(value, int) and value > 2 * count for value in system):
        text += f": far above the {count} tasks, so neither system-wide limit refused it"
    return text


def library_lines(facts: Sequence[Fact]) -> list[str]:
    lines: list[str] = []
    for fact in facts:
        if isinstance(fact, CredChanged):
            lines.append(cred_line(fact))
        elif isinstance(fact, NiceSet):
            lines.append(nice_line(fact))
        elif isinstance(fact, JoinWait):
            lines.append(join_line(fact))
        elif isinstance(fact, CloneRefused):
            lines += [line for line in (refused_line(fact), limits_line(fact)) if line]
    return lines


def child_notices_line(notices: ChildNotices, also: str = "") -> str:
    kinds = ", ".join(f"{count} {code_name(SIGCHLD, code)}" for code, count in notices.codes)
    return (f"Signal: {also}{notices.count} SIGCHLD notice{'s' if notices.count > 1 else ''} to parents"
            f"{f' ({kinds})' if kinds else ''}, each dropped as it was queued (ignored): the parent's handler was "
            "SIG_DFL, and SIGCHLD's default action is to ignore it, or SIG_IGN; a parent learns of its child "
            "through wait4() all the same (kernel source: kernel/signal.c prepare_signal -> sig_ignored; "
            "kernel/exit.c do_notify_parent wakes the waiting parent)")


def signal_lines(facts: Sequence[Fact]) -> list[str]:
    lines: list[str] = []
    for fact in facts:
        if isinstance(fact, SignalSeen):
            lines.append(f"Signal: {signal_line(fact)}")
        elif isinstance(fact, StopCompleted):
            lines.append(f"Signal: {stop_completed_line(fact)}")
        elif isinstance(fact, ChildNotices):
            lines.append(child_notices_line(fact, also="and " if lines else ""))
        elif isinstance(fact, StatesSeen):
            lines.append(states_line(fact))
        elif isinstance(fact, HandledSeen):
            lines.append(handled_line(fact))
        elif isinstance(fact, PauseLeft):
            lines.append(pause_line(fact))
        elif isinstance(fact, SoleStopSeen):
            lines.append(sole_stop_line(fact, facts))
    return lines


WIDE_TABLE = 110       # below this the parent's and child's pointers share a column, one above the other


class TaskTable:
    """A new task's structures, parent beside child; on a narrow screen (a projector's 100
    columns, a laptop's 80) the two pointers stack in one cell so the verdict keeps room."""

    def __init__(self, task: NewTask) -> None:
        self.task = task

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        yield self.table(wide=options.max_width >= WIDE_TABLE)

    def table(self, wide: bool) -> Table:
        from rich.table import Table
        from rich.text import Text

        task = self.task
        flags = " | ".join(task.flags) or "none"     # spaced: a narrow screen wraps between flags
        table = Table(title=task_heading(task), caption=f"clone flags: {flags}", expand=True,
                      title_justify="left", caption_justify="left")
        columns = ("structure", "parent", "child", "", "decided by") if wide else \
            ("structure", "parent / child", "decided by")
        for column in columns:
            table.add_column(column, no_wrap=column != "decided by", overflow="fold",
                             ratio=1 if column == "decided by" else None)
        blank = [""] * (len(columns) - 1)
        for row in task.rows:
            style = "green" if row.shared else "yellow"
            mark = Text("= same" if row.shared else "≠ copy", style=f"bold {style}")
            if wide:
                cells: list[str | Text] = [row.parent or "-", Text(row.child or "-", style=style), mark]
            else:
                pair = Text(f"{row.parent or '-'}\n")
                pair.append(f"{row.child or '-'} ", style=style).append_text(mark)
                cells = [pair]
            table.add_row(f"{row.name}_struct", *cells, row_verdict(row))
        table.add_row(*blank, Text(pid_line(task), style="bold"))
        for line in (caller_line(task), cpu_line(task), *(stack_lines(task.stack) if task.stack else [])):
            if line:
                table.add_row(*blank, Text(line))
        for line in observed_lines(task):
            table.add_row(*blank, Text(line, style="italic"))
        return table


def task_table(task: NewTask) -> TaskTable:
    return TaskTable(task)


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
        return told + signal_lines(facts) + library_lines(facts)

    def panels(self, facts: Sequence[Fact]) -> list[RenderableType]:
        return [task_table(task) for task in tasks_of(facts)]

    def event_text(self, event: Event) -> str | None:
        if event.step == CLONE_STEP:
            return clone_text(event.detail)
        return signal_row_text(event.step, event.detail)

    def step_style(self, step: str) -> str | None:
        return None

    def nothing_seen(self) -> str:
        return "no new task, no signal"

    def folded_note(self, count: int) -> str:
        return f"{count} events"


def view() -> TasksView:
    """This lesson's renderer, for the core (tracer/stories.py)."""
    return TasksView()
