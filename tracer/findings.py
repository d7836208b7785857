"""What the events prove: one model, built one event at a time, that every view renders.

A live session and a replayed recording feed the same model, so they reach the same
conclusions. Memory stays flat whatever the number of events: the model keeps the
first few stories of each kind in full (what the screens show) and counts the rest.
"""
from __future__ import annotations

import bisect
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from tracer.events import Event
from tracer.observer import Observer, OutputLine
from tracer.paths import Paths

KEPT_STORIES = 6            # shared files, file lives and new tasks kept in full
KEPT_EVENTS_PER_FILE = 64   # events of one file's life kept for its story
KEPT_REPORTS = 1000         # JSON lines the traced program printed
KEPT_OUTPUT = 10_000        # lines the traced program printed, kept for the final screen
RECENT_COPIES = 256         # dup_fd/dup_mm copies remembered until their clone event arrives


@dataclass(frozen=True)
class Holder:
    """One process's hold on the shared file: its fd and where it mapped it."""

    comm: str
    pid: int
    tgid: int
    fd: int | None
    address: str | None = None
    vm_flags: tuple[str, ...] = ()
    vma: str | None = None

    @property
    def private(self) -> bool:
        """A mapping whose vma has no VM_SHARED: it reads the file's page-cache pages until
        it writes; a write gives it a copy of its own (copy on write)."""
        return bool(self.vm_flags) and "VM_SHARED" not in self.vm_flags

    @property
    def sharing(self) -> str:
        """How the vma maps the file, as its vm_flags say."""
        if not self.vm_flags:
            return "?"
        if self.private:
            return "private: no VM_SHARED"
        return "|".join(f for f in self.vm_flags if "SHARE" in f)


# What the vm_flags of two mappings of one file mean (mm/memory.c do_fault: do_shared_fault
# for VM_SHARED, do_cow_fault for a write to a private mapping, do_read_fault otherwise).
PRIVATE_MAPPING = ("VM_SHARED is what makes writes shared; a private mapping (no VM_SHARED) reads the "
                   "same page-cache page until it writes, then copy on write gives it a page of its own")


@dataclass(frozen=True)
class InFlight:
    """The struct file in an skb on the receiver's queue, between sendmsg and recvmsg."""

    skb: str
    sock: str


@dataclass(frozen=True)
class PageSeen:
    """The physical page behind one process's mapping of the file (/proc/PID/pagemap)."""

    comm: str
    tgid: int
    address: str
    pfn: int
    file_page: bool          # the page cache's own page; False: a private copy (copy on write)


@dataclass
class SharedFile:
    file: str
    inode: int | None
    creator: Holder
    receivers: list[Holder] = field(default_factory=list)
    refcounts: list[tuple[str, str, int]] = field(default_factory=list)   # (step, comm, count)
    kind: str = "memfd"          # detail file_kind: memfd, pipe, regular, socket, ...
    name: str = ""               # detail file_name
    f_op: str = ""               # detail f_op (and f_op_read where kallsyms lists no data)
    in_flight: list[InFlight] = field(default_factory=list)
    pages: list[PageSeen] = field(default_factory=list)      # in time order

    def refcount_changes(self) -> list[tuple[str, str, int]]:
        """The refcounts seen, each kept only where it differs from the one before."""
        counts = self.refcounts
        return [change for i, change in enumerate(counts) if i == 0 or change[2] != counts[i - 1][2]]

    def same_page(self) -> tuple[int, list[PageSeen]] | None:
        """A page-cache frame that two processes map at once: (pfn, each one's first sight)."""
        holders: dict[int, dict[int, PageSeen]] = {}
        for page in self.pages:
            if page.file_page:
                holders.setdefault(page.pfn, {}).setdefault(page.tgid, page)
        return next(((pfn, list(seen.values())) for pfn, seen in holders.items() if len(seen) > 1), None)

    def private_copies(self) -> list[tuple[PageSeen, PageSeen]]:
        """(the file's page, the copy that replaced it) for each process whose write made one."""
        copies, last_file_page = [], {}
        for page in self.pages:
            if page.file_page:
                last_file_page[page.tgid] = page
            elif page.tgid in last_file_page:
                copies.append((last_file_page.pop(page.tgid), page))
        return copies

    @property
    def what(self) -> str:
        """The file in a few words: "memfd 'syspath-demo', f_op shmem_file_operations"."""
        text = f"{self.kind} {self.name!r}" if self.name else self.kind
        return f"{text}, f_op {self.f_op}" if self.f_op else text

    @property
    def shared(self) -> bool:
        return any(r.tgid != self.creator.tgid for r in self.receivers)

    @property
    def mapped_privately(self) -> bool:
        return any(holder.private for holder in (self.creator, *self.receivers))


