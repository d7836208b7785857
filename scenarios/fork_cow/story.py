"""fork-cow's story model: one frame behind a page in two processes after fork, until one
writes; the frame a first touch allocates; the MAP_SHARED frame that no write copies.

Events in, typed facts out (frozen dataclasses); the sentences are views.py's. Every fact
rests on events of this recording: the page table entries read at mincore() (`pte`), the
faults with the frame they allocated (`first_touch`, `cow_fault`) and the child's new
mm_struct (`mm_copy`). The program's reports only name the pages (which address is the
private page, which the memfd) and are cited where they do.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

from tracer.events import Event
from tracer.story import Fact, Observation

KEPT_PAGES = 32             # addresses followed: the lesson maps three; another program, a bounded few
LESSON_STEPS = frozenset({"mm_copy", "pte", "first_touch", "cow_fault"})
# functions that say which fault path ran, innermost first as they appear on a stack
FIRST_TOUCH_PATHS = ("do_anonymous_page", "shmem_alloc_folio", "shmem_fault", "do_cow_fault", "do_fault")
COW_PATHS = ("wp_page_copy", "do_wp_page")


# ---- facts ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Task:
    comm: str
    pid: int
    tgid: int


@dataclass(frozen=True)
class Page:
    """One virtual page of the program, named by the program's report when it named it."""

    addr: str
    kind: str | None = None         # "private", "shared", "file": the program's word
    cited: str | None = None        # the report that named it


@dataclass(frozen=True)
class MmCopied:
    """fork made the child a new mm_struct (kmem:kmem_cache_alloc from the mm_struct cache)."""

    parent: Task
    parent_mm: str
    child_mm: str
    syscall: str | None
    under: tuple[str, ...]          # the fork path's functions on the allocation's stack


@dataclass(frozen=True)
class FirstTouch:
    """A fault on a page with no entry, and the frame it allocated."""

    task: Task
    page: Page
    pfn: int
    write: bool
    absent_before: bool             # this task's entry for the page was read, and was empty
    mapped_after: bool              # its next entry read maps this very frame
    via: str | None                 # the fault path's function on the stack


@dataclass(frozen=True)
class SharedAfterFork:
    """One frame behind one page in parent and child, read-only in both (entries read)."""

    page: Page
    pfn: int
    tasks: tuple[Task, Task]


@dataclass(frozen=True)
class NotCopied:
    """After fork the parent's entry maps the page and the child's has none: fork did not copy it."""

    page: Page
    parent: Task
    child: Task
    parent_pfn: int


@dataclass(frozen=True)
class CowCopy:
    """A write fault on a present, read-only entry that allocated the writer a new frame."""

    writer: Task
    page: Page
    old_pfn: int | None
    new_pfn: int
    via: str | None
    writer_maps_new: bool           # the writer's next entry read: the new frame, writable
    kept_by: Task | None            # another process whose next entry read still maps the old frame


@dataclass(frozen=True)
class OneWritableFrame:
    """One frame behind one page in two processes, writable in both: their writes share it."""

    page: Page
    pfn: int
    tasks: tuple[Task, Task]
    copied: bool                    # a cow_fault at this page is in the recording


@dataclass(frozen=True)
class TablesNotRead:
    """pte events whose page tables the probe could not read on this kernel."""

    count: int
    why: str = ""                   # the pte events' own reason (detail not_read)


# ---- the model --------------------------------------------------------------------------

@dataclass
class Entry:
    """The latest page table entry read for one page in one process."""

    present: bool
    pfn: int | None
    writable: bool | None


def task_of(event: Event) -> Task:
    return Task(event.comm, event.pid, event.tgid)


def via(event: Event, functions: Sequence[str]) -> str | None:
    stack = event.stack or []
    return next((name for name in functions if name in stack), None)


@dataclass
class PendingTouch:
    task: Task
    addr: str
    pfn: int
    write: bool
    absent_before: bool
    via: str | None
    mapped_after: bool = False
    settled: bool = False


@dataclass
class PendingCow:
    writer: Task
    addr: str
    old_pfn: int | None
    new_pfn: int
    via: str | None
    writer_maps_new: bool = False
    writer_settled: bool = False
    kept_by: Task | None = None


