"""memfd-share's story model: one struct file in several processes, the life of each memfd,
the pages behind the mappings, the file in flight between sendmsg and recvmsg.

Events in, typed facts out (frozen dataclasses); no sentence is written here, the lesson's
views.py renders them. Memory stays flat whatever the number of events: the first few
stories of each kind are kept in full and the rest counted.
"""
from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass, field

from tracer.events import Event, reads_before_call
from tracer.story import Fact, Observation

KEPT_STORIES = 6            # file lives kept in full
KEPT_SHARED = 2 * KEPT_STORIES      # shared files kept in full: the best ranked, first seen first in a rank
KEPT_EVENTS_PER_FILE = 64   # events of one file's life kept for its story (and frames for its rank)

# Steps at which a struct file comes into existence (nested: memfd_create > shmem > alloc).
BIRTH_STEPS = ("memfd_create", "shmem_file_setup", "alloc_file_pseudo")
# the steps that change whether a life reached another process: its origin (memfd_create, the
# first scm_fp_copy) or its receivers (receive_fd); checked for those only, it is a busy loop's
SHARING_STEPS = frozenset({"memfd_create", "scm_fp_copy", "receive_fd"})
MAPPING_STEP = "do_mmap"
FRAME_STEP = "memfd_page"         # a frame allocated in a fault on a memfd mapping, seen in the kernel
PAGE_STEP = "page"                # a process's page behind its mapping (/proc/PID/pagemap)
# the steps after which a shared life's rank may rise (RANKS)
RANK_STEPS = SHARING_STEPS | {MAPPING_STEP, PAGE_STEP}

# What a shared file's story shows first: the lesson's object, a memfd mapped in two processes
# with one physical page seen in both, then a memfd mapped in both, then a memfd passed but not
# mapped by its receiver, then any other file passed (sockets, pipes).
OTHER_FILE, MEMFD_PASSED, MEMFD_MAPPED, MEMFD_SAME_PAGE = range(4)

# The kernel call that takes each step's reference on the struct file (f_count), as the kernel
# source has it: a rise in the count is the last of these steps before the read that shows it.
TAKES_REFERENCE = {
    "shmem_file_setup": "alloc_empty_file (fs/file_table.c) sets the first reference",
    "scm_fp_copy": "fget_raw in scm_fp_copy (net/core/scm.c) takes the message's reference",
    "receive_fd": ("get_file in receive_fd (fs/file.c) takes the receiver's fd's reference; __scm_destroy "
                   "(net/core/scm.c) drops the message's after"),
    MAPPING_STEP: "get_file in mmap_region (mm/vma.c; mm/mmap.c before 6.12) takes the vma's vm_file reference",
}


def loader_mapping(event: Event) -> bool:
    """A private mapping of a regular file: the dynamic loader mapping a library or
    ld.so.cache, an interpreter its locale files. The recording keeps them; the screens fold them."""
    return (event.step == MAPPING_STEP and event.detail.get("file_kind") == "regular"
            and "MAP_SHARED" not in event.detail.get("flags", ()))


# ---- facts ------------------------------------------------------------------------------

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
    vma_allocated: bool = False     # kmem:kmem_cache_alloc showed that vma allocated inside its mmap

    @property
    def private(self) -> bool:
        """Its vma was read and has no VM_SHARED."""
        return bool(self.vm_flags) and "VM_SHARED" not in self.vm_flags


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


@dataclass(frozen=True)
class Allocated:
    """The memfd's objects seen at their allocation inside memfd_create (kmem:kmem_cache_alloc)."""

    filp: str                   # the struct file allocated from the "filp" cache
    is_the_file: bool           # it is the struct file memfd_create returned
    path: tuple[str, ...]       # the stack at that allocation, from alloc_file_pseudo out to the syscall
    inode: str | None           # the struct inode in the shmem_inode_info allocated from "shmem_inode_cache"
    is_the_inode: bool          # it is the file's own inode (file->f_inode)


@dataclass(frozen=True)
class FrameAllocated:
    """A frame kmem:mm_page_alloc reported inside a fault on a process's mapping of the memfd."""

    comm: str
    tgid: int
    address: str
    pfn: int
    first_touch: bool           # the fault found no page (error code: not present)
    write: bool
    error_code: int
    mapped_before: bool         # the process's mmap of the file is in the recording, before the fault
    path: tuple[str, ...]       # the fault's stack, from the function that asked for the frame out
    pagemap_pfn: int | None     # the frame /proc/PID/pagemap showed at that address next (None: not read)


