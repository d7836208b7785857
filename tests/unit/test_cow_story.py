"""fork-cow's sentences rest on the recording: each is told from a live recording
(tests/fixtures/stories/fork-cow.jsonl, syscall tier, this project's kernel), then from the
same recording doctored, and must go or change."""
from __future__ import annotations

import copy
from typing import Any

from tests.unit.test_stories import STORIES, Doctor, Told, drop, the, told, untouched
from tracer.events import Event


def cow(doctor: Doctor = untouched) -> Told:
    return told(STORIES / "fork-cow.jsonl", doctor)


def pid_of(events: list[Event], comm: str) -> int:
    return next(event.tgid for event in events if event.comm == comm)


def private_page(events: list[Event]) -> str:
    return str(the(events, "cow_fault")[0].detail["addr"])


def test_the_copy_on_write_is_the_writers_fault_and_its_new_frame() -> None:
    story = cow()
    fault = the(story.events, "cow_fault")[0]
    new, old = fault.detail["pfn"], fault.detail["old_pfn"]
    child = pid_of(story.events, "cow-child")
    [line] = story.lines("copy on write:")
    assert f"cow-child[{child}]" in line and f"frame {old:#x} (read-only)" in line
    assert f"allocated it frame {new:#x}" in line and "under do_wp_page" in line
    assert story.lines(f"cow-child[{child}]'s entry then mapped frame {new:#x}, writable")
    assert story.lines(f"cow-parent[{pid_of(story.events, 'cow-parent')}] kept frame {old:#x}")

    no_fault = cow(lambda events, _: drop(events, the(events, "cow_fault")))
    assert not no_fault.lines("copy on write:")


def test_the_parent_kept_its_frame_only_as_its_entry_read_after_the_fault_says() -> None:
    def parent_moved(events: list[Event], _: list[dict[str, Any]]) -> None:
        fault = the(events, "cow_fault")[0]
        for event in the(events, "pte", "cow-parent", addr=fault.detail["addr"]):
            if event.ts_ns > fault.ts_ns:
                event.detail["pfn"] = fault.detail["pfn"] + 1

    assert cow().lines("cow-parent[")
    assert not [line for line in cow(parent_moved).lines("cow-parent[") if "kept" in line]


def test_a_copy_for_the_parents_own_write_is_told_as_its_own_copy() -> None:
    """The kernel may copy for the parent's last write too (tests/cow_checks.py the_copies):
    the doctored recording has that second fault and the parent's last entry on its new frame."""
    def parent_copied(events: list[Event], _: list[dict[str, Any]]) -> None:
        child_fault = the(events, "cow_fault")[0]
        *_, last = the(events, "pte", "cow-parent", addr=child_fault.detail["addr"])
        again = copy.deepcopy(child_fault)
        again.pid, again.tgid, again.comm, again.ts_ns = last.pid, last.tgid, last.comm, last.ts_ns - 1
        again.detail["pfn"] = last.detail["pfn"] = child_fault.detail["pfn"] + 1
        events.insert(events.index(last), again)

    parent = pid_of(cow().events, "cow-parent")
    assert not cow().lines(f"copy on write: cow-parent[{parent}]")
    story = cow(parent_copied)
    fault = the(story.events, "cow_fault")[0]
    [line] = story.lines(f"copy on write: cow-parent[{parent}]")
    assert f"frame {fault.detail['old_pfn']:#x} (read-only)" in line
    assert f"allocated it frame {fault.detail['pfn'] + 1:#x}" in line
    assert story.lines(f"cow-parent[{parent}] kept frame {fault.detail['old_pfn']:#x}")   # until its own write


def test_one_frame_after_fork_rests_on_both_entries_read_only() -> None:
    story = cow()
    fault = the(story.events, "cow_fault")[0]
    [line] = [line for line in story.lines("after fork: one frame") if fault.detail["addr"] in line]
    assert f"frame {fault.detail['old_pfn']:#x}" in line and "read-only in both" in line

    def child_entries_gone(events: list[Event], _: list[dict[str, Any]]) -> None:
        drop(events, [event for event in the(events, "pte", "cow-child", addr=fault.detail["addr"])
                      if event.ts_ns < fault.ts_ns])

    assert not cow(child_entries_gone).lines("after fork: one frame")


