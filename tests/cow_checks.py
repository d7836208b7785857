"""fork-cow's kernel facts, on any tier: one frame in parent and child until the child writes.

The recording's frames are the kernel's: page table entries read at mincore() (`pte`), the
frames kmem:mm_page_alloc reported inside faults (`first_touch`, `cow_fault`). Meanwhile a
reader, as root, polls /proc/PID/pagemap of the lesson's two processes (the program holds
still after each look): every frame the recording names must be one pagemap showed there.
tests/live/test_fork_cow.py runs it here; tests/vm/test_function_tiers.py in a guest, with
`python -m tests.cow_checks MODE RECORDING` (which writes RECORDING and RECORDING.seen.json,
and prints syspath's output).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

PAGE = 4096
COMMS = ("cow-parent", "cow-child")
FORK_SYSCALLS = {"clone", "clone3", "fork", "vfork"}
COW_FUNCTIONS = {"do_wp_page", "wp_page_copy"}
REPO = Path(__file__).resolve().parents[1]
Seen = dict[tuple[int, int], set[int]]


def _pagemap_pfn(pid: int, address: int) -> int | None:
    with open(f"/proc/{pid}/pagemap", "rb") as pagemap:
        pagemap.seek(address // PAGE * 8)
        entry = int.from_bytes(pagemap.read(8), "little")
    pfn = entry & ((1 << 55) - 1)
    return pfn if entry >> 63 and pfn else None


class PagemapReader:
    """Polls the lesson's processes: the frames behind the pages around their memfd mapping."""

    def __init__(self) -> None:
        self.seen: Seen = {}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self.stop.is_set():
            for entry in os.listdir("/proc"):
                if entry.isdigit():
                    try:
                        self._look(int(entry))
                    except (OSError, ValueError):
                        pass
            time.sleep(0.005)

    def _look(self, pid: int) -> None:
        if Path(f"/proc/{pid}/comm").read_text().strip() not in COMMS:
            return
        for line in Path(f"/proc/{pid}/maps").read_text().splitlines():
            if "memfd:fork-cow" in line:
                start = int(line.split("-", 1)[0], 16)
                for address in range(start - 2 * PAGE, start + 3 * PAGE, PAGE):
                    pfn = _pagemap_pfn(pid, address)
                    if pfn:
                        self.seen.setdefault((pid, address), set()).add(pfn)


def record(path: Path, mode: str | None = None) -> tuple[int, Seen, str, str]:
    """`syspath run fork-cow` recorded to `path` while pagemap is polled: (rc, seen, stdout, stderr)."""
    reader = PagemapReader()
    reader.thread.start()
    command = [sys.executable, "-m", "tracer", "run", "fork-cow", "--no-live", "--record", str(path)]
    try:
        done = subprocess.run(command + (["--mode", mode] if mode else []), cwd=REPO, capture_output=True,
                              text=True, timeout=600, env=dict(os.environ, SYSPATH_COW_HOLD_S="0.15"))
    finally:
        reader.stop.set()
        reader.thread.join()
    return done.returncode, reader.seen, done.stdout, done.stderr


def save_seen(seen: Seen, path: Path) -> None:
    path.write_text(json.dumps([[pid, address, sorted(pfns)] for (pid, address), pfns in seen.items()]))


def load_seen(path: Path) -> Seen:
    return {(pid, address): set(pfns) for pid, address, pfns in json.loads(path.read_text())}


def events(records: list[dict], step: str) -> list[dict]:
    return [r for r in records if r.get("type") == "event" and r["step"] == step]


def the_copies(records: list[dict]) -> tuple[dict, list[dict]]:
    """The child's cow_fault (the first), and the parent's if its last write copied too.

    After the child's copy the parent is usually the old frame's only user and its write reuses
    the frame (mm/memory.c wp_can_reuse_anon_folio). The kernel still copies when another
    reference holds the folio at that moment, such as another CPU's LRU batch, which the
    writer's lru_add_drain() does not drain. Both outcomes are the kernel's; the checks below
    hold the recording to whichever one it shows."""
    first, *later = events(records, "cow_fault")
    return first, later


def the_pages(records: list[dict]) -> tuple[int, int, int, int, int]:
    """(parent tgid, child tgid, private page, memfd page, file page), from the kernel's events."""
    cow, _ = the_copies(records)
    child = cow["tgid"]
    touches = events(records, "first_touch")
    parent = touches[0]["tgid"]
    private = int(cow["detail"]["addr"], 16)
    (shared,) = {int(t["detail"]["addr"], 16) for t in touches} - {private}
    (file_page,) = {int(p["detail"]["addr"], 16) for p in events(records, "pte")} - {private, shared}
    return parent, child, private, shared, file_page


def ptes(records: list[dict], tgid: int, address: int) -> list[dict]:
    return [p for p in events(records, "pte") if p["tgid"] == tgid and int(p["detail"]["addr"], 16) == address]


def check_mm_copy(records: list[dict]) -> None:
    """fork copied the mm_struct, not the pages."""
    parent, child, _, _, _ = the_pages(records)
    (copy,) = events(records, "mm_copy")
    assert copy["tgid"] == parent and copy["detail"]["syscall"] in FORK_SYSCALLS
    assert copy["detail"]["mm"] != copy["detail"]["parent_mm"]
    assert "copy_process" in copy["stack"]
    # the new mm_struct is the child's address space; the parent keeps its own
    assert {p["detail"]["mm"] for p in events(records, "pte") if p["tgid"] == child} == {copy["detail"]["mm"]}
    assert {p["detail"]["mm"] for p in events(records, "pte") if p["tgid"] == parent} == {copy["detail"]["parent_mm"]}
    assert records[-1]["lost"] == 0 and records[-1]["exit_code"] == 0


