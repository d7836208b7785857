"""The page behind a mapping, from /proc/PID/pagemap entries (tracer/pages.py)."""
from __future__ import annotations

from tracer.events import Event
from tracer.pages import FILE_PAGE, PRESENT, Frame, PageWatch, WatchedSteps, parse_entries


def watched_steps() -> WatchedSteps:
    """The lessons' page-frame step and the steps that map or pass a file."""
    found = WatchedSteps.from_lessons()
    assert found is not None and found.page == "page" and "do_mmap" in found.mapping
    return found


STEPS = watched_steps()


def entry(pfn: int, file_page: bool = True, present: bool = True) -> bytes:
    value = pfn | (FILE_PAGE if file_page else 0) | (PRESENT if present else 0)
    return value.to_bytes(8, "little")


def test_entries_give_frames_only_for_present_pages_with_a_visible_pfn() -> None:
    data = entry(0x1626FC) + entry(0x13908B, file_page=False) + entry(0x1234, present=False) + entry(0)
    assert parse_entries(data) == [Frame(0x1626FC, True), Frame(0x13908B, False), None, None]


def mapped(tgid: int, file: str, kind: str = "memfd", flags: tuple[str, ...] = ("MAP_SHARED",)) -> Event:
    detail = {"address": "0x7f0000001000", "length": 4096, "flags": list(flags), "file_kind": kind,
              "file_name": "demo"}
    return Event(1, tgid, tgid, "sender", "do_mmap", "tp", 3, file, 42, 2, detail)


class Frames:
    """A fake /proc: tgid -> the frames its mapping shows now (None: the process is gone)."""

    def __init__(self) -> None:
        self.now: dict[int, list[Frame | None] | None] = {}
        self.inode = 42                                         # what /proc/PID/maps shows at the address

    def inode_at(self, tgid: int, address: int) -> int | None:
        return self.inode if self.now.get(tgid) is not None else None

    def read(self, tgid: int, address: int, pages: int) -> list[Frame | None] | None:
        assert (address, pages) == (0x7F0000001000, 1)
        return self.now.get(tgid)


def test_a_page_event_when_a_frame_appears_or_changes_and_none_while_it_stays() -> None:
    proc = Frames()
    watch = PageWatch(STEPS, proc.read, clock=lambda: 99, inode_at=proc.inode_at)
    watch.note(mapped(10, "0xffff888100000000"))
    proc.now[10] = [None]
    assert watch.look() == []                                   # mapped, not touched yet
    proc.now[10] = [Frame(0x1626FC, True)]
    [page] = watch.look()
    assert (page.step, page.hook, page.tgid, page.file) == ("page", "pagemap", 10, "0xffff888100000000")
    assert page.detail == {"pfn": 0x1626FC, "addr": "0x7f0000001000", "index": 0, "file_page": True,
                           "file_kind": "memfd", "file_name": "demo"}
    assert watch.look() == []                                   # the same frame: nothing new
    proc.now[10] = [Frame(0x13908B, False)]                     # a private write: copy on write
    [copy] = watch.look()
    assert copy.detail["pfn"] == 0x13908B and not copy.detail["file_page"]
    proc.now[10] = None                                         # the process ended
    assert watch.look() == [] and not watch.mappings


def test_only_memfds_and_passed_files_are_watched() -> None:
    watch = PageWatch(STEPS, Frames().read)
    watch.note(mapped(10, "0xffff888100000040", kind="regular", flags=("MAP_PRIVATE",)))   # a library
    assert not watch.mappings
    watch.note(Event(0, 10, 10, "sender", "scm_fp_copy", "tp", 4, "0xffff888100000080", 7, 2, {}))
    watch.note(mapped(11, "0xffff888100000080", kind="regular", flags=("MAP_SHARED",)))
    assert list(watch.mappings) == [(11, 0x7F0000001000)]


def test_frames_seen_ahead_wait_for_their_mapping_to_be_emitted() -> None:
    """The decoder lags (symbols loading): the mapping is looked at from the read-ahead while
    its process lives, and its pages come out once its do_mmap event has."""
    proc = Frames()
    watch = PageWatch(STEPS, proc.read, clock=lambda: 99, inode_at=proc.inode_at)
    early = mapped(10, "0xffff888100000000")
    watch.read_ahead(early)
    proc.now[10] = [Frame(0x1626FC, True)]
    assert watch.look() == []                                   # seen, held: do_mmap is not out yet
    proc.now[10] = None                                         # the process ends before the decoder catches up
    assert watch.look() == [] and watch.mappings
    watch.note(mapped(10, "0xffff888100000000"))                # the same record, decoded in its turn
    [page] = watch.look()
    assert page.detail["pfn"] == 0x1626FC and page.ts_ns == 99
    assert watch.look() == [] and not watch.mappings


def test_a_mapping_read_ahead_is_not_watched_twice() -> None:
    proc = Frames()
    watch = PageWatch(STEPS, proc.read, inode_at=proc.inode_at)
    watch.read_ahead(mapped(10, "0xffff888100000000"))
    proc.now[10] = [Frame(0x1626FC, True)]
    watch.look()
    watch.note(mapped(10, "0xffff888100000000"))
    assert len(watch.look()) == 1 and watch.look() == []          # one page event, not one per sighting


def test_a_pass_read_ahead_does_not_make_an_older_mapping_at_its_address_watched() -> None:
    """The 6.1 VM: the pass of a memfd was read ahead, then the sender's earlier mapping of
    ld-linux, whose struct file had the memfd's address before it, came out in its turn."""
    watch = PageWatch(STEPS, Frames().read)
    passed = "0xffff888100000080"
    watch.read_ahead(Event(50, 10, 10, "sender", "scm_fp_copy", "tp", 4, passed, 7, 2, {}))
    library = mapped(10, passed, kind="regular", flags=("MAP_PRIVATE",))     # ts 1: before the pass
    watch.note(library)
    assert not watch.mappings
    later = mapped(11, passed, kind="regular", flags=("MAP_SHARED",))
    later.ts_ns = 60
    watch.note(later)
    assert list(watch.mappings) == [(11, 0x7F0000001000)]


def test_a_mapping_unmapped_and_its_address_reused_is_no_longer_the_files() -> None:
    proc = Frames()
    watch = PageWatch(STEPS, proc.read, inode_at=proc.inode_at)
    watch.note(mapped(10, "0xffff888100000000"))
    proc.now[10] = [Frame(0x1626FC, True)]
    assert len(watch.look()) == 1
    proc.now[10], proc.inode = [Frame(0x2000, False)], 0         # munmap, then malloc's arena there
    assert watch.look() == [] and not watch.mappings


def test_mapped_inode_reads_this_process_maps(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import ctypes
    import mmap
    import os

    from tracer.pages import mapped_inode
    path = tmp_path / "mapped"
    path.write_bytes(b"x" * 4096)
    with open(path, "r+b") as file, mmap.mmap(file.fileno(), 4096) as mapping:
        address = ctypes.addressof(ctypes.c_char.from_buffer(mapping))
        assert mapped_inode(os.getpid(), address) == os.stat(path).st_ino
        anonymous = mmap.mmap(-1, 4096, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
        assert mapped_inode(os.getpid(), ctypes.addressof(ctypes.c_char.from_buffer(anonymous))) == 0
    assert mapped_inode(os.getpid(), 4096) is None                    # nothing is mapped at page 1
