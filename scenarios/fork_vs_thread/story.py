"""fork-vs-thread's story model: each new task, structure by structure; the signals sent and the
thread that took each; what the program itself observed (its JSON reports), each kept with
the report it came from so that a sentence resting on it can cite it.

Events and observations in, typed facts out (frozen dataclasses); the sentences are in views.py.
"""
from __future__ import annotations

import bisect
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tracer.events import Event
from tracer.story import Fact, Observation

KEPT_TASKS = 10             # new tasks kept in full
KEPT_SIGNALS = 12
KEPT_OBSERVATIONS = 64
RECENT_COPIES = 256         # dup_fd/dup_mm copies remembered until their clone event arrives

CLONE_STEP = "clone"
SENT_STEP, TAKEN_STEP = "signal_generate", "signal_deliver"
STACK_STEP, REFUSED_STEP, FUTEX_STEP = "thread_stack", "clone_failed", "join_futex"
CRED_STEP, NICE_STEP, WAKEUP_STEP = "cred_change", "nice", "first_wakeup"
THREAD_STEPS = (STACK_STEP, REFUSED_STEP, FUTEX_STEP, CRED_STEP, NICE_STEP, WAKEUP_STEP)
SIGSETXID = 33              # glibc nptl/pthreadP.h: its setuid() broadcast
KEPT_THREAD_FACTS = 16
SETXID_NEAR_NS = 50_000_000     # one setuid() broadcast takes well under this
RECENT_SIGNALS = 256            # (time, sender's tgid, target) of the last signals sent, for the joins
# kernel/fork.c copy_process: the flag that makes the child share each structure instead of a copy
SHARING_FLAG = {"mm": "CLONE_VM", "fs": "CLONE_FS", "files": "CLONE_FILES", "sighand": "CLONE_SIGHAND",
                "signal": "CLONE_THREAD"}
# the copy functions that fire when the flag is absent, where they are hooked
COPY_STEP = {"mm": "dup_mm", "files": "dup_fd"}
SIGCHLD = 17


# ---- facts ------------------------------------------------------------------------------

@dataclass(frozen=True)
class StructureRow:
    name: str
    parent: str | None
    child: str | None
    shared: bool
    flag: str
    copied_by: str | None = None      # "dup_fd" when that copy was seen
    count_after: int | None = None    # the structure's reference count read right after the clone


@dataclass(frozen=True)
class Check:
    """The program changed one structure in one task and looked in the other (a report)."""

    structure: str
    action: str             # in the program's words: "chdir()", "prlimit(RLIMIT_NOFILE) on the new task"
    changed: str            # whose structure it changed: "new task" or "parent"
    looked_in: str          # where it looked for the change
    seen: bool
    cited: str


@dataclass(frozen=True)
class PidsSeen:
    """getpid() (and gettid()) as the program read them in the new task and in its parent."""

    task_pid: int
    parent_pid: int
    task_tid: int | None
    parent_tid: int | None
    source: str             # how the new task's was read: "getpid()", or its Tgid in /proc
    cited: str


@dataclass(frozen=True)
class ExecSeen:
    """What the new task ran when the parent's call returned, as the program read /proc/PID/exe."""

    program: str
    cited: str


@dataclass(frozen=True)
class StackSeen:
    """The program's reading of /proc/PID/maps: the mapping its thread's stack pointer lies in,
    and the one just below it."""

    sp: str
    start: str
    end: str
    below_start: str | None
    below_perms: str | None
    cited: str


@dataclass(frozen=True)
class ThreadStack:
    """A thread_stack event: the mapping made for a new task's stack, and what clone3 was given."""

    creator: Thread
    child_tid: int
    addr: str
    length: int
    guard: int | None
    mmap_prot: tuple[str, ...] | None
    mmap_flags: tuple[str, ...] | None
    stack: str
    stack_size: int
    tls: str | None
    tls_below_top: int | None
    seen: StackSeen | None = None