@dataclass(frozen=True)
class SharedNotShared:
    """A MAP_SHARED mapping whose vma has no VM_SHARED: the file was not open for writing."""

    comm: str
    pid: int
    name: str
    address: str
    f_mode: tuple[str, ...]
    vm_flags: tuple[str, ...]


@dataclass(frozen=True)
class RefcountSeen:
    """A value of the file's reference count, read at one step's hook; where it rose, the step
    that took the reference (TAKES_REFERENCE) when that is another step read earlier."""

    step: str
    comm: str
    count: int
    before: bool = False            # read at an entry hook: the count before the step ran
    taken_by: str | None = None     # the step that took the reference this value shows first
    taken_in: str | None = None     # the process that ran it
    taken_how: str | None = None    # the kernel call that took it (kernel source)


@dataclass(frozen=True)
class OtherLife:
    """Another struct file the recording names at the same address: the slab's object, freed and
    reused (or about to be), for a different file."""

    comm: str
    pid: int
    step: str
    kind: str | None
    name: str


@dataclass(frozen=True)
class SamePage:
    """One page-cache frame mapped by two processes or more: each one's first sight of it."""

    pfn: int
    seen: tuple[PageSeen, ...]


@dataclass(frozen=True)
class PrivateCopy:
    """A process's write replaced the file's page by a copy of its own."""

    shared: PageSeen
    copy: PageSeen


@dataclass(frozen=True)
class SharedFile:
    """One struct file that reached another thread group than the one it started in."""

    file: str
    inode: int | None
    made_by_memfd_create: bool      # memfd_create is in the recording for this very life
    kind: str | None                # detail file_kind as recorded; None: the recording does not say
    name: str
    f_op: str
    f_op_read: str
    creator: Holder
    receivers: tuple[Holder, ...]   # one per thread group, other than the creator's
    refcounts: tuple[RefcountSeen, ...]     # each kept only where it differs from the one before
    in_flight: tuple[InFlight, ...]
    same_page: SamePage | None
    private_copies: tuple[PrivateCopy, ...]
    allocated: Allocated | None = None
    frames: tuple[FrameAllocated, ...] = ()
    earlier: OtherLife | None = None    # the struct file this address named before this one
    later: OtherLife | None = None      # the one it named after
    rank: int = OTHER_FILE

    @property
    def processes(self) -> int:
        """Distinct thread groups that hold it: the creator's and each receiver's."""
        return 1 + len(self.receivers)

    @property
    def mapped_privately(self) -> bool:
        return any(holder.private for holder in (self.creator, *self.receivers))


@dataclass(frozen=True)
class SharedTotal:
    """How many struct files were shared in all: the first few are kept in full, the rest counted."""

    total: int


@dataclass(frozen=True)
class ProgramSaw:
    """What the lesson's program read itself through the mappings (its JSON reports), cited."""

    what: str               # ROUND_TRIP, SENDER_WRITE_SEEN or OWN_WRITE_KEPT
    seen: bool
    cited: str


ROUND_TRIP = "round trip"                   # the receiver read the text the sender wrote
SENDER_WRITE_SEEN = "sender write seen"     # the receiver's private mapping read the sender's later write
OWN_WRITE_KEPT = "own write kept"           # after the receiver's private write the sender read its own text


@dataclass(frozen=True)
class Chapter:
    """One event in the life of a memfd's struct file (--follow-file)."""

    event: Event
    mapped_by_another_before: bool = False   # a mapping, and another process mapped it earlier


@dataclass(frozen=True)
class FileLifeStory:
    file: str
    chapters: tuple[Chapter, ...]


# ---- the model ------------------------------------------------------------------------

