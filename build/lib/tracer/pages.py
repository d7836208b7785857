"""The physical page behind a mapping: /proc/PID/pagemap, read as root while the process lives.

This kernel has no probe that reports the page frame a fault installs (shmem faults fire
none of filemap's PFN tracepoints), so syspath asks the page tables the way user space
can: each page of a mapping has one 64-bit entry in /proc/PID/pagemap
(Documentation/admin-guide/mm/pagemap.rst): bits 0-54 the PFN (zero unless the reader has
CAP_SYS_ADMIN), bit 61 a file page or shared anonymous page (clear for a private copy),
bit 63 present. A mapping is looked at on every poll from its do_mmap event until its
process ends; each new or changed frame is a `page` event. A page mapped and dropped
within one poll (20 ms) goes unseen: the scenario waits after each touch. Before a new
frame is told, /proc/PID/maps must still show the file's inode at that address: a mapping
unmapped, its address reused by another, ends the watch.

The pages are looked at while the process lives, so the watch should not wait for the
decoder, whose first decode waits for the kernel symbols to load. Meanwhile the sink reads
ahead in the records it spools (`read_ahead`, events decoded without symbols), and the
frames seen then are held until the mapping's do_mmap event is emitted in its turn.
"""
from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from tracer.events import Event

PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
PFN_MASK = (1 << 55) - 1
FILE_PAGE = 1 << 61
PRESENT = 1 << 63
PAGES_PER_MAPPING = 4        # the first pages of each mapping are watched
WATCHED_MAPPINGS = 16        # mappings watched at once, the newest (a pread each per poll)
WATCHED_FILES = 4096         # struct files known to be passed between processes


@dataclass(frozen=True)
class WatchedSteps:
    """Which steps the watch is told of, by the roles the lessons give them (tracer/catalog.py)."""

    page: str                      # the step its page events are named
    mapping: frozenset[str]        # a mapping of the event's struct file
    passing: frozenset[str]        # a struct file seen passed between processes

    @property
    def followed(self) -> frozenset[str]:
        return self.mapping | self.passing

    @classmethod
    def from_lessons(cls) -> WatchedSteps | None:
        """None when no lesson has a page-frame step: then nothing is watched."""
        from tracer import lessons
        from tracer.catalog import MAPS_FILE, PAGE_FRAME, PASSES_FILE

        page = sorted(lessons.steps_with_role(PAGE_FRAME))
        if not page:
            return None
        return cls(page[0], lessons.steps_with_role(MAPS_FILE), lessons.steps_with_role(PASSES_FILE))


@dataclass(frozen=True)
class Frame:
    pfn: int
    file_page: bool          # the page cache's page (or shared anon), not a private copy