# Steps at which a struct file comes into existence (nested: memfd_create > shmem > alloc).
BIRTH_STEPS = ("memfd_create", "shmem_file_setup", "alloc_file_pseudo")


class FileLife:
    """One struct file object, from its birth until its address is reused: a pointer names one
    object only until the slab hands the same address to the next file."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.events: list[Event] = []       # in call order, the first KEPT_EVENTS_PER_FILE
        self.more_events = 0
        self.births: set[str] = set()
        self.ended = False
        self.memfd = False
        self.created: Event | None = None
        self.receivers: set[int] = set()    # tgids that received it (receive_fd)
        self.first_sender: Event | None = None  # its first scm_fp_copy: who passed it first

    @property
    def received_elsewhere(self) -> bool:
        origin = self.origin()
        return origin is not None and bool(self.receivers - {origin.tgid})

    def reborn_by(self, event: Event) -> bool:
        """A birth ends the life of whatever struct file had this address before: one that
        was born already, or one seen without its birth (the ld.so.cache a program mapped
        and closed before its memfd_create got the same slab object)."""
        if self.ended:
            return True
        return event.step in BIRTH_STEPS and (event.step in self.births or (not self.births and bool(self.events)))

    def add(self, event: Event) -> None:
        step = event.step
        if step in BIRTH_STEPS:
            self.births.add(step)
            self.memfd = self.memfd or step in ("memfd_create", "shmem_file_setup")
            if step == "memfd_create" and self.created is None:
                self.created = event
        elif step == "receive_fd":
            self.receivers.add(event.tgid)
        elif step == "scm_fp_copy" and (self.first_sender is None or event.ts_ns < self.first_sender.ts_ns):
            self.first_sender = event
        elif step == "fput":
            self.ended = True
        events = self.events
        if len(events) >= KEPT_EVENTS_PER_FILE:
            self.more_events += 1
        elif not events or events[-1].ts_ns <= event.ts_ns:
            events.append(event)
        else:
            bisect.insort(events, event, key=_stamp)

    def origin(self) -> Event | None:
        """Where the file's story starts: its memfd_create, or, for any other file (a pipe, a
        regular file) passed in SCM_RIGHTS, the first process seen sending it."""
        if self.created is not None:
            return self.created
        return self.first_sender

    def holder(self, event: Event) -> Holder:
        """One process's hold on the file: its fd (from fd_install when the hook that saw the
        file arrive could not tell) and the mapping it made."""
        fd = event.fd
        address = vma = None
        vm_flags: tuple[str, ...] = ()
        for other in (e for e in self.events if e.tgid == event.tgid):
            if fd is None and other.step == "fd_install":
                fd = other.fd
            if address is None and other.step == "do_mmap":
                address, vma = other.detail.get("address"), other.detail.get("vma")
                vm_flags = tuple(other.detail.get("vm_flags", ()))
        return Holder(event.comm, event.pid, event.tgid, fd, address, vm_flags, vma)

    def shared_file(self) -> SharedFile | None:
        """This life as "one struct file in several processes", if it reached another one."""
        created = self.origin()
        if created is None:
            return None
        detail = next((e.detail for e in self.events if "file_kind" in e.detail), created.detail)
        f_op = str(detail.get("f_op") or "")
        if detail.get("f_op_read") and f_op.startswith("0x"):
            f_op += f" (read: {detail['f_op_read']})"
        story = SharedFile(created.file or "", created.inode, self.holder(created),
                           kind=str(detail.get("file_kind") or "memfd"), name=str(detail.get("file_name") or ""),
                           f_op=f_op)
        for event in self.events:
            if event.step == "receive_fd" and event.tgid != created.tgid:
                story.receivers.append(self.holder(event))
            elif event.step == "in_flight":
                story.in_flight.append(InFlight(str(event.detail.get("skb")), str(event.detail.get("sock"))))
            elif event.step == "page":
                story.pages.append(PageSeen(event.comm, event.tgid, str(event.detail.get("addr")),
                                            int(event.detail.get("pfn", 0)), bool(event.detail.get("file_page"))))
            if event.refcount is not None:
                story.refcounts.append((event.step, event.comm, event.refcount))
        return story if story.shared else None


def _stamp(event: Event) -> int:
    return event.ts_ns


# --follow-file: what each step means in the life of one struct file
CHAPTER = {"memfd_create": "created: memfd_create returned fd {fd}", "shmem_file_setup": "made by shmem_file_setup",
           "alloc_file_pseudo": "allocated by alloc_file_pseudo", "fd_install": "installed at fd {fd}",
           "do_mmap": "mapped at {address}", "scm_fp_copy": "sent: in flight in an SCM_RIGHTS message",
           "in_flight": "in flight: in skb {skb} on the receiving sock {sock}'s queue",
           "page": "physical page {pfn:#x} behind {addr}",
           "receive_fd": "received", "fput": "released: the last reference is gone"}


@dataclass(frozen=True)
class Chapter:
    text: str
    event: Event


def chapters_of(life: FileLife) -> list[Chapter]:
    mappers: set[int] = set()
    chapters = []
    for event in (e for e in life.events if e.step in CHAPTER):
        text = CHAPTER[event.step].format(fd=event.fd, address=event.detail.get("address"), skb=event.detail.get("skb"),
                                          sock=event.detail.get("sock"), pfn=int(event.detail.get("pfn", 0)),
                                          addr=event.detail.get("addr"))
        if event.step == "do_mmap":
            text += " again, by another process" if mappers - {event.tgid} else ""
            mappers.add(event.tgid)
        chapters.append(Chapter(text, event))
    return chapters


# the steps that change whether a life reached another process: its origin (memfd_create, the
# first scm_fp_copy) or its receivers (receive_fd); checked for those only, it is a busy loop's
SHARING_STEPS = frozenset({"memfd_create", "scm_fp_copy", "receive_fd"})


class FileStories:
    """Every struct file the events name, grouped into lives; the first few memfd lives and
    the first few shared files are kept, the others counted."""

    def __init__(self) -> None:
        self.current: dict[str, FileLife] = {}      # bounded by the addresses in use at once
        self.memfd_lives: list[FileLife] = []        # kept for --follow-file
        self.memfd_count = 0
        self.shared_lives: list[FileLife] = []       # kept: a file received in another process
        self.shared_count = 0

    def add(self, event: Event) -> None:
        if not event.file:
            return
        life = self.current.get(event.file)
        if life is None or life.reborn_by(event):
            life = self.current[event.file] = FileLife(event.file)
        sharing = event.step in SHARING_STEPS
        was_memfd = life.memfd
        was_shared = sharing and life.received_elsewhere
        life.add(event)
        if life.memfd and not was_memfd:
            self.memfd_count += 1
            if len(self.memfd_lives) < KEPT_STORIES:
                self.memfd_lives.append(life)
        if sharing and not was_shared and life.received_elsewhere:
            self.shared_count += 1
            if len(self.shared_lives) < KEPT_STORIES:
                self.shared_lives.append(life)

    def shared_files(self) -> list[SharedFile]:
        found = (life.shared_file() for life in self.shared_lives)
        return [story for story in found if story is not None]

    def life_stories(self) -> list[tuple[str, list[Chapter]]]:
        return [(life.file, chapters_of(life)) for life in self.memfd_lives]


# kernel/fork.c copy_process: the flag that makes the child share each structure instead of a copy
SHARING_FLAG = {"mm": "CLONE_VM", "fs": "CLONE_FS", "files": "CLONE_FILES", "sighand": "CLONE_SIGHAND",
                "signal": "CLONE_THREAD"}
# the copy functions that fire when the flag is absent, where they are hooked
COPY_STEP = {"mm": "dup_mm", "files": "dup_fd"}
# what the scenario checked after each clone: report key -> (structure, what was done in the child)
CONSEQUENCES = {"cwd_shared": ("fs", "chdir()"), "fd_shared": ("files", "open()"),
                "signal_shared": ("sighand", "SIGUSR2 -> ignore"),
                "rlimit_shared": ("signal", "setrlimit(RLIMIT_NOFILE)")}


# the count each structure's sharing is made of (kernel/fork.c), as the kernel names it
COUNT_NAME = {"mm": "mm_users", "fs": "fs->users", "files": "files->count", "sighand": "sighand->count",
              "signal": "signal->sigcnt"}


@dataclass(frozen=True)
class StructureRow:
    name: str
    parent: str | None
    child: str | None
    shared: bool
    flag: str
    copied_by: str | None = None      # "dup_fd" when that copy was seen
    count: int | None = None          # the structure's reference count right after the clone

    @property
    def count_text(self) -> str:
        """"mm_users 1 -> 2": a shared structure gained the child's reference; a copy starts at 1."""
        if self.count is None:
            return ""
        name = COUNT_NAME[self.name]
        return f"{name} {self.count - 1} -> {self.count}" if self.shared else f"{name} {self.count} (new)"