@dataclass(frozen=True)
class NewTask:
    parent_comm: str
    parent_pid: int
    parent_tgid: int
    kind: str
    entry: str | None
    flags: tuple[str, ...]
    child_tid: int
    child_tgid: int
    rows: tuple[StructureRow, ...]
    checks: tuple[Check, ...] = ()
    pids: PidsSeen | None = None
    exec_seen: ExecSeen | None = None
    first_cpu: int | None = None        # sched_wakeup_new's target_cpu
    parent_cpu: int | None = None       # the CPU the parent ran on then
    stack: ThreadStack | None = None

    @property
    def same_thread_group(self) -> bool:
        return self.child_tgid == self.parent_tgid

    @property
    def shares_address_space(self) -> bool:
        return any(row.name == "mm" and row.shared for row in self.rows)

    def row(self, name: str) -> StructureRow | None:
        return next((row for row in self.rows if row.name == name), None)


@dataclass(frozen=True)
class TaskTotal:
    total: int


@dataclass(frozen=True)
class Thread:
    comm: str
    pid: int
    tgid: int


@dataclass(frozen=True)
class CloneRefused:
    """clone_failed: the kernel refused a new task; with the program's reading of the limits."""

    caller: Thread
    errno: str
    limit: str | None
    kind: str
    entry: str | None
    nproc_limit: int | None
    nproc_count: int | None
    threads: int | None
    limits: Mapping[str, Any] | None = None     # the program's report: threads-max, pid_max, ...
    cited: str | None = None


@dataclass(frozen=True)
class CredChanged:
    """cred_change: setuid() ran in this thread and gave it a new struct cred. `prompted_by`: the
    thread whose signal 33 it took first; `sent_to`: the threads this one sent signal 33 to first."""

    thread: Thread
    old_cred: str | None
    new_cred: str | None
    uid: int | None
    ret: int | None
    prompted_by: int | None
    sent_to: tuple[int, ...]
    others_near: bool               # another thread of its process changed its cred close by


@dataclass(frozen=True)
class NiceSet:
    thread: Thread
    who: int
    nice: int | None
    ret: int | None
    read_back: Mapping[int, int]          # getpriority() after it: tid -> nice


@dataclass(frozen=True)
class JoinWait:
    """join_futex: a futex wait on a thread's tid word (CLONE_CHILD_CLEARTID), and the signals
    between the two threads' processes while it waited."""

    thread: Thread
    owner_tid: int
    uaddr: str
    op: str
    ret: int | None
    waited_ns: int
    signals_meanwhile: int


@dataclass(frozen=True)
class SoleStopSeen:
    """The program stopped one task with SIGSTOP and read its state and its parent's threads'."""

    target: int
    state: str
    others: Mapping[str, str]
    resumed: str
    cited: str


@dataclass(frozen=True)
class SignalSeen:
    """A signal queued (signal_generate) and the thread that took it (signal_deliver), if seen."""

    sig: int
    name: str
    sender: Thread
    target: int | None
    group: bool
    result: str
    taken_by: Thread | None
    target_blocks: bool | None = None     # the target's own blocked mask had it (read in the kernel)
    taker_blocks: bool | None = None
    code: int | None = None               # si_code as signal_generate recorded it


@dataclass(frozen=True)
class StopCompleted:
    """A thread group's stop completed in one thread (do_signal_stop), told to the parent by a
    SIGCHLD (CLD_STOPPED): seen on that SIGCHLD's stack."""

    thread: Thread
    notified: int | None


@dataclass(frozen=True)
class ChildNotices:
    """SIGCHLD sent to parents and ignored (a child stopped, resumed or exited): how many of
    each si_code (CLD_EXITED, CLD_STOPPED, ...) the recording holds."""

    count: int
    codes: tuple[tuple[int, int], ...] = ()     # (si_code, how many), in code order


@dataclass(frozen=True)
class StatesSeen:
    """Each thread's state (/proc/PID/task/TID/stat) the program read after SIGSTOP, after SIGCONT."""

    process: int
    stopped: Mapping[str, str]
    resumed: Mapping[str, str]
    cited: str

    @property
    def all_stopped(self) -> bool:
        return bool(self.stopped) and all(state == "T" for state in self.stopped.values())

    @property
    def all_resumed(self) -> bool:
        return bool(self.resumed) and all(state != "T" for state in self.resumed.values())


@dataclass(frozen=True)
class HandledSeen:
    """The program sent a signal to its own process and saw whether it was handled, and which
    threads did not block it at the time (SigBlk in /proc)."""

    sig: int
    process: int
    handled: bool
    not_blocking: tuple[int, ...]
    cited: str