def read_frames(tgid: int, address: int, pages: int) -> list[Frame | None] | None:
    """The frames behind `pages` pages at `address` in process `tgid` (None: the process is
    gone); a page not present is None."""
    try:
        fd = os.open(f"/proc/{tgid}/pagemap", os.O_RDONLY)
    except OSError:
        return None
    try:
        data = os.pread(fd, 8 * pages, (address // PAGE_SIZE) * 8)
    except OSError:
        return None
    finally:
        os.close(fd)
    return parse_entries(data)


def mapped_inode(tgid: int, address: int) -> int | None:
    """The inode number of the file mapped at `address` in process `tgid`, from /proc/PID/maps
    (0: an anonymous mapping; None: nothing mapped there, or the process is gone)."""
    try:
        with open(f"/proc/{tgid}/maps", "rb") as maps:
            for line in maps:
                fields = line.split(maxsplit=5)
                start, _, end = fields[0].partition(b"-")
                if int(start, 16) <= address < int(end, 16):
                    return int(fields[4])
    except (OSError, ValueError, IndexError):
        return None
    return None


def parse_entries(data: bytes) -> list[Frame | None]:
    """pagemap entries -> frames; a page not present, or whose PFN the reader may not see, is None."""
    frames: list[Frame | None] = []
    for index in range(len(data) // 8):
        entry = int.from_bytes(data[8 * index:8 * index + 8], "little")
        present = entry & PRESENT and entry & PFN_MASK
        frames.append(Frame(entry & PFN_MASK, bool(entry & FILE_PAGE)) if present else None)
    return frames


@dataclass
class Mapping:
    mapped: Event                            # its do_mmap event
    address: int
    pages: int
    first_index: int                         # the file page at `address` (vm_pgoff)
    seen: dict[int, Frame] = field(default_factory=dict)
    ahead: bool = False                      # watched from a read-ahead: its do_mmap not emitted yet
    held: list[Event] = field(default_factory=list)   # page events seen meanwhile
    ended: bool = False                      # its process is gone (kept while ahead, for `held`)


class PageWatch:
    """Mappings of the files worth following (memfds, and any file passed in SCM_RIGHTS),
    looked at until their process ends."""

    def __init__(self, steps: WatchedSteps,
                 read: Callable[[int, int, int], list[Frame | None] | None] = read_frames,
                 clock: Callable[[], int] = time.monotonic_ns,
                 inode_at: Callable[[int, int], int | None] = mapped_inode) -> None:
        self.steps = steps
        self.read = read
        self.clock = clock
        self.inode_at = inode_at
        self.mappings: dict[tuple[int, int], Mapping] = {}
        self.passed: dict[str, int] = {}         # file -> when it was first seen passed, bounded

    def note(self, event: Event) -> None:
        """An event emitted, in order."""
        self._note(event, ahead=False)

    def read_ahead(self, event: Event) -> None:
        """An event taken from the ring that waits to be decoded: its mapping is looked at now."""
        self._note(event, ahead=True)

    def _note(self, event: Event, ahead: bool) -> None:
        if event.step in self.steps.passing and event.file:
            self.passed.setdefault(event.file, event.ts_ns)
            if len(self.passed) > WATCHED_FILES:
                del self.passed[next(iter(self.passed))]
        elif event.step in self.steps.mapping and event.file:
            # a mapping made after the pass: read ahead, a pass is known before the mappings
            # that precede it, which may be of an older file at the same address (ld.so.cache)
            passed_at = self.passed.get(event.file)
            if event.detail.get("file_kind") == "memfd" or (passed_at is not None and passed_at <= event.ts_ns):
                self._watch(event, ahead)

    def _watch(self, event: Event, ahead: bool) -> None:
        address = int(str(event.detail.get("address", "0")), 16)
        length = int(event.detail.get("length") or PAGE_SIZE)
        if not address:
            return
        key = (event.tgid, address)
        known = self.mappings.get(key)
        if known is not None and known.ahead and known.mapped.ts_ns == event.ts_ns and not ahead:
            known.mapped, known.ahead = event, False        # read ahead: now emitted, `held` goes out
            return
        self.mappings.pop(key, None)               # a new mapping at that address replaces the old
        if len(self.mappings) >= WATCHED_MAPPINGS:
            del self.mappings[next(iter(self.mappings))]
        pages = min(PAGES_PER_MAPPING, max(1, -(-length // PAGE_SIZE)))
        self.mappings[key] = Mapping(event, address, pages, int(event.detail.get("pgoff") or 0), ahead=ahead)

    def look(self) -> list[Event]:
        """A `page` event for each watched page whose frame appeared or changed, once the
        mapping's do_mmap event is out."""
        found: list[Event] = []
        for key, mapping in list(self.mappings.items()):
            if not mapping.ended:
                self._look_at(mapping)
            if not mapping.ahead:
                found += mapping.held
                mapping.held = []
                if mapping.ended:
                    del self.mappings[key]
        return found

    def _look_at(self, mapping: Mapping) -> None:
        tgid = mapping.mapped.tgid
        frames = self.read(tgid, mapping.address, mapping.pages)
        if frames is None:
            mapping.ended = True                   # the process has ended
            return
        changed = [(page, frame) for page, frame in enumerate(frames)
                   if frame is not None and mapping.seen.get(page) != frame]
        if changed and mapping.mapped.inode and self.inode_at(tgid, mapping.address) != mapping.mapped.inode:
            mapping.ended = True                   # unmapped: the address holds something else now
            return
        for page, frame in enumerate(frames):
            if frame is None:
                mapping.seen.pop(page, None)
        for page, frame in changed:
            mapping.seen[page] = frame
            mapping.held.append(self._page_event(mapping, page, frame))

    def _page_event(self, mapping: Mapping, page: int, frame: Frame) -> Event:
        mapped = mapping.mapped
        detail = {"pfn": frame.pfn, "addr": hex(mapping.address + page * PAGE_SIZE),
                  "index": mapping.first_index + page, "file_page": frame.file_page}
        for key in ("file_kind", "file_name"):
            if key in mapped.detail:
                detail[key] = mapped.detail[key]
        return Event(self.clock(), mapped.tgid, mapped.tgid, mapped.comm, self.steps.page, "pagemap", None,
                     mapped.file, mapped.inode, None, detail)