@dataclass
class NewTask:
    event: Event
    rows: list[StructureRow]
    consequences: list[str] = field(default_factory=list)

    @property
    def same_thread_group(self) -> bool:
        return self.event.detail.get("child_tgid") == self.event.tgid

    @property
    def pid_line(self) -> str:
        """What getpid() (the thread group id) returns in the new task, beside the parent's."""
        detail, event = self.event.detail, self.event
        child = detail.get("child_tgid")
        if self.same_thread_group:
            return f"getpid() returns {child} in both: one process (gettid() {detail.get('child_tid')} vs {event.pid})"
        if detail.get("shared", {}).get("mm") and "CLONE_VFORK" not in detail.get("flags", []):
            return (f"getpid() returns {child} in it, {event.tgid} in its parent: it shares the address space "
                    "but is a process of its own, LinuxThreads' pid problem")
        return f"getpid() returns {child} in it, {event.tgid} in its parent: another process"


def _consequences(event: Event, reports: Sequence[dict[str, Any]]) -> list[str]:
    child = event.detail.get("child_tid")
    lines = []
    for report in (r for r in reports if r.get("child") == child):
        # the scenario acts in the new task and looks in the parent, or, for a task that runs
        # no Python (the LinuxThreads one), acts in the parent and looks in the task
        by_parent = report.get("by") == "parent"
        doer, looker = ("the parent", "the new task") if by_parent else ("the new task", "the parent")
        if "execed_before_return" in report:
            lines.append("the parent's clone returned only once the child had exec'd (CLONE_VFORK)"
                         if report["execed_before_return"] else "the child had not exec'd when the parent went on")
        for key, (structure, action) in CONSEQUENCES.items():
            if key in report:
                seen = f"{looker} sees it" if report[key] else f"{looker} does not see it"
                lines.append(f"{action} in {doer}: {seen} ({structure} "
                             f"{'shared' if report[key] else 'copied'})")
    return lines


