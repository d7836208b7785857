"""The tests' own reading of a struct file's life (tests/file_life.py): it must split lives
the way the kernel reuses addresses, or the live and VM tests would check the wrong file."""
from __future__ import annotations

from tests.file_life import file_life


def event(ts: int, step: str, tgid: int = 10, file: str = "0xffff888100000000") -> dict:
    return {"type": "event", "ts_ns": ts, "step": step, "tgid": tgid, "file": file}


def test_an_earlier_file_at_the_same_address_is_another_life() -> None:
    """The syscall tier: ld.so.cache mapped and closed, then the memfd gets its slab object;
    shmem_file_setup (inside the syscall) is stamped before memfd_create (at its exit)."""
    library = event(1, "do_mmap")
    records = [library, event(5, "shmem_file_setup"), event(6, "memfd_create"), event(7, "do_mmap"),
               event(8, "receive_fd", tgid=11), event(9, "do_mmap", tgid=11), event(1, "clone", file="0x1")]
    assert [e["ts_ns"] for e in file_life(records, records[2])] == [5, 6, 7, 8, 9]
    assert file_life(records, library) == [library]


def test_births_stamped_at_entry_nest_and_fput_ends_the_life() -> None:
    """The function tiers stamp memfd_create at its entry: the births it runs come after it."""
    records = [event(1, "memfd_create"), event(2, "shmem_file_setup"), event(3, "alloc_file_pseudo"),
               event(4, "fd_install"), event(5, "fput"), event(6, "alloc_file_pseudo"), event(7, "fd_install")]
    assert [e["ts_ns"] for e in file_life(records, records[0])] == [1, 2, 3, 4, 5]
    assert [e["ts_ns"] for e in file_life(records, records[5])] == [6, 7]
