"""fork-cow: one page, two processes, until one writes.

The parent maps three pages and touches them: a private anonymous page (written), a memfd
mapped MAP_SHARED (written) and a file mapped MAP_PRIVATE (read). Then it forks. The
child writes the private page (copy on write: a frame of its own), then both write the
memfd page (one frame, shared), and the parent writes its private page last (the frame it
kept). At each moment worth seeing, each process asks the kernel with mincore() which of
its pages are resident: syspath reads the page table entries behind them there.

Run by syspath (`syspath run fork-cow`); by hand: python3 program.py
Each process reports on stdout as JSON lines: {"role", "say", ...facts}.
"""
from __future__ import annotations

import ctypes
import mmap
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))     # stepping.py, shared by the lessons
from stepping import pause, report

SIZE = 4096
LIBC = ctypes.CDLL(None, use_errno=True)
LIBC.mmap.restype = ctypes.c_void_p
LIBC.mmap.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long)
LIBC.mincore.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_char_p)
LIBC.munmap.argtypes = (ctypes.c_void_p, ctypes.c_size_t)
PARENT_TEXT = b"the parent's private page"
CHILD_TEXT = b"the child's own copy"
SHARED_TEXT = b"written by the parent into the memfd"
CHILD_SHARED_TEXT = b"and by the child, the same frame"
FILE_TEXT = b"a file's page cache page, mapped MAP_PRIVATE"
# Held still after each look, for a reader of /proc/PID/pagemap as root meanwhile (the live test)
HOLD_S = float(os.environ.get("SYSPATH_COW_HOLD_S", "0") or 0)


def set_comm(name: str) -> None:
    Path("/proc/self/comm").write_text(name)


def map_pages(prot: int, flags: int, fd: int = -1) -> int:
    address = LIBC.mmap(None, SIZE, prot, flags, fd, 0)
    if address in (None, ctypes.c_void_p(-1).value):
        raise OSError(ctypes.get_errno(), "mmap failed")
    return int(address)


def resident(address: int) -> bool:
    """mincore(): is the page in memory? syspath reads the page table entry behind it here."""
    vector = ctypes.create_string_buffer(1)
    if LIBC.mincore(ctypes.c_void_p(address), SIZE, vector) != 0:
        raise OSError(ctypes.get_errno(), "mincore failed")
    return bool(vector.raw[0] & 1)


def pagemap_pfn(address: int) -> int | None:
    """The frame /proc/self/pagemap shows (its PFN reads 0 without CAP_SYS_ADMIN: then None)."""
    with open("/proc/self/pagemap", "rb") as pagemap:
        pagemap.seek(address // SIZE * 8)
        entry = int.from_bytes(pagemap.read(8), "little")
    pfn = entry & ((1 << 55) - 1)
    return pfn if entry >> 63 and pfn else None


class Pages:
    def __init__(self) -> None:
        self.private = map_pages(mmap.PROT_READ | mmap.PROT_WRITE, mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
        self.memfd = os.memfd_create("fork-cow", os.MFD_CLOEXEC)
        os.ftruncate(self.memfd, SIZE)
        self.shared = map_pages(mmap.PROT_READ | mmap.PROT_WRITE, mmap.MAP_SHARED, self.memfd)
        with tempfile.TemporaryFile(prefix="syspath-fork-cow-") as backing:
            backing.write(FILE_TEXT.ljust(SIZE, b"\0"))
            backing.flush()
            self.file = map_pages(mmap.PROT_READ, mmap.MAP_PRIVATE, backing.fileno())

    def addresses(self) -> dict[str, str]:
        return {"private": hex(self.private), "shared": hex(self.shared), "file": hex(self.file)}

    def look(self, role: str, moment: str) -> None:
        seen = {kind: resident(int(address, 16)) for kind, address in self.addresses().items()}
        frames = {kind: pagemap_pfn(int(address, 16)) for kind, address in self.addresses().items()}
        report(role, f"{moment}: resident {', '.join(kind for kind, here in seen.items() if here) or 'none'}",
               look=moment, resident=seen, pagemap=frames, pid=os.getpid(), addresses=self.addresses())
        if HOLD_S:
            time.sleep(HOLD_S)


def write(address: int, data: bytes) -> None:
    ctypes.memmove(address, data + b"\0", len(data) + 1)


def read(address: int, length: int) -> bytes:
    return ctypes.string_at(address, length)


def child(pages: Pages, go: int, done: int) -> int:
    set_comm("cow-child")
    os.read(go, 1)                               # the parent has looked after the fork
    pages.look("child", "after fork, before writing")
    pause("child", "write the private page: a copy-on-write fault")
    write(pages.private, CHILD_TEXT)
    pages.look("child", "after writing the private page")
    pause("child", "write the memfd page (MAP_SHARED)")
    write(pages.shared + 64, CHILD_SHARED_TEXT)
    pages.look("child", "after writing the memfd page")
    report("child", f"child reads its private page: {read(pages.private, len(CHILD_TEXT))!r}",
           private_text=read(pages.private, len(CHILD_TEXT)).decode(), pid=os.getpid())
    os.write(done, b"c")
    return 0


def parent(pages: Pages) -> int:
    set_comm("cow-parent")
    report("parent", "mapped a private anonymous page, a memfd MAP_SHARED and a file MAP_PRIVATE",
           pid=os.getpid(), addresses=pages.addresses())
    pages.look("parent", "mapped, not yet touched")
    pause("parent", "touch the three pages: write the private page and the memfd, read the file")
    write(pages.private, PARENT_TEXT)
    write(pages.shared, SHARED_TEXT)
    file_text = read(pages.file, len(FILE_TEXT))
    pages.look("parent", "touched")
    pause("parent", "fork(): the child gets a copy of the mm_struct, not of the pages")
    go_read, go_write = os.pipe()
    done_read, done_write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os._exit(child(pages, go_read, done_write))
    pages.look("parent", "after fork")
    os.write(go_write, b"g")
    os.read(done_read, 1)                        # the child wrote both pages
    pages.look("parent", "after the child wrote")
    pause("parent", "write the memfd page, then the private page")
    write(pages.shared + 128, SHARED_TEXT)
    write(pages.private, PARENT_TEXT + b", written again")
    pages.look("parent", "after the parent wrote")
    _, status = os.waitpid(pid, 0)
    private_text = read(pages.private, len(PARENT_TEXT))
    shared_child = read(pages.shared + 64, len(CHILD_SHARED_TEXT))
    report("parent", f"parent reads its private page {private_text!r} and, in the memfd, the child's "
           f"{shared_child!r}", private_text=private_text.decode(), shared_from_child=shared_child.decode(),
           file_text=file_text.decode(), child_pid=pid, pid=os.getpid())
    ok = private_text == PARENT_TEXT and shared_child == CHILD_SHARED_TEXT and file_text == FILE_TEXT
    return 0 if ok and os.waitstatus_to_exitcode(status) == 0 else 1


def main() -> int:
    return parent(Pages())


if __name__ == "__main__":
    sys.exit(main())
