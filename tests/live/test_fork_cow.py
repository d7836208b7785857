"""fork-cow on this kernel: one frame in parent and child until the child writes.

The checks are tests/cow_checks.py's (the VM tier runs them on the function tiers): every
frame the recording names must be one /proc/PID/pagemap showed, read as root meanwhile.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from scenarios.fork_cow.lesson import kallsyms_addresses
from tests import cow_checks
from tests.live.conftest import read_jsonl

Run = tuple[list[dict], cow_checks.Seen, str]


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    path: Path = tmp_path_factory.mktemp("rec") / "cow.jsonl"
    rc, seen, stdout, stderr = cow_checks.record(path)
    assert rc == 0, stderr
    return read_jsonl(path), seen, stdout


def test_fork_copied_the_mm_struct_not_the_pages(run: Run) -> None:
    cow_checks.check_mm_copy(run[0])


def test_a_page_exists_from_its_first_touch(run: Run) -> None:
    cow_checks.check_first_touch(run[0])


def test_one_frame_in_parent_and_child_until_the_child_writes(run: Run) -> None:
    cow_checks.check_one_frame_until_write(run[0])


def test_the_memfd_page_stays_one_frame(run: Run) -> None:
    cow_checks.check_memfd_page(run[0])


def test_every_frame_is_one_pagemap_showed(run: Run) -> None:
    cow_checks.check_frames_in_pagemap(run[0], run[1])


def test_the_story_tells_the_frames_the_kernel_gave(run: Run) -> None:
    cow_checks.check_story(run[0], run[2])


def test_the_tables_are_read_through_the_direct_map(run: Run) -> None:
    """Where kallsyms names page_offset_base its value is read; else the default base (KASLR off here)."""
    how = {p["detail"].get("direct_map") for p in cow_checks.events(run[0], "pte")}
    assert how == {"page_offset_base" if "page_offset_base" in kallsyms_addresses("page_offset_base") else "default"}