def test_fork_did_not_copy_the_shared_mappings_entries_as_the_childs_table_shows() -> None:
    story = cow()
    shared = [line for line in story.lines("after fork: cow-parent") if "had no entry" in line]
    assert len(shared) == 2         # the memfd page and the file page
    assert story.lines("kernel source (mm/memory.c copy_page_range -> vma_needs_copy)")

    def child_had_entries(events: list[Event], _: list[dict[str, Any]]) -> None:
        for event in the(events, "pte", "cow-child"):
            if not event.detail["present"]:
                parent = the(events, "pte", "cow-parent", addr=event.detail["addr"])[-1]
                event.detail.update(present=True, pfn=parent.detail["pfn"], writable=False)

    doctored = cow(child_had_entries)
    assert not [line for line in doctored.lines("after fork: cow-parent") if "had no entry" in line]
    assert not doctored.lines("kernel source (mm/memory.c copy_page_range")


def test_the_memfd_frame_is_one_and_writable_in_both_as_read() -> None:
    story = cow()
    [line] = story.lines("one frame")
    assert "the memfd page (MAP_SHARED)" in line and "writable in both" in line

    def child_copied(events: list[Event], _: list[dict[str, Any]]) -> None:
        for event in the(events, "pte", "cow-child", present=True, writable=True):
            event.detail["pfn"] += 7

    assert not cow(child_copied).lines("one frame")


def test_a_first_touch_says_no_entry_before_only_when_the_empty_entry_was_read() -> None:
    story = cow()
    touches = story.lines("first touch:")
    assert len(touches) == 2 and all("had no entry for it" in line for line in touches)
    assert any("do_anonymous_page" in line for line in touches)
    assert any("shmem_alloc_folio" in line for line in touches)

    def unread_before(events: list[Event], _: list[dict[str, Any]]) -> None:
        first = the(events, "first_touch")[0]
        drop(events, [event for event in the(events, "pte", addr=first.detail["addr"]) if event.ts_ns < first.ts_ns])

    assert sum("had no entry" in line for line in cow(unread_before).lines("first touch:")) == 1


def test_the_mm_struct_copy_names_the_new_and_the_parents_address() -> None:
    story = cow()
    copy = the(story.events, "mm_copy")[0]
    [line] = story.lines("clone() in cow-parent")
    assert copy.detail["mm"] in line and copy.detail["parent_mm"] in line and "copy_process" in line
    assert not cow(lambda events, _: drop(events, the(events, "mm_copy"))).lines("clone() in")


def test_the_page_names_are_the_programs_report_cited() -> None:
    story = cow()
    [line] = story.lines("pages named by the program (program report 1 (parent))")
    assert private_page(story.events) in line

    def unnamed(_: list[Event], outputs: list[dict[str, Any]]) -> None:
        for output in outputs:
            if output["report"]:
                output["report"].pop("addresses", None)

    doctored = cow(unnamed)
    assert not doctored.lines("pages named by the program")
    assert not [line for line in doctored.lines("copy on write:") if "private anonymous page" in line]


def test_the_other_lessons_stories_say_nothing_of_steps_this_session_did_not_trace() -> None:
    text = cow().text
    assert "no new task" not in text and "no struct file shared" not in text


def test_tables_not_read_say_why_from_the_pte_events() -> None:
    reason = ("page tables not read: KASLR moved this kernel and page_offset_base, the direct map's "
              "randomized base, is not in /proc/kallsyms (no CONFIG_KALLSYMS_ALL)")

    def unread(why: str) -> Doctor:
        def doctor(events: list[Event], _: list[dict[str, Any]]) -> None:
            for event in the(events, "pte"):
                for key in ("present", "pfn", "writable", "dirty", "direct_map"):
                    event.detail.pop(key, None)
                event.detail.update(walked=False, **({"not_read": why} if why else {}))
        return doctor

    assert not cow().lines("page tables not read")
    assert cow(unread(reason)).lines(reason)
    told_without = cow(unread(""))
    assert told_without.lines("") and not told_without.lines("page tables not read")
    assert [line for line in told_without.lines("") if "page table reads did not happen" in line]
