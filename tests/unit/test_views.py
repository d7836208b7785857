"""Views and exports over hand-made events: narration, chrome trace, object view, life story."""
from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

from rich.console import Console

from tracer import lessons
from tracer.events import Event
from tracer.exports import ChromeTraceSpool
from tracer.findings import life_stories, shared_files
from tracer.views.narration import narrate, narration_texts
from tracer.views.objects import object_panels

FILE = "0xffff888100000f00"
SESSION = {"started_ns": 1_000, "kernel": "6.12", "mode": "kprobe", "scenario": "memfd-share", "command": None}


def event(ts: int, step: str, comm: str, tgid: int, fd: int | None = None, refcount: int = 1,
          hook: str = "kretprobe:x", **detail: object) -> Event:
    return Event(ts, tgid, tgid, comm, step, hook, fd, FILE, 42, refcount, dict(detail))


STORY = [
    event(2_000, "shmem_file_setup", "sender", 10),
    event(1_500, "memfd_create", "sender", 10, fd=3),
    event(3_000, "do_mmap", "sender", 10, refcount=2, address="0x7f00", vma="0xffff1", vm_flags=["VM_SHARED"]),
    event(4_000, "scm_fp_copy", "sender", 10, fd=3, refcount=3, depth=1),
    event(5_000, "receive_fd", "receiver", 11, fd=5, refcount=4),
    event(6_000, "do_mmap", "receiver", 11, refcount=5, address="0x7f80", vma="0xffff2", vm_flags=["VM_SHARED"]),
]


def test_every_step_is_narrated_with_its_kernel_source() -> None:
    for steps in (lesson.steps for lesson in lessons.all_lessons()):
        for step in steps:
            told = narrate(step.name, step.hooks[0].point if step.hooks else "pagemap")
            assert told is not None, step.name
            where, text = told
            assert ".c:" in where and "()" in where and len(text) > 60, step.name


def test_narration_follows_the_hook_that_fired() -> None:
    function = narrate("scm_fp_copy", "kretprobe:scm_fp_copy")
    fallback = narrate("scm_fp_copy", "kretprobe:__scm_send", "fallback")
    syscall = narrate("scm_fp_copy", "tracepoint:syscalls:sys_enter_sendmsg", "fallback")
    assert function and fallback and syscall
    assert "inlined into __scm_send()" in fallback[1] and "(seen at kretprobe:__scm_send)" in fallback[0]
    assert "fget_raw()" in function[1] and function[1] != syscall[1]
    assert set(narration_texts()) >= set(lessons.step_names())


def spooled_trace(events: list[Event], path: Path) -> dict[str, Any]:
    """The Chrome trace a session or a replay writes of `events`."""
    spool = ChromeTraceSpool()
    spool.started(SESSION)
    for event in events:
        spool.event(event)
    spool.finished(0, 0)
    assert not spool.order.waiting and not spool.order.ready and spool.count == len(events)   # on disk
    spool.save(path)
    return json.loads(path.read_text())


def test_chrome_trace_is_trace_event_format(tmp_path: Path) -> None:
    trace = spooled_trace(STORY, tmp_path / "c.json")
    assert trace["displayTimeUnit"] == "ms"
    instants = [e for e in trace["traceEvents"] if e["ph"] == "i"]
    assert [e["name"] for e in instants][:2] == ["memfd_create", "shmem_file_setup"]      # call order
    assert instants[0]["ts"] == 0.5 and instants[0]["args"]["fd"] == 3
    assert len(instants) == len(STORY)
    names = {e["tid"]: e["args"]["name"] for e in trace["traceEvents"] if e["name"] == "thread_name"}
    assert names == {10: "sender [10]", 11: "receiver [11]"}


def test_an_empty_chrome_trace_is_still_json(tmp_path: Path) -> None:
    empty = ChromeTraceSpool()
    empty.started(SESSION)
    empty.save(tmp_path / "empty.json")
    assert json.loads((tmp_path / "empty.json").read_text())["traceEvents"] == []


def test_object_view_draws_one_file_with_two_owners() -> None:
    console = Console(record=True, width=200, file=io.StringIO())
    for panel in object_panels(shared_files(STORY)):
        console.print(panel)
    text = console.export_text()
    assert text.count(FILE) == 1
    assert "fd 3 (fd table) ──►" in text and "◄── fd 5 (fd table)" in text
    assert "2 owners, 1 object" in text and "refcount 5" in text


def test_life_story_in_call_order() -> None:
    [(file, chapters)] = life_stories(STORY)
    assert file == FILE
    assert [c.text for c in chapters] == [
        "created: memfd_create returned fd 3", "made by shmem_file_setup", "mapped at 0x7f00",
        "sent: in flight in an SCM_RIGHTS message", "received", "mapped at 0x7f80 again, by another process"]