class NewTasks:
    """Each clone event, structure by structure; the first few kept, the others counted."""

    def __init__(self) -> None:
        self.clones: list[Event] = []
        self.count = 0
        # dup_fd/dup_mm return inside copy_process, so they arrive before their clone event
        self.recent_copies: deque[tuple[str, str | None]] = deque(maxlen=RECENT_COPIES)
        self.copies_of_kept: set[tuple[str, str | None]] = set()

    def add(self, event: Event) -> None:
        if event.step in COPY_STEP.values():
            self.recent_copies.append((event.step, event.detail.get("copy")))
            self._keep_copies()
        elif event.step == "clone":
            self.count += 1
            if len(self.clones) < KEPT_STORIES:
                bisect.insort(self.clones, event, key=lambda e: e.ts_ns)
                self._keep_copies()

    def _keep_copies(self) -> None:
        kept_children = {child for clone in self.clones for child in clone.detail.get("child", {}).values()}
        self.copies_of_kept |= {copy for copy in self.recent_copies if copy[1] in kept_children}

    def tasks(self, reports: Sequence[dict[str, Any]]) -> list[NewTask]:
        tasks = []
        for event in self.clones:
            detail = event.detail
            child = detail.get("child", {})
            users = detail.get("users") or {}
            rows = [StructureRow(name, detail.get("parent", {}).get(name), child.get(name),
                                 bool(detail.get("shared", {}).get(name)), flag,
                                 self._copied_by(name, child.get(name)), users.get(name))
                    for name, flag in SHARING_FLAG.items()]
            tasks.append(NewTask(event, rows, _consequences(event, reports)))
        return tasks

    def _copied_by(self, name: str, child: str | None) -> str | None:
        step = COPY_STEP.get(name)
        return step if step and child and (step, child) in self.copies_of_kept else None