@dataclass(frozen=True)
class PauseLeft:
    """The program sent a signal to one task and saw whether it left pause() and how it ended."""

    sig: int
    target: int
    left_pause: bool
    exit_code: int | None
    cited: str


# ---- the model ------------------------------------------------------------------------

@dataclass
class NewTasks:
    """Each clone event, structure by structure; the first few kept, the others counted."""

    clones: list[Event] = field(default_factory=list)
    count: int = 0
    # dup_fd/dup_mm return inside copy_process, so they arrive before their clone event
    recent_copies: deque[tuple[str, str | None]] = field(default_factory=lambda: deque(maxlen=RECENT_COPIES))
    copies_of_kept: set[tuple[str, str | None]] = field(default_factory=set)

    def add(self, event: Event) -> None:
        if event.step in COPY_STEP.values():
            self.recent_copies.append((event.step, event.detail.get("copy")))
            self._keep_copies()
        elif event.step == CLONE_STEP:
            self.count += 1
            if len(self.clones) < KEPT_TASKS:
                bisect.insort(self.clones, event, key=lambda e: e.ts_ns)
                self._keep_copies()

    def _keep_copies(self) -> None:
        kept_children = {child for clone in self.clones for child in clone.detail.get("child", {}).values()}
        self.copies_of_kept |= {copy for copy in self.recent_copies if copy[1] in kept_children}

    def _copied_by(self, name: str, child: str | None) -> str | None:
        step = COPY_STEP.get(name)
        return step if step and child and (step, child) in self.copies_of_kept else None

    def rows(self, event: Event) -> tuple[StructureRow, ...]:
        detail = event.detail
        child = detail.get("child", {})
        users = detail.get("users") or {}
        return tuple(StructureRow(name, detail.get("parent", {}).get(name), child.get(name),
                                  bool(detail.get("shared", {}).get(name)), flag,
                                  self._copied_by(name, child.get(name)), users.get(name))
                     for name, flag in SHARING_FLAG.items())

    def tasks(self, observations: list[Observation], wakeups: Mapping[int, Event] | None = None,
              stacks: Mapping[int, ThreadStack] | None = None) -> list[NewTask]:
        tasks = []
        for event in self.clones:
            detail = event.detail
            child_tid = int(detail.get("child_tid", 0))
            about = [seen for seen in observations if seen.facts.get("child") == child_tid]
            tasks.append(NewTask(event.comm, event.pid, event.tgid, str(detail.get("kind")),
                                 detail.get("entry"), tuple(detail.get("flags", [])), child_tid,
                                 int(detail.get("child_tgid", 0)), self.rows(event),
                                 tuple(check for seen in about for check in checks_in(seen)),
                                 next((p for p in map(pids_in, about) if p is not None), None),
                                 next((e for e in map(exec_in, about) if e is not None), None),
                                 *_cpus((wakeups or {}).get(child_tid)), (stacks or {}).get(child_tid)))
        return tasks


def _cpus(wakeup: Event | None) -> tuple[int | None, int | None]:
    if wakeup is None:
        return None, None
    return _int(wakeup.detail.get("target_cpu")), _int(wakeup.detail.get("parent_cpu"))


def checks_in(seen: Observation) -> list[Check]:
    found = seen.facts.get("checks")
    if not isinstance(found, list):
        return []
    return [Check(str(c.get("structure")), str(c.get("action")), str(c.get("changed")), str(c.get("looked_in")),
                  bool(c.get("seen")), seen.cite())
            for c in found if isinstance(c, dict) and isinstance(c.get("seen"), bool)]


def pids_in(seen: Observation) -> PidsSeen | None:
    pids, tids = seen.facts.get("getpid"), seen.facts.get("gettid")
    if not isinstance(pids, dict) or "new task" not in pids or "parent" not in pids:
        return None
    tids = tids if isinstance(tids, dict) else {}
    return PidsSeen(int(pids["new task"]), int(pids["parent"]), _int(tids.get("new task")), _int(tids.get("parent")),
                    str(seen.facts.get("pid_source") or "getpid()"), seen.cite())


