"""The compile cache's bytecode handling: map fds put back, names the kernel keeps, keys."""
from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest

from tracer import kernel, objcache

INSN = struct.Struct("<BBhi")


def insn(opcode: int, dst: int = 0, src: int = 0, offset: int = 0, imm: int = 0) -> bytes:
    return INSN.pack(opcode, dst | src << 4, offset, imm)


def imms(code: bytes) -> list[int]:
    return [INSN.unpack_from(code, i)[3] for i in range(0, len(code), INSN.size)]


def test_map_loads_get_the_new_fds_and_nothing_else_changes() -> None:
    code = (insn(0x18, dst=1, src=objcache.PSEUDO_MAP_FD, imm=7) + insn(0, imm=0)      # r1 = map fd 7
            + insn(0x18, dst=2, src=0, imm=7) + insn(0, imm=0)                          # r2 = the number 7
            + insn(0xb7, dst=3, imm=7)                                                  # r3 = 7 (mov)
            + insn(0x18, dst=4, src=objcache.PSEUDO_MAP_FD, imm=9) + insn(0, imm=0))   # r4 = map fd 9
    remapped = objcache.with_map_fds(code, {7: 40, 9: 41})
    assert imms(remapped) == [40, 0, 7, 0, 7, 41, 0]
    assert len(remapped) == len(code)


def test_a_map_the_cache_does_not_list_refuses_the_cache() -> None:
    code = insn(0x18, dst=1, src=objcache.PSEUDO_MAP_FD, imm=5) + insn(0)
    with pytest.raises(objcache.CacheError):
        objcache.with_map_fds(code, {7: 40})


def test_short_names_keep_the_event_and_stay_apart() -> None:
    names = ["tracepoint__syscalls__sys_exit_memfd_create", "tracepoint__syscalls__sys_exit_mmap",
             "raw_tracepoint__task_newtask", "tracepoint__task__task_newtask", "raw_tracepoint__vm_unmapped_area"]
    short = [objcache.short_name(name)[:15] for name in names]
    assert short == ["tp_sys_exit_mem", "tp_sys_exit_mma", "raw_task_newtas", "tp_task_newtask", "raw_vm_unmapped"]


def test_the_key_changes_with_text_and_flags() -> None:
    key = objcache.cache_key("int x;", ["-DA=1"])
    assert key == objcache.cache_key("int x;", ["-DA=1"])
    assert key != objcache.cache_key("int y;", ["-DA=1"])
    assert key != objcache.cache_key("int x;", ["-DA=2"])


def test_an_unreadable_or_foreign_cache_file_is_ignored(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kernel, "CACHE_DIR", tmp_path)
    objcache.cache_path("k1").write_text("{not json")
    objcache.cache_path("k2").write_text(json.dumps({"maps": [], "programs": []}))    # fields missing
    assert objcache.find("k1") is None
    assert objcache.find("k2") is None
    assert objcache.find("absent") is None


def test_only_the_newest_entries_are_kept(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    monkeypatch.setattr(kernel, "CACHE_DIR", tmp_path)
    for age in range(objcache.KEPT + 3):
        entry = objcache.cache_path(f"k{age}")
        entry.write_text("{}")
        os.utime(entry, (1000 + age, 1000 + age))
    objcache.prune()
    kept = {path.name for path in tmp_path.glob("program-*.json")}
    assert len(kept) == objcache.KEPT and "program-k0.json" not in kept and f"program-k{objcache.KEPT + 2}.json" in kept