KEPT_SIGNALS = 12


@dataclass
class SignalStory:
    """A signal queued (signal_generate) and the thread that took it (signal_deliver)."""

    sent: Event
    taken: Event | None = None

    def line(self) -> str:
        detail = self.sent.detail
        name, target = detail.get("name", f"signal {detail.get('sig')}"), detail.get("target_tid")
        to = f"process {target} (the whole thread group)" if detail.get("group") else f"thread {target} alone"
        text = f"{name} sent by {self.sent.comm}[{self.sent.pid}] to {to}"
        if name == "SIGCONT" and detail.get("result") == "ignored":
            return (f"{text}: the stopped threads resumed as it was sent (kernel/signal.c prepare_signal), "
                    "then the signal itself was dropped: continuing is its default action")
        if detail.get("result") != "delivered":
            return f"{text}: {detail.get('result')} when queued"
        if self.taken is None:
            return f"{text}: queued, not seen taken"
        taker = self.taken
        if taker.pid != taker.tgid:
            return (f"{text}: taken by thread {taker.pid}, not the main thread {taker.tgid} "
                    "(complete_signal picked a thread that does not block it)")
        return f"{text}: taken by {taker.comm}[{taker.pid}]"


class Signals:
    """The first signals each sent and taken: a generate waits for the deliver that matches it."""

    def __init__(self) -> None:
        self.stories: list[SignalStory] = []
        self.count = 0
        self.child_notices = 0

    def add(self, event: Event) -> None:
        if event.step == "signal_generate":
            self.count += 1
            if event.detail.get("name") == "SIGCHLD" and event.detail.get("result") == "ignored":
                self.child_notices += 1           # a child stopped or exited: ignored unless handled
                return
            if len(self.stories) < KEPT_SIGNALS:
                self.stories.append(SignalStory(event))
        elif event.step == "signal_deliver":
            sig = event.detail.get("sig")
            for story in self.stories:
                target = story.sent.detail.get("target_tid")
                if story.taken is None and story.sent.detail.get("sig") == sig and \
                        target in ((event.tgid,) if story.sent.detail.get("group") else (event.pid,)):
                    story.taken = event
                    return


FIRST_EVENTS = 200          # the timeline's rows on the final screen
RECENT_EVENTS = 25          # the live view's rows