class FileLife:
    """One struct file object, from its birth until its address is reused: a pointer names one
    object only until the slab hands the same address to the next file."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.events: list[Event] = []       # in call order, the first KEPT_EVENTS_PER_FILE
        self.more_events = 0
        self.births: set[str] = set()
        self.ended = False
        self.created: Event | None = None   # its memfd_create: only that makes it a memfd
        self.receivers: set[int] = set()    # tgids that received it (receive_fd)
        self.first_sender: Event | None = None  # its first scm_fp_copy: who passed it first
        self.inode: int | None = None       # f_inode: fixed for a struct file's whole life
        self.mapped_by: set[int] = set()    # tgids that mapped it
        self.page_seen_by: dict[int, set[int]] = {}     # file page's pfn -> tgids that map it (bounded)
        self.shared_order = 0               # how many files were shared before it, plus one
        self.kept_rank: int | None = None   # its rank when FileStories last kept it; None: not kept
        self.earlier: OtherLife | None = None
        self.later: OtherLife | None = None

    @property
    def memfd(self) -> bool:
        return self.created is not None

    @property
    def received_elsewhere(self) -> bool:
        origin = self.origin()
        return origin is not None and bool(self.receivers - {origin.tgid})

    def reborn_by(self, event: Event) -> bool:
        """A birth ends the life of whatever struct file had this address before: one that
        was born already, or one seen without its birth (the ld.so.cache a program mapped
        and closed before its memfd_create got the same slab object)."""
        if self.ended or (event.inode is not None and self.inode is not None and event.inode != self.inode):
            return True         # a struct file's f_inode never changes: another inode is another file
        return event.step in BIRTH_STEPS and (event.step in self.births or (not self.births and bool(self.events)))

    def rank(self) -> int:
        """Where its story goes among the shared files (OTHER_FILE .. MEMFD_SAME_PAGE)."""
        origin = self.origin()
        if not self.memfd or origin is None:
            return OTHER_FILE
        receivers = self.receivers - {origin.tgid}
        if origin.tgid not in self.mapped_by or not receivers & self.mapped_by:
            return MEMFD_PASSED
        both = receivers | {origin.tgid}
        if any(len(tgids & both) > 1 for tgids in self.page_seen_by.values()):
            return MEMFD_SAME_PAGE
        return MEMFD_MAPPED

    def other(self) -> OtherLife | None:
        """This life as another file at the same address: who it was first seen in, and its kind."""
        if not self.events:
            return None
        first = self.created or self.events[0]
        detail = next((e.detail for e in self.events if "file_kind" in e.detail), first.detail)
        return OtherLife(first.comm, first.pid, first.step, _text_or_none(detail.get("file_kind")),
                         str(detail.get("file_name") or ""))

    def add(self, event: Event) -> None:
        step = event.step
        if step in BIRTH_STEPS:
            self.births.add(step)
            if step == "memfd_create" and self.created is None:
                self.created = event
        elif step == "receive_fd":
            self.receivers.add(event.tgid)
        elif step == "scm_fp_copy" and (self.first_sender is None or event.ts_ns < self.first_sender.ts_ns):
            self.first_sender = event
        elif step == "fput":
            self.ended = True
        elif step == MAPPING_STEP:
            self.mapped_by.add(event.tgid)
        elif step == PAGE_STEP and event.detail.get("file_page"):
            pfn = int(event.detail.get("pfn", 0))
            if pfn in self.page_seen_by or len(self.page_seen_by) < KEPT_EVENTS_PER_FILE:
                self.page_seen_by.setdefault(pfn, set()).add(event.tgid)
        if self.inode is None and event.inode is not None:
            self.inode = event.inode
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
        return self.created if self.created is not None else self.first_sender

    def holder(self, event: Event) -> Holder:
        """One process's hold on the file: its fd (from fd_install when the hook that saw the
        file arrive could not tell) and the mapping it made."""
        fd = event.fd
        address = vma = None
        vm_flags: tuple[str, ...] = ()
        allocated = False
        for other in (e for e in self.events if e.tgid == event.tgid):
            if fd is None and other.step == "fd_install":
                fd = other.fd
            if address is None and other.step == MAPPING_STEP:
                address, vma = other.detail.get("address"), other.detail.get("vma")
                vm_flags = tuple(other.detail.get("vm_flags", ()))
                allocated = bool(vma) and other.detail.get("vma_alloc") == vma
        return Holder(event.comm, event.pid, event.tgid, fd, address, vm_flags, vma, allocated)

    def receivers_once(self, creator_tgid: int) -> tuple[Holder, ...]:
        """Each thread group that received the file, once (its first receive), creator's aside."""
        first: dict[int, Event] = {}
        for event in self.events:
            if event.step == "receive_fd" and event.tgid != creator_tgid:
                first.setdefault(event.tgid, event)
        return tuple(self.holder(event) for event in first.values())

    def shared_file(self) -> SharedFile | None:
        """This life as "one struct file in several processes", if it reached another one."""
        created = self.origin()
        if created is None:
            return None
        receivers = self.receivers_once(created.tgid)
        if not receivers:
            return None
        detail = next((e.detail for e in self.events if "file_kind" in e.detail), created.detail)
        pages = tuple(_page(event) for event in self.events if event.step == PAGE_STEP)
        return SharedFile(
            file=created.file or "", inode=created.inode, made_by_memfd_create=self.memfd,
            kind=_text_or_none(detail.get("file_kind")), name=str(detail.get("file_name") or ""),
            f_op=str(detail.get("f_op") or ""), f_op_read=str(detail.get("f_op_read") or ""),
            creator=self.holder(created), receivers=receivers,
            refcounts=refcounts(self.events),
            in_flight=tuple(InFlight(str(e.detail.get("skb")), str(e.detail.get("sock")))
                            for e in self.events if e.step == "in_flight"),
            same_page=same_page(pages), private_copies=private_copies(pages),
            allocated=self.allocated(), frames=self.frames(), earlier=self.earlier, later=self.later,
            rank=self.rank())

    def allocated(self) -> Allocated | None:
        """The struct file and inode memfd_create's event saw allocated, beside what it returned."""
        born = next((e for e in self.events if e.step in BIRTH_STEPS and e.detail.get("filp_alloc")), None)
        if born is None:
            return None
        detail = born.detail
        inode = detail.get("inode_alloc")
        return Allocated(str(detail["filp_alloc"]), detail["filp_alloc"] == born.file,
                         path_between(born.stack, "alloc_file_pseudo", "do_syscall_64"),
                         str(inode) if inode else None, bool(inode) and inode == detail.get("inode_ptr"))

    def frames(self) -> tuple[FrameAllocated, ...]:
        """Each frame a fault on a mapping of this file allocated, with pagemap's next look there."""
        found = []
        for event in (e for e in self.events if e.step == FRAME_STEP):
            detail = event.detail
            mapped = any(e.step == MAPPING_STEP and e.tgid == event.tgid and e.ts_ns < event.ts_ns
                         and e.detail.get("address") == detail.get("mapping") for e in self.events)
            looked = next((e for e in self.events if e.step == "page" and e.tgid == event.tgid
                           and e.detail.get("addr") == detail.get("addr") and e.ts_ns > event.ts_ns), None)
            found.append(FrameAllocated(
                event.comm, event.tgid, str(detail.get("addr")), int(detail.get("pfn", 0)),
                detail.get("was_present") is False, bool(detail.get("write")), int(detail.get("error_code") or 0),
                mapped, fault_path(event.stack), None if looked is None else int(looked.detail.get("pfn", 0))))
        return tuple(found)

    def story(self) -> FileLifeStory:
        mappers: set[int] = set()
        chapters = []
        for event in self.events:
            again = False
            if event.step == MAPPING_STEP:
                again = bool(mappers - {event.tgid})
                mappers.add(event.tgid)
            chapters.append(Chapter(event, again))
        return FileLifeStory(self.file, tuple(chapters))