def check_first_touch(records: list[dict]) -> None:
    """A page exists from its first touch: the fault allocates its frame."""
    parent, _, private, shared, _ = the_pages(records)
    for address in (private, shared):
        first, *later = ptes(records, parent, address)
        assert first["detail"]["walked"] and not first["detail"]["present"]      # mapped, no frame yet
        touch = next(t for t in events(records, "first_touch") if int(t["detail"]["addr"], 16) == address)
        assert later[0]["detail"]["pfn"] == touch["detail"]["pfn"]              # the frame the fault allocated
    # do_anonymous_page allocates the private page; 6.1 inlines it into __handle_mm_fault
    anonymous = "do_anonymous_page" if records[0]["kallsyms"].get("do_anonymous_page") else "__handle_mm_fault"
    stacks = [t["stack"] for t in events(records, "first_touch")]
    assert any(anonymous in s and "shmem_fault" not in s for s in stacks), stacks
    assert any("shmem_fault" in s for s in stacks), stacks


def check_one_frame_until_write(records: list[dict]) -> None:
    parent, child, private, _, _ = the_pages(records)
    cow, parent_copies = the_copies(records)
    before_parent = [p for p in ptes(records, parent, private) if p["ts_ns"] < cow["ts_ns"]][-1]["detail"]
    before_child = [p for p in ptes(records, child, private) if p["ts_ns"] < cow["ts_ns"]][-1]["detail"]
    old = before_parent["pfn"]
    assert old is not None and before_child["pfn"] == old
    assert before_parent["writable"] is False and before_child["writable"] is False   # fork write-protected both
    # the child's write: a fault on a present read-only entry, a new frame, through do_wp_page
    detail = cow["detail"]
    assert cow["tgid"] == child and detail["write"] and detail["was_present"]
    assert detail["old_pfn"] == old and detail["old_writable"] is False
    assert detail["pfn"] != old
    assert COW_FUNCTIONS & {*cow["stack"], cow["hook"].split(":")[-1]}, (cow["hook"], cow["stack"])
    after_child = next(p for p in ptes(records, child, private) if p["ts_ns"] > cow["ts_ns"])["detail"]
    assert after_child["pfn"] == detail["pfn"] and after_child["writable"] is True
    # the parent keeps the old frame; its own write then reuses it, or copies it (the_copies)
    after_parent = [p["detail"] for p in ptes(records, parent, private) if p["ts_ns"] > cow["ts_ns"]]
    assert len(after_parent) == 2 and after_parent[0]["pfn"] == old, after_parent
    final = after_parent[-1]
    assert final["writable"] is True
    if parent_copies:
        (again,) = parent_copies
        assert again["tgid"] == parent and int(again["detail"]["addr"], 16) == private, again
        assert again["detail"]["old_pfn"] == old and again["detail"]["pfn"] == final["pfn"] != old, again
    else:
        assert final["pfn"] == old


def check_memfd_page(records: list[dict]) -> None:
    parent, child, _, shared, _ = the_pages(records)
    frames = {p["detail"]["pfn"] for tgid in (parent, child) for p in ptes(records, tgid, shared)
              if p["detail"]["present"]}
    assert len(frames) == 1
    assert ptes(records, child, shared)[-1]["detail"]["present"]            # the child wrote it: mapped
    assert ptes(records, parent, shared)[-1]["detail"]["pfn"] == ptes(records, child, shared)[-1]["detail"]["pfn"]


def check_frames_in_pagemap(records: list[dict], seen: Seen) -> None:
    parent, child, private, _, _ = the_pages(records)
    checked = 0
    for pte in events(records, "pte"):
        if pte["detail"]["present"]:
            key = (pte["tgid"], int(pte["detail"]["addr"], 16))
            assert pte["detail"]["pfn"] in seen.get(key, set()), (key, pte["detail"], seen.get(key))
            checked += 1
    cow, parent_copies = the_copies(records)
    assert cow["detail"]["pfn"] in seen[(child, private)]
    assert cow["detail"]["old_pfn"] in seen[(parent, private)]
    assert all(again["detail"]["pfn"] in seen[(parent, private)] for again in parent_copies)
    assert checked >= 10


def check_story(records: list[dict], output: str) -> None:
    parent, child, _, shared, _ = the_pages(records)
    cow, parent_copies = the_copies(records)
    old, new = cow["detail"]["old_pfn"], cow["detail"]["pfn"]
    lines = output.splitlines()
    assert any(line.startswith(f"copy on write: cow-child[{child}]") and f"frame {old:#x} (read-only)" in line
               and f"allocated it frame {new:#x}" in line for line in lines), output
    assert f"  cow-parent[{parent}] kept frame {old:#x}: its entry read after the fault" in lines
    for again in parent_copies:
        assert any(line.startswith(f"copy on write: cow-parent[{parent}]")
                   and f"allocated it frame {again['detail']['pfn']:#x}" in line for line in lines), output
    shared_frame = ptes(records, child, shared)[-1]["detail"]["pfn"]
    assert any(line.startswith(f"one frame {shared_frame:#x} behind the memfd page") for line in lines)


def main(mode: str, path: str) -> int:
    rc, seen, stdout, stderr = record(Path(path), mode)
    save_seen(seen, Path(path + ".seen.json"))
    print(stdout + stderr, end="")
    return rc


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))