def exec_in(seen: Observation) -> ExecSeen | None:
    program = seen.facts.get("running_at_return")
    return ExecSeen(str(program), seen.cite()) if isinstance(program, str) and program else None


def _int(value: object) -> int | None:
    return value if isinstance(value, int) else None


def _thread(event: Event) -> Thread:
    return Thread(event.comm, event.pid, event.tgid)


@dataclass
class Signals:
    """The first signals sent and taken: a generate waits for the deliver that matches it."""

    sent: list[Event] = field(default_factory=list)
    taken: dict[int, Event] = field(default_factory=dict)       # index in sent -> its deliver
    count: int = 0
    child_notices: int = 0
    child_codes: dict[int, int] = field(default_factory=dict)     # si_code -> ignored SIGCHLDs
    stops_completed: list[StopCompleted] = field(default_factory=list)

    def add(self, event: Event) -> None:
        if event.step == SENT_STEP:
            self.count += 1
            if self._child_notice(event):
                return
            if len(self.sent) < KEPT_SIGNALS:
                self.sent.append(event)
        elif event.step == TAKEN_STEP:
            self._match(event)

    def _child_notice(self, event: Event) -> bool:
        """A SIGCHLD ignored by its parent; one sent from do_signal_stop marks a completed group stop."""
        detail = event.detail
        if detail.get("sig") != SIGCHLD or detail.get("result") != "ignored":
            return False
        self.child_notices += 1
        code = detail.get("code")
        if isinstance(code, int):
            self.child_codes[code] = self.child_codes.get(code, 0) + 1
        if event.stack and "do_signal_stop" in event.stack and len(self.stops_completed) < KEPT_SIGNALS:
            self.stops_completed.append(StopCompleted(_thread(event), detail.get("target_tid")))
        return True

    def _match(self, event: Event) -> None:
        sig = event.detail.get("sig")
        for index, sent in enumerate(self.sent):
            detail = sent.detail
            wanted = (event.tgid,) if detail.get("group") else (event.pid,)
            if index not in self.taken and detail.get("sig") == sig and detail.get("target_tid") in wanted:
                self.taken[index] = event
                return

    def facts(self) -> list[Fact]:
        facts: list[Fact] = []
        for index, sent in enumerate(self.sent):
            detail = sent.detail
            taker = self.taken.get(index)
            facts.append(SignalSeen(int(detail.get("sig", 0)), str(detail.get("name") or f"signal {detail.get('sig')}"),
                                    _thread(sent), detail.get("target_tid"), bool(detail.get("group")),
                                    str(detail.get("result")), None if taker is None else _thread(taker),
                                    _flag(detail.get("target_blocks")),
                                    None if taker is None else _flag(taker.detail.get("blocks")),
                                    detail.get("code") if isinstance(detail.get("code"), int) else None))
        facts += self.stops_completed
        if self.child_notices:
            facts.append(ChildNotices(self.child_notices, tuple(sorted(self.child_codes.items()))))
        return facts


def _flag(value: object) -> bool | None:
    return value if isinstance(value, bool) else None


def stack_seen_in(seen: Observation) -> StackSeen | None:
    found = seen.facts.get("stack_seen")
    if not isinstance(found, dict) or not isinstance(found.get("mapping"), dict) or not found.get("sp"):
        return None
    mapping, below = found["mapping"], found.get("below")
    below = below if isinstance(below, dict) else {}
    return StackSeen(str(found["sp"]), str(mapping.get("start")), str(mapping.get("end")),
                     below.get("start"), below.get("perms"), seen.cite())


def _names(detail: Mapping[str, Any], key: str) -> tuple[str, ...] | None:
    found = detail.get(key)
    return tuple(found) if isinstance(found, list) else None


def thread_stack(event: Event, observations: Sequence[Observation]) -> ThreadStack:
    detail = event.detail
    child = int(detail.get("child_tid") or 0)
    seen = next((found for found in (stack_seen_in(o) for o in observations if o.facts.get("child") == child)
                 if found is not None), None)
    return ThreadStack(_thread(event), child, str(detail.get("addr")), int(detail.get("len") or 0),
                       _int(detail.get("guard")), _names(detail, "mmap_prot"), _names(detail, "mmap_flags"),
                       str(detail.get("stack")),
                       int(detail.get("stack_size") or 0), detail.get("tls"), _int(detail.get("tls_below_top")), seen)