class Timeline:
    """The first events in call order (the final screen) and the latest ones (the live view)."""

    def __init__(self) -> None:
        self.first: list[Event] = []
        self.recent: deque[Event] = deque(maxlen=RECENT_EVENTS)
        self.count = 0
        self.folded = 0             # the loader's mappings of libraries (Event.loads_code): not shown

    def add(self, event: Event) -> None:
        self.count += 1
        if event.loads_code:
            self.folded += 1
            return
        self.recent.append(event)
        if len(self.first) < FIRST_EVENTS or event.ts_ns < self.first[-1].ts_ns:
            bisect.insort(self.first, event, key=lambda e: e.ts_ns)
            del self.first[FIRST_EVENTS:]


@dataclass
class Findings(Observer):
    """Everything the views show, from the session header, the events and the program's output.
    It observes a session (or a replay) like any view, and the views render it."""

    header: dict[str, Any] = field(default_factory=dict)
    files: FileStories = field(default_factory=FileStories)
    new_tasks: NewTasks = field(default_factory=NewTasks)
    signals: Signals = field(default_factory=Signals)
    timeline: Timeline = field(default_factory=Timeline)
    paths: Paths = field(default_factory=Paths)
    first_of_step: dict[str, Event] = field(default_factory=dict)
    reports: list[dict[str, Any]] = field(default_factory=list)
    output_lines: list[str] = field(default_factory=list)
    output_dropped: int = 0
    lost: int = 0
    lost_steps: dict[str, int] = field(default_factory=dict)   # the steps whose events were lost, how many
    exit_code: int | None = None

    @property
    def started_ns(self) -> int:
        return int(self.header.get("started_ns", 0))

    @property
    def events(self) -> int:
        return self.timeline.count

    def add(self, event: Event) -> None:
        self.timeline.add(event)
        self.files.add(event)
        self.new_tasks.add(event)
        if event.step.startswith("signal_"):
            self.signals.add(event)
        self.paths.add(event)
        first = self.first_of_step.get(event.step)
        if first is None or event.ts_ns < first.ts_ns:
            self.first_of_step[event.step] = event

    # as an Observer
    def started(self, header: dict[str, Any]) -> None:
        self.header = header

    def event(self, event: Event) -> None:
        self.add(event)

    def output(self, line: OutputLine) -> None:
        if line.report:
            self.add_report(line.report)
        shown = line.shown()
        if shown is None:
            return
        if len(self.output_lines) < KEPT_OUTPUT:
            self.output_lines.append(shown)
        else:
            self.output_dropped += 1

    def finished(self, lost: int, exit_code: int, lost_steps: dict[str, int] | None = None) -> None:
        self.lost, self.exit_code = lost, exit_code
        self.lost_steps = dict(lost_steps or {})

    def add_all(self, events: Iterable[Event]) -> Findings:
        for event in events:
            self.add(event)
        return self

    def add_report(self, report: dict[str, Any]) -> None:
        if len(self.reports) < KEPT_REPORTS:
            self.reports.append(report)

    def shared_files(self) -> list[SharedFile]:
        return self.files.shared_files()

    @property
    def shared_count(self) -> int:
        return self.files.shared_count

    def tasks(self) -> list[NewTask]:
        return self.new_tasks.tasks(self.reports)

    def life_stories(self) -> list[tuple[str, list[Chapter]]]:
        return self.files.life_stories()

    def first_events_by_step(self) -> list[Event]:
        """The first event of each step, in call order (what the narration tells)."""
        return sorted(self.first_of_step.values(), key=lambda e: e.ts_ns)


def findings_of(events: Iterable[Event], header: dict[str, Any] | None = None,
                reports: Iterable[dict[str, Any]] = ()) -> Findings:
    findings = Findings(header or {}).add_all(events)
    for report in reports:
        findings.add_report(report)
    return findings


def shared_files(events: Iterable[Event]) -> list[SharedFile]:
    return findings_of(events).shared_files()


def new_tasks(events: Iterable[Event], reports: Sequence[dict[str, Any]] = ()) -> list[NewTask]:
    return findings_of(events, reports=reports).tasks()


def life_stories(events: Iterable[Event]) -> list[tuple[str, list[Chapter]]]:
    return findings_of(events).life_stories()
