"""Where fork-cow's probes find the direct map to read page tables through (lesson.py direct_map):
page_offset_base's value where kallsyms names it (Debian: CONFIG_KALLSYMS_ALL, KASLR on), the
default base where KASLR left the kernel at its default address, else not at all, with why."""
from __future__ import annotations

import pytest

from scenarios.fork_cow import lesson


def symbols(monkeypatch: pytest.MonkeyPatch, found: dict[str, int], machine: str = "x86_64") -> None:
    monkeypatch.setattr(lesson.platform, "machine", lambda: machine)
    monkeypatch.setattr(lesson, "kallsyms_addresses", lambda *names: {n: a for n, a in found.items() if n in names})
    monkeypatch.setattr(lesson, "_five_levels", lambda: True)


def test_page_offset_base_is_read_where_kallsyms_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    symbols(monkeypatch, {"_text": 0xFFFFFFFF87800000, "page_offset_base": 0xFFFFFFFF88DD95A8})
    assert lesson.page_table_defines(()) == ["-DCOW_PAGE_OFFSET_BASE=0xffffffff88dd95a8ULL", "-DCOW_PGTABLE_LEVELS=5"]


def test_the_default_base_only_where_kaslr_did_not_move_the_kernel(monkeypatch: pytest.MonkeyPatch) -> None:
    symbols(monkeypatch, {"_text": lesson.DEFAULT_TEXT})
    assert lesson.page_table_defines(()) == ["-DCOW_PAGE_OFFSET=0xff11000000000000ULL", "-DCOW_PGTABLE_LEVELS=5"]
    symbols(monkeypatch, {"_text": 0xFFFFFFFF87800000})
    assert lesson.page_table_defines(()) == []
    reason = lesson.pte_detail(0x1000, 0, 0, 0, lesson.WALK_NOT_READ)["not_read"]
    assert "KASLR moved this kernel" in reason and "page_offset_base" in reason and "\n" not in reason


def test_another_machine_is_told_in_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    symbols(monkeypatch, {}, machine="aarch64")
    assert lesson.page_table_defines(()) == []        # lesson.cannot_run refuses it before
    flag, reason = lesson.direct_map()
    assert flag == "" and reason.startswith("fork-cow is x86-64 only") and reason.endswith(": not on aarch64")
    assert "\n" not in reason