@dataclass
class ThreadLibrary:
    """What a thread library does around clone: stacks, refusals, setuid, nice, joins, first wake-ups."""

    stacks: list[Event] = field(default_factory=list)
    refused: list[Event] = field(default_factory=list)
    creds: list[Event] = field(default_factory=list)
    nices: list[Event] = field(default_factory=list)
    joins: list[Event] = field(default_factory=list)
    wakeups: dict[int, Event] = field(default_factory=dict)
    setxid_sent: list[Event] = field(default_factory=list)      # signal 33, kept for the creds
    signal_times: deque[tuple[int, int, int]] = field(default_factory=lambda: deque(maxlen=RECENT_SIGNALS))

    def add(self, event: Event) -> None:
        kept = {STACK_STEP: self.stacks, REFUSED_STEP: self.refused, CRED_STEP: self.creds, NICE_STEP: self.nices,
                FUTEX_STEP: self.joins}.get(event.step)
        if kept is not None and len(kept) < KEPT_THREAD_FACTS:
            kept.append(event)
        elif event.step == WAKEUP_STEP and len(self.wakeups) < KEPT_TASKS * 4:
            self.wakeups.setdefault(int(event.detail.get("child_tid") or 0), event)

    def signal(self, event: Event) -> None:
        """Signals sent, for the setuid broadcast and for what a join did not use."""
        if event.step != SENT_STEP:
            return
        self.signal_times.append((event.ts_ns, event.tgid, int(event.detail.get("target_tid") or 0)))
        if event.detail.get("sig") == SIGSETXID and len(self.setxid_sent) < KEPT_THREAD_FACTS * 4:
            self.setxid_sent.append(event)

    def stack_facts(self, observations: Sequence[Observation]) -> dict[int, ThreadStack]:
        return {made.child_tid: made for made in (thread_stack(e, observations) for e in self.stacks)}

    def cred_facts(self) -> list[CredChanged]:
        facts = []
        for index, event in enumerate(self.creds):
            since = max((e.ts_ns for e in self.creds[:index] if e.pid == event.pid), default=0)
            prompted = [s for s in self.setxid_sent if s.detail.get("target_tid") == event.pid
                        and since < s.ts_ns < event.ts_ns]
            sent = tuple(int(s.detail.get("target_tid") or 0) for s in self.setxid_sent
                         if s.pid == event.pid and since < s.ts_ns < event.ts_ns)
            detail = event.detail
            near = any(e.tgid == event.tgid and e.pid != event.pid and e.ts_ns > since
                       and abs(e.ts_ns - event.ts_ns) < SETXID_NEAR_NS for e in self.creds)
            facts.append(CredChanged(_thread(event), detail.get("old_cred"), detail.get("new_cred"),
                                     _int(detail.get("uid")), _int(detail.get("ret")),
                                     prompted[-1].pid if prompted else None, sent, near))
        return facts

    def nice_facts(self) -> list[NiceSet]:
        facts = []
        for event in self.nices:
            if event.detail.get("call") != "setpriority":
                continue
            reads = {int(e.detail.get("who") or 0): int(e.detail["nice"]) for e in self.nices
                     if e.detail.get("call") == "getpriority" and e.ts_ns > event.ts_ns
                     and isinstance(e.detail.get("nice"), int) and e.tgid == event.tgid}
            facts.append(NiceSet(_thread(event), int(event.detail.get("who") or 0), _int(event.detail.get("nice")),
                                 _int(event.detail.get("ret")), reads))
        return facts

    def join_facts(self) -> list[JoinWait]:
        facts = []
        for event in self.joins:
            detail = event.detail
            waited = int(detail.get("waited_ns") or 0)
            owner = int(detail.get("owner_tid") or 0)
            meanwhile = sum(1 for ts, tgid, target in self.signal_times
                            if event.ts_ns - waited <= ts <= event.ts_ns and (tgid == event.tgid or target in
                                                                              (event.pid, owner)))
            facts.append(JoinWait(_thread(event), owner, str(detail.get("uaddr")), str(detail.get("op")),
                                  _int(detail.get("ret")), waited, meanwhile))
        return facts

    def refused_facts(self, observations: Sequence[Observation]) -> list[CloneRefused]:
        limits = next((seen for seen in observations if "nproc_limit" in seen.facts), None)
        facts = []
        for event in self.refused:
            detail = event.detail
            facts.append(CloneRefused(_thread(event), str(detail.get("errno")), detail.get("limit"),
                                      str(detail.get("kind")), detail.get("entry"), _int(detail.get("nproc_limit")),
                                      _int(detail.get("nproc_count")), _int(detail.get("threads")),
                                      None if limits is None else dict(limits.facts),
                                      None if limits is None else limits.cite()))
        return facts