def refcounts(events: Sequence[Event]) -> tuple[RefcountSeen, ...]:
    """Each value of the count where it differs from the one before, a rise given to the step
    that took it: the last step of TAKES_REFERENCE since the previous read, counting the step
    read itself only if its hook read after it ran (reads_before_call: an entry hook)."""
    seen: list[RefcountSeen] = []
    taker: Event | None = None          # the last reference-taking step not yet shown in a read
    for event in events:
        before = reads_before_call(event.hook)
        if event.step in TAKES_REFERENCE and not before:
            taker = event
        if event.refcount is not None and (not seen or event.refcount != seen[-1].count):
            rose = bool(seen) and event.refcount > seen[-1].count
            if not rose or taker is None or taker is event:
                seen.append(RefcountSeen(event.step, event.comm, event.refcount, before))
            else:
                seen.append(RefcountSeen(event.step, event.comm, event.refcount, before, taker.step, taker.comm,
                                         TAKES_REFERENCE[taker.step]))
        if event.refcount is not None:
            taker = None
        if event.step in TAKES_REFERENCE and before:
            taker = event               # it ran after its hook read: the next read shows it
    return tuple(seen)


def path_between(stack: Sequence[str] | None, first: str, end: str) -> tuple[str, ...]:
    """The frames of a stack (innermost first) from `first` out to just before `end`."""
    frames = list(stack or ())
    if first not in frames:
        return ()
    outer = frames[frames.index(first):]
    return tuple(outer[:outer.index(end)] if end in outer else outer)