@dataclass
class CowStories:
    """What the core calls (tracer/story.py StoryModel)."""

    names: dict[str, tuple[str, str]] = field(default_factory=dict)    # addr -> (kind, cited)
    entries: dict[tuple[int, str], Entry] = field(default_factory=dict)
    tasks: dict[int, Task] = field(default_factory=dict)                 # tgid -> the task seen
    mm_copies: list[MmCopied] = field(default_factory=list)
    child_mms: dict[str, int] = field(default_factory=dict)            # child mm -> parent tgid
    children: dict[int, int] = field(default_factory=dict)             # child tgid -> parent tgid
    touches: list[PendingTouch] = field(default_factory=list)
    cows: list[PendingCow] = field(default_factory=list)
    shared_after_fork: dict[str, SharedAfterFork] = field(default_factory=dict)
    not_copied: dict[str, NotCopied] = field(default_factory=dict)
    one_writable: dict[str, tuple[int, tuple[Task, Task]]] = field(default_factory=dict)
    unread_tables: int = 0
    unread_why: str = ""

    # as a StoryModel
    def add(self, event: Event) -> None:
        if event.step == "mm_copy":
            self._mm_copy(event)
        elif event.step == "pte":
            self._pte(event)
        elif event.step == "first_touch":
            self._first_touch(event)
        elif event.step == "cow_fault":
            self._cow_fault(event)

    def observe(self, observation: Observation) -> None:
        addresses = observation.facts.get("addresses")
        if not isinstance(addresses, Mapping):
            return
        for kind, addr in addresses.items():
            if isinstance(addr, str) and addr not in self.names and len(self.names) < KEPT_PAGES:
                self.names[addr] = (str(kind), observation.cite())

    def folds(self, event: Event) -> bool:
        return False

    def about(self, event: Event) -> bool:
        return event.step in LESSON_STEPS

    def facts(self) -> list[Fact]:
        facts: list[Fact] = list(self.mm_copies)
        facts += [self._touch_fact(touch) for touch in self.touches]
        facts += [replace(fact, page=self.page(fact.page.addr)) for fact in self.not_copied.values()]
        facts += [replace(fact, page=self.page(fact.page.addr)) for fact in self.shared_after_fork.values()]
        facts += [self._cow_fact(cow) for cow in self.cows]
        facts += [OneWritableFrame(self.page(addr), pfn, tasks, any(cow.addr == addr for cow in self.cows))
                  for addr, (pfn, tasks) in self.one_writable.items()]
        if self.unread_tables:
            facts.append(TablesNotRead(self.unread_tables, self.unread_why))
        return facts

    # the events
    def _mm_copy(self, event: Event) -> None:
        detail = event.detail
        child_mm = str(detail.get("mm"))
        self.child_mms[child_mm] = event.tgid
        self.tasks.setdefault(event.tgid, task_of(event))
        if len(self.mm_copies) < KEPT_PAGES:
            under = tuple(name for name in ("dup_mm", "copy_mm", "copy_process", "kernel_clone")
                          if name in (event.stack or []))
            self.mm_copies.append(MmCopied(task_of(event), str(detail.get("parent_mm")), child_mm,
                                           detail.get("syscall"), under))

    def _pte(self, event: Event) -> None:
        detail = event.detail
        if not detail.get("walked"):
            self.unread_tables += 1
            self.unread_why = self.unread_why or str(detail.get("not_read") or "")
            return
        addr = str(detail.get("addr"))
        self.tasks.setdefault(event.tgid, task_of(event))
        parent = self.child_mms.get(str(detail.get("mm")))
        if parent is not None and parent != event.tgid:
            self.children[event.tgid] = parent
        pfn = detail.get("pfn") if isinstance(detail.get("pfn"), int) else None
        entry = Entry(bool(detail.get("present")), pfn, detail.get("writable"))
        key = (event.tgid, addr)
        if key not in self.entries and len(self.entries) >= KEPT_PAGES * 4:
            return
        first_in_child = key not in self.entries and event.tgid in self.children
        self.entries[key] = entry
        self._settle(event.tgid, addr, entry)
        self._compare(event.tgid, addr, entry, first_in_child)

    def _first_touch(self, event: Event) -> None:
        detail = event.detail
        addr = str(detail.get("addr"))
        before = self.entries.get((event.tgid, addr))
        if len(self.touches) < KEPT_PAGES:
            self.touches.append(PendingTouch(task_of(event), addr, int(detail.get("pfn", 0)),
                                             bool(detail.get("write")), before is not None and not before.present,
                                             via(event, FIRST_TOUCH_PATHS)))

    def _cow_fault(self, event: Event) -> None:
        detail = event.detail
        old = detail.get("old_pfn")
        if len(self.cows) < KEPT_PAGES:
            self.cows.append(PendingCow(task_of(event), str(detail.get("addr")), old if isinstance(old, int) else None,
                                        int(detail.get("pfn", 0)), via(event, COW_PATHS)))

    # what an entry read confirms
    def _settle(self, tgid: int, addr: str, entry: Entry) -> None:
        for touch in self.touches:
            if not touch.settled and touch.task.tgid == tgid and touch.addr == addr:
                touch.settled, touch.mapped_after = True, entry.present and entry.pfn == touch.pfn
        for cow in self.cows:
            if cow.addr != addr:
                continue
            if cow.writer.tgid == tgid and not cow.writer_settled:
                cow.writer_settled = True
                cow.writer_maps_new = entry.present and entry.pfn == cow.new_pfn and bool(entry.writable)
            elif (cow.writer.tgid != tgid and cow.kept_by is None and cow.old_pfn is not None
                  and self._related(tgid, cow.writer.tgid) and entry.present and entry.pfn == cow.old_pfn):
                cow.kept_by = self.tasks[tgid]

    def _compare(self, tgid: int, addr: str, entry: Entry, first_in_child: bool) -> None:
        """This entry beside the latest one read for the same page in the related process."""
        for other_tgid in self._relatives(tgid):
            other = self.entries.get((other_tgid, addr))
            if other is None:
                continue
            pair = (self.tasks[other_tgid], self.tasks[tgid])
            if first_in_child and not entry.present and other.present and other.pfn is not None:
                self.not_copied.setdefault(addr, NotCopied(self.page(addr), self.tasks[other_tgid],
                                                           self.tasks[tgid], other.pfn))
            if not (entry.present and other.present and entry.pfn == other.pfn and entry.pfn is not None):
                continue
            if entry.writable is False and other.writable is False and addr not in self.shared_after_fork:
                self.shared_after_fork[addr] = SharedAfterFork(self.page(addr), entry.pfn, pair)
            elif entry.writable and other.writable and addr not in self.one_writable:
                self.one_writable[addr] = (entry.pfn, pair)

    def _relatives(self, tgid: int) -> list[int]:
        """The processes this one forked from or forked (mm_copy tied them)."""
        related = [parent for child, parent in self.children.items() if child == tgid]
        related += [child for child, parent in self.children.items() if parent == tgid]
        return related

    def _related(self, one: int, other: int) -> bool:
        return other in self._relatives(one)

    # facts from what is pending
    def page(self, addr: str) -> Page:
        kind, cited = self.names.get(addr, (None, None))
        return Page(addr, kind, cited)

    def _touch_fact(self, touch: PendingTouch) -> FirstTouch:
        return FirstTouch(touch.task, self.page(touch.addr), touch.pfn, touch.write, touch.absent_before,
                          touch.mapped_after, touch.via)

    def _cow_fact(self, cow: PendingCow) -> CowCopy:
        return CowCopy(cow.writer, self.page(cow.addr), cow.old_pfn, cow.new_pfn, cow.via, cow.writer_maps_new,
                       cow.kept_by)


def model() -> CowStories:
    """A fresh model for the core (tracer/stories.py)."""
    return CowStories()


def cow_facts(events: Sequence[Event], observations: Sequence[Observation] = ()) -> list[Fact]:
    """The facts of a whole recording (tests, exports)."""
    stories = model()
    for observation in observations:
        stories.observe(observation)
    for event in events:
        stories.add(event)
    return stories.facts()


__all__ = [
    "CowCopy",
    "CowStories",
    "FirstTouch",
    "MmCopied",
    "NotCopied",
    "OneWritableFrame",
    "Page",
    "SharedAfterFork",
    "TablesNotRead",
    "Task",
    "cow_facts",
    "model",
]