def states(value: object) -> Mapping[str, str]:
    return {str(tid): str(state) for tid, state in value.items()} if isinstance(value, dict) else {}


def program_facts(seen: Observation) -> list[Fact]:
    """What one report says that is no new task's: thread states, a signal handled, a pause left."""
    facts: Mapping[str, Any] = seen.facts
    found: list[Fact] = []
    if "stopped" in facts and "process" in facts:
        found.append(StatesSeen(int(facts["process"]), states(facts.get("stopped")), states(facts.get("resumed")),
                                seen.cite()))
    if isinstance(facts.get("handled"), bool) and "process" in facts:
        found.append(HandledSeen(int(facts.get("sig", 0)), int(facts["process"]), facts["handled"],
                                 tuple(int(t) for t in facts.get("not_blocking", []) if isinstance(t, int)),
                                 seen.cite()))
    sole = facts.get("sole_stop")
    if isinstance(sole, dict) and isinstance(sole.get("target"), int):
        found.append(SoleStopSeen(sole["target"], str(sole.get("state")), states(sole.get("others")),
                                  str(sole.get("resumed")), seen.cite()))
    if isinstance(facts.get("left_pause"), bool) and "target" in facts:
        found.append(PauseLeft(int(facts.get("sig", 0)), int(facts["target"]), facts["left_pause"],
                               _int(facts.get("exit_code")), seen.cite()))
    return found


@dataclass
class TasksAndSignals:
    """The lesson's model as the core sees it (tracer/story.py StoryModel)."""

    new_tasks: NewTasks = field(default_factory=NewTasks)
    signals: Signals = field(default_factory=Signals)
    library: ThreadLibrary = field(default_factory=ThreadLibrary)
    observations: list[Observation] = field(default_factory=list)

    def add(self, event: Event) -> None:
        if event.step in (SENT_STEP, TAKEN_STEP):
            self.signals.add(event)
            self.library.signal(event)
        elif event.step in THREAD_STEPS:
            self.library.add(event)
        else:
            self.new_tasks.add(event)

    def observe(self, observation: Observation) -> None:
        if len(self.observations) < KEPT_OBSERVATIONS:
            self.observations.append(observation)

    def folds(self, event: Event) -> bool:
        return False

    def about(self, event: Event) -> bool:
        return event.step in (CLONE_STEP, SENT_STEP, TAKEN_STEP, *THREAD_STEPS)

    def facts(self) -> list[Fact]:
        library = self.library
        tasks = self.new_tasks.tasks(self.observations, library.wakeups, library.stack_facts(self.observations))
        facts: list[Fact] = list(tasks)
        if self.new_tasks.count:
            facts.append(TaskTotal(self.new_tasks.count))
        facts += self.signals.facts()
        facts += library.cred_facts() + library.nice_facts()
        facts += library.join_facts()
        facts += library.refused_facts(self.observations)
        for seen in self.observations:
            facts += program_facts(seen)
        return facts


def model() -> TasksAndSignals:
    """This lesson's story model, for the core (tracer/stories.py)."""
    return TasksAndSignals()


def new_tasks(events: Sequence[Event], reports: Sequence[Mapping[str, Any]] = ()) -> list[NewTask]:
    """The new-task facts of these events and program reports alone (tests, one-off scripts)."""
    story = TasksAndSignals()
    for number, report in enumerate(reports, start=1):
        story.observe(Observation(number, str(report.get("role", "?")), report))
    for event in events:
        story.add(event)
    return story.new_tasks.tasks(story.observations)