# the page allocator's own frames, below the function that asked it for a frame
ALLOCATOR_FRAMES = ("__alloc_frozen_pages_noprof", "__alloc_pages_noprof", "__alloc_pages", "alloc_pages_mpol",
                    "folio_alloc_mpol_noprof", "vma_alloc_folio_noprof", "__folio_alloc", "alloc_pages")


def fault_path(stack: Sequence[str] | None) -> tuple[str, ...]:
    """A fault's stack from the function that asked for the frame out to handle_mm_fault."""
    frames = [frame for frame in stack or () if frame not in ALLOCATOR_FRAMES]
    return tuple(frames[:frames.index("handle_mm_fault")] if "handle_mm_fault" in frames else frames)


def shared_not_shared(event: Event) -> SharedNotShared | None:
    """A MAP_SHARED mapping whose vma the probe read without VM_SHARED, with the file's f_mode."""
    detail = event.detail
    vm_flags = tuple(detail.get("vm_flags") or ())
    if ("MAP_SHARED" not in detail.get("flags", ()) or not vm_flags or "VM_SHARED" in vm_flags
            or "f_mode" not in detail):
        return None
    name = str(detail.get("file_name") or event.file)
    return SharedNotShared(event.comm, event.pid, name, str(detail.get("address")), tuple(detail["f_mode"]), vm_flags)


def _page(event: Event) -> PageSeen:
    return PageSeen(event.comm, event.tgid, str(event.detail.get("addr")), int(event.detail.get("pfn", 0)),
                    bool(event.detail.get("file_page")))


def _text_or_none(value: object) -> str | None:
    return str(value) if value else None


def same_page(pages: Sequence[PageSeen]) -> SamePage | None:
    """A page-cache frame that two thread groups map: (pfn, each one's first sight)."""
    holders: dict[int, dict[int, PageSeen]] = {}
    for page in pages:
        if page.file_page:
            holders.setdefault(page.pfn, {}).setdefault(page.tgid, page)
    return next((SamePage(pfn, tuple(seen.values())) for pfn, seen in holders.items() if len(seen) > 1), None)


def private_copies(pages: Sequence[PageSeen]) -> tuple[PrivateCopy, ...]:
    """(the file's page, the copy that replaced it) for each process whose write made one."""
    copies, last_file_page = [], {}
    for page in pages:
        if page.file_page:
            last_file_page[page.tgid] = page
        elif page.tgid in last_file_page:
            copies.append(PrivateCopy(last_file_page.pop(page.tgid), page))
    return tuple(copies)


def _stamp(event: Event) -> int:
    return event.ts_ns


@dataclass
class FileStories:
    """Every struct file the events name, grouped into lives. Kept: the first few memfd lives
    (--follow-file) and the best ranked few shared files (rank(): a memfd mapped in two processes
    first, what the lesson is about; a Chromium trace passes sockets by the hundred), first seen
    first within a rank. A life's rank rises as its receiver maps it and pagemap shows the page:
    it enters the kept list then, in place of the last one."""

    current: dict[str, FileLife] = field(default_factory=dict)   # bounded by the addresses in use
    memfd_lives: list[FileLife] = field(default_factory=list)
    memfd_count: int = 0
    shared: list[FileLife] = field(default_factory=list)         # best rank first, at most KEPT_SHARED
    shared_count: int = 0
    program_saw: list[ProgramSaw] = field(default_factory=list)
    written: Observation | None = None      # the sender's report of the text it wrote
    read_only_shared: SharedNotShared | None = None     # the first MAP_SHARED mapping without VM_SHARED

    def add(self, event: Event) -> None:
        if not event.file:
            return
        if event.step == MAPPING_STEP and self.read_only_shared is None:
            self.read_only_shared = shared_not_shared(event)
        life = self.current.get(event.file)
        if life is None or life.reborn_by(event):
            life = self.current[event.file] = self.next_life(life, event)
        sharing = event.step in SHARING_STEPS
        was_memfd = life.memfd
        was_shared = sharing and life.received_elsewhere
        life.add(event)
        if life.memfd and not was_memfd:
            self.memfd_count += 1
            _keep(self.memfd_lives, life)
        if sharing and not was_shared and life.received_elsewhere:
            self.shared_count += 1
            life.shared_order = self.shared_count
        if event.step in RANK_STEPS and life.shared_order:
            self._rank(life)

    @staticmethod
    def next_life(before: FileLife | None, event: Event) -> FileLife:
        """A new life at an address; the one before (if any) and this one each told of the other."""
        life = FileLife(event.file or "")
        if before is not None:
            life.earlier = before.other()
            before.later = OtherLife(event.comm, event.pid, event.step, _text_or_none(event.detail.get("file_kind")),
                                     str(event.detail.get("file_name") or ""))
        return life

    def _rank(self, life: FileLife) -> None:
        """Keep the life if its rank puts it among the best KEPT_SHARED (first shared first in a rank)."""
        rank = life.rank()
        if rank == life.kept_rank:
            return
        kept = self.shared
        if life.kept_rank is None:
            if len(kept) >= KEPT_SHARED:
                last = kept[-1]
                if (rank, -life.shared_order) <= (last.kept_rank or 0, -last.shared_order):
                    return
                kept.pop().kept_rank = None
            kept.append(life)
        life.kept_rank = rank
        kept.sort(key=_rank_order)

    def observe(self, observation: Observation) -> None:
        """The program's own reads through its mappings: each kept with the report it came from."""
        facts = observation.facts
        if observation.role == "sender" and "address" in facts and "text" in facts and self.written is None:
            self.written = observation
        elif observation.role == "receiver" and "fd" in facts and "text" in facts and self.written is not None:
            self._saw(ROUND_TRIP, facts["text"] == self.written.facts["text"],
                      f"{self.written.cite()} and {observation.cite()}")
        for key, what in (("sees_sender_write", SENDER_WRITE_SEEN), ("cow_isolated", OWN_WRITE_KEPT)):
            if isinstance(facts.get(key), bool):
                self._saw(what, facts[key], observation.cite())

    def _saw(self, what: str, seen: bool, cited: str) -> None:
        if len(self.program_saw) < KEPT_STORIES:
            self.program_saw.append(ProgramSaw(what, seen, cited))

    def folds(self, event: Event) -> bool:
        return loader_mapping(event)

    def about(self, event: Event) -> bool:
        """An event of a memfd's life, or of a file that reached another process."""
        life = self.current.get(event.file) if event.file else None
        return life is not None and (life.memfd or life.received_elsewhere)

    def shared_files(self) -> list[SharedFile]:
        found = (life.shared_file() for life in self.shared)
        return [story for story in found if story is not None]

    def life_stories(self) -> list[FileLifeStory]:
        return [life.story() for life in self.memfd_lives]

    def facts(self) -> list[Fact]:
        total: list[Fact] = [SharedTotal(self.shared_count)] if self.shared_count else []
        unshared: list[Fact] = [self.read_only_shared] if self.read_only_shared else []
        return [*self.shared_files(), *total, *unshared, *self.program_saw, *self.life_stories()]


def _rank_order(life: FileLife) -> tuple[int, int]:
    return -(life.kept_rank or 0), life.shared_order


def _keep(kept: list[FileLife], life: FileLife) -> None:
    if len(kept) < KEPT_STORIES and life not in kept:
        kept.append(life)


def model() -> FileStories:
    """This lesson's story model, for the core (tracer/stories.py)."""
    return FileStories()


def shared_files(events: Sequence[Event]) -> list[SharedFile]:
    """The shared-file facts of these events alone (tests, one-off scripts)."""
    stories = FileStories()
    for event in events:
        stories.add(event)
    return stories.shared_files()


def life_stories(events: Sequence[Event]) -> list[FileLifeStory]:
    stories = FileStories()
    for event in events:
        stories.add(event)
    return stories.life_stories()
