"""The path: symbolization, joining path records to syscall-tier events, the tree, the article."""
from __future__ import annotations

import bisect
from pathlib import Path

from tracer import lessons
from tracer.catalog import HookChoice
from tracer.events import Event
from tracer.paths import (
    ABSENT,
    INLINED,
    NO_SYMBOL,
    RENAMED_HERE,
    SEEN,
    UNKNOWN,
    Paths,
    StepPath,
    match_article,
    step_views,
    tree_rows,
)
from tracer.stacks import (
    AT_PATH_POINT,
    PATH_STEP,
    SAMPLED_OUT,
    PathJoiner,
    StackTable,
    annotate,
    choose_points,
    path_defines,
    slot_defines,
    trimmed,
    with_hooked_function,
)
from tracer.views.path import path_lines

# a slice of a real /proc/kallsyms (6.18), and the raw stack of mmap:vm_unmapped_area measured there
KALLSYMS = [(0x1000, "entry_SYSCALL_64_after_hwframe"), (0x2000, "do_syscall_64"), (0x3000, "ksys_mmap_pgoff"),
            (0x4000, "vm_mmap_pgoff"), (0x5000, "do_mmap"), (0x6000, "__get_unmapped_area"),
            (0x7000, "arch_get_unmapped_area_topdown"), (0x8000, "vm_unmapped_area"), (0x9000, "bpf_trace_run2"),
            (0xa000, "__sys_sendmsg"), (0xb000, "unix_stream_sendmsg"), (0xc000, "sock_def_readable")]
MMAP_RAW = [0xffffffffc0001234, 0x9010, 0x8010, 0x7010, 0x6010, 0x5010, 0x4010, 0x3010, 0x2010, 0x1010]
SENDMSG_RAW = [0xffffffffc0001234, 0x9010, 0xc010, 0xb010, 0xa010, 0x2010, 0x1010]
MMAP_PATH = ["vm_unmapped_area", "arch_get_unmapped_area_topdown", "__get_unmapped_area", "do_mmap",
             "vm_mmap_pgoff", "ksys_mmap_pgoff", "do_syscall_64", "entry_SYSCALL_64_after_hwframe"]


def kallsyms_symbol(address: int) -> str | None:
    """The symbol whose start is the nearest below the address, as /proc/kallsyms gives it."""
    starts = [start for start, _ in KALLSYMS]
    index = bisect.bisect_right(starts, address) - 1
    return KALLSYMS[index][1] if index >= 0 and address < 0xffffffff00000000 else None


def table(stacks: dict[int, list[int]]) -> tuple[StackTable, list[int]]:
    reads: list[int] = []

    def read(stack_id: int) -> list[int]:
        reads.append(stack_id)
        return stacks.get(stack_id, [])

    return StackTable(read, kallsyms_symbol), reads


def event(step: str, ts: int, hook: str, pid: int = 7) -> Event:
    return Event(ts_ns=ts, pid=pid, tgid=pid, comm="c", step=step, hook=hook)


def test_a_stack_is_symbolized_once_per_id_without_the_tracers_frames() -> None:
    stacks, reads = table({3: MMAP_RAW})
    assert stacks.frames(3) == tuple(MMAP_PATH)
    assert stacks.frames(3) == tuple(MMAP_PATH)
    assert reads == [3]
    assert stacks.frames(-17) is None and stacks.failures == {-17: 1}     # -EEXIST: bucket taken
    assert stacks.frames(SAMPLED_OUT) is None and stacks.frames(AT_PATH_POINT) is None
    assert stacks.failures == {-17: 1}                                      # not taken is not failed


def test_trimming_keeps_kernel_frames_after_the_first_real_one() -> None:
    assert trimmed(["bpf_prog_ab_x", "bpf_trace_run1", "__traceiter_sk_data_ready", "sock_def_readable",
                    "perf_event_x"]) == ("sock_def_readable", "perf_event_x")
    assert trimmed(["[unknown]"]) == ()
    # fexit on both: the caller shows twice around its trampoline (measured on Debian 6.12)
    assert trimmed(["__scm_send", "unix_stream_sendmsg", "bpf_trampoline_6442557284", "unix_stream_sendmsg",
                    "____sys_sendmsg"]) == ("__scm_send", "unix_stream_sendmsg", "____sys_sendmsg")
    # the same, with the trampoline unnamed (made after bcc loaded kallsyms; Debian 6.12, fentry)
    assert trimmed(["__scm_send", "unix_stream_sendmsg", "[unknown]", "unix_stream_sendmsg", "____sys_sendmsg"]) == (
        "__scm_send", "unix_stream_sendmsg", "____sys_sendmsg")
    assert trimmed(["shmem_file_setup", "__do_sys_memfd_create", "[unknown]", "__x64_sys_memfd_create",
                    "do_syscall_64"]) == ("shmem_file_setup", "__do_sys_memfd_create", "__x64_sys_memfd_create",
                                          "do_syscall_64")


def test_a_returned_function_is_put_back_at_the_top_of_its_callers_stack() -> None:
    assert with_hooked_function(("vm_mmap_pgoff", "ksys_mmap_pgoff"), "kretprobe:do_mmap") == (
        "do_mmap", "vm_mmap_pgoff", "ksys_mmap_pgoff")
    assert with_hooked_function(("do_mmap.isra.0", "x"), "fexit:do_mmap") == ("do_mmap.isra.0", "x")
    assert with_hooked_function(("x",), "tracepoint:syscalls:sys_exit_mmap") == ("x",)


MMAP_POINT, SK_POINT = lessons.path_point("mmap/vm_unmapped_area"), lessons.path_point("sock/sk_data_ready")
assert MMAP_POINT is not None and SK_POINT is not None


def test_a_syscall_tier_event_takes_the_path_fired_inside_its_syscall() -> None:
    stacks, _ = table({1: MMAP_RAW, 2: [0x2010, 0x1010]})
    joiner = PathJoiner({"do_mmap": MMAP_POINT}, stacks)
    assert joiner.take(event(PATH_STEP, 100, MMAP_POINT.hook), 1) == []
    [mapped] = joiner.take(event("do_mmap", 150, "tracepoint:syscalls:sys_exit_mmap"), 2)
    assert mapped.stack == MMAP_PATH and mapped.stack_from == "tracepoint:mmap:vm_unmapped_area"
    # the record was this call's: the next mmap without one falls back to its own hook's stack
    [again] = joiner.take(event("do_mmap", 300, "tracepoint:syscalls:sys_exit_mmap"), 2)
    assert again.stack == ["do_syscall_64", "entry_SYSCALL_64_after_hwframe"]
    assert again.stack_from == "tracepoint:syscalls:sys_exit_mmap"


def test_a_messages_fds_share_its_path_and_the_next_message_does_not() -> None:
    """receive_fd makes an event per fd of a message: all take the record of their recvmsg; the
    last uses it up, so a later recvmsg whose record was sampled out (never sent) shows none."""
    point = lessons.path_point("skb/skb_copy_datagram_iovec")
    assert point is not None
    stacks, _ = table({3: [0x2010, 0x1010]})
    joiner = PathJoiner({"receive_fd": point}, stacks)
    hook = "tracepoint:syscalls:sys_exit_recvmsg"

    def received(ts: int, index: int, count: int) -> Event:
        fd = event("receive_fd", ts, hook)
        fd.detail = {"index": index, "count": count}
        [ready] = joiner.take(fd, AT_PATH_POINT)
        return ready

    joiner.take(event(PATH_STEP, 100, point.hook), 3)
    first, second = received(150, 0, 2), received(151, 1, 2)
    assert first.stack == second.stack == ["do_syscall_64", "entry_SYSCALL_64_after_hwframe"]
    assert {first.stack_from, second.stack_from} == {point.hook}
    later = received(300, 0, 1)
    assert later.stack is None and later.stack_from is None


def test_another_threads_path_is_not_taken() -> None:
    stacks, _ = table({1: MMAP_RAW})
    joiner = PathJoiner({"do_mmap": MMAP_POINT}, stacks)
    joiner.take(event(PATH_STEP, 100, MMAP_POINT.hook, pid=8), 1)
    [mapped] = joiner.take(event("do_mmap", 150, "tracepoint:syscalls:sys_exit_mmap", pid=7), -14)
    assert mapped.stack is None and mapped.stack_from is None


def test_sendmsg_events_wait_for_the_path_that_fires_after_them() -> None:
    stacks, _ = table({5: SENDMSG_RAW})
    joiner = PathJoiner({"unix_stream_sendmsg": SK_POINT, "scm_fp_copy": SK_POINT}, stacks)
    hook = "tracepoint:syscalls:sys_enter_sendmsg"
    assert joiner.take(event("unix_stream_sendmsg", 10, hook), -1) == []
    assert joiner.take(event("scm_fp_copy", 11, hook), -1) == []
    released = joiner.take(event(PATH_STEP, 12, SK_POINT.hook), 5)
    assert [e.step for e in released] == ["unix_stream_sendmsg", "scm_fp_copy"]
    assert all(e.stack == ["sock_def_readable", "unix_stream_sendmsg", "__sys_sendmsg", "do_syscall_64",
                           "entry_SYSCALL_64_after_hwframe"] for e in released)
    assert {e.stack_from for e in released} == {"tracepoint:sock:sk_data_ready"}


def test_a_waiting_event_goes_on_without_its_path_after_a_batch_or_at_the_end() -> None:
    stacks, _ = table({})
    joiner = PathJoiner({"unix_stream_sendmsg": SK_POINT}, stacks)
    hook = "tracepoint:syscalls:sys_enter_sendmsg"
    joiner.take(event("unix_stream_sendmsg", 10, hook), -1)
    assert joiner.batch_done() == []                       # the batch it arrived in
    assert [e.step for e in joiner.batch_done()] == ["unix_stream_sendmsg"]
    joiner.take(event("unix_stream_sendmsg", 20, hook), -1)
    other = joiner.take(event("do_mmap", 30, "kretprobe:do_mmap"), -1)
    assert [e.step for e in other] == ["unix_stream_sendmsg", "do_mmap"]   # its syscall is over
    joiner.take(event("unix_stream_sendmsg", 40, hook), -1)
    assert [e.step for e in joiner.flush()] == ["unix_stream_sendmsg"]


def test_points_are_chosen_per_syscall_tier_step_and_named_in_its_reason() -> None:
    choices = [HookChoice("receive_fd", "tracepoint:syscalls:sys_exit_recvmsg", "syscall", "fallback", "why"),
               HookChoice("do_mmap", "kretprobe:do_mmap", "kprobe", "attached", "why")]
    present = {("sock", "sock_recv_length")}
    points = choose_points(choices, lambda category, name: (category, name) in present)
    assert {step: point.tracepoint for step, point in points.items()} == {"receive_fd": "sock/sock_recv_length"}
    point_id = lessons.path_points().index(points["receive_fd"])
    assert f"-DPATH_SOCK_RECV_LENGTH={point_id}" in path_defines(points)
    # receive_fd's event walks no stack of its own: its path record has the one it shows
    assert f"-DSTACK_FROM_PATH={1 << lessons.step_names().index('receive_fd')}ULL" in path_defines(points)
    [receive, _] = annotate(choices, points, {"sock_recvmsg": "sock_recvmsg"}.get)
    assert "tracepoint:sock:sock_recv_length, which fires inside sock_recvmsg: sock_recvmsg is seen" in receive.reason
    [receive, _] = annotate(choices, points, {}.get)
    assert "not in kallsyms here" in receive.reason


def test_stacks_merge_into_one_tree_outermost_first() -> None:
    path = StepPath("do_mmap")
    shmem = ["vm_unmapped_area", "shmem_get_unmapped_area", *MMAP_PATH[2:]]
    for stack in (MMAP_PATH, shmem, MMAP_PATH, None):
        e = event("do_mmap", 1, "tracepoint:syscalls:sys_exit_mmap")
        e.stack, e.stack_from = stack, "tracepoint:mmap:vm_unmapped_area" if stack else None
        path.add(e)
    rows = tree_rows(path.root)
    assert rows[0].frames == tuple(reversed(MMAP_PATH[2:])) and rows[0].count == 3 and rows[0].depth == 0
    assert [(row.depth, row.frames[0], row.count) for row in rows[1:]] == [
        (1, "arch_get_unmapped_area_topdown", 2), (1, "shmem_get_unmapped_area", 1)]
    assert path.without_stack == 1 and path.events == 4
    assert {"do_mmap", "vm_unmapped_area"} <= path.seen()


def test_the_tree_stays_bounded() -> None:
    path = StepPath("clone")
    for number in range(600):
        e = event("clone", number, "raw_tracepoint:sched_process_fork")
        e.stack = [f"f{number}", "do_syscall_64"]
        path.add(e)
    assert path.nodes <= 256 and path.frames_dropped > 0


def test_the_article_chain_is_matched_frame_by_frame() -> None:
    seen = {"__sys_recvmsg", "receive_fd", "unix_stream_read_generic"}
    kallsyms = {"__sys_recvmsg": "__sys_recvmsg", "receive_fd": "receive_fd", "__receive_fd": None,
                "receive_fd_user": None, "scm_detach_fds": "scm_detach_fds", "unix_stream_read_generic": "x"}
    marks = match_article(["__sys_recvmsg", "unix_stream_read_generic", "scm_detach_fds", "receive_fd_user",
                           "__receive_fd", "scm_recv"], seen, kallsyms)
    assert [(m.name, m.status) for m in marks] == [
        ("__sys_recvmsg", SEEN), ("unix_stream_read_generic", SEEN), ("scm_detach_fds", ABSENT),
        ("receive_fd_user", NO_SYMBOL), ("__receive_fd", RENAMED_HERE), ("scm_recv", UNKNOWN)]
    assert marks[4].note == "now receive_fd, seen"
    # its caller on the path: inlined there
    marks = match_article(["unix_stream_read_generic", "receive_fd_user"], seen, kallsyms)
    assert [m.status for m in marks] == [SEEN, INLINED]
    # on 6.1, __receive_fd has its own name: not a rename there
    [frame] = match_article(["__receive_fd"], set(), {"__receive_fd": "__receive_fd", "receive_fd": None})
    assert frame.status == ABSENT


def test_a_version_1_recording_replays_with_no_path_drawn() -> None:
    paths = Paths().add_all([event("do_mmap", 1, "tracepoint:syscalls:sys_exit_mmap")])
    [view] = step_views(paths, {"version": 1})
    assert view.rows == [] and view.path.without_stack == 1
    assert path_lines(paths, {})[0] == "path of do_mmap: 1 event, no kernel stack recorded"


def test_path_lines_show_the_tree_and_the_marked_article() -> None:
    e = event("do_mmap", 1, "tracepoint:syscalls:sys_exit_mmap")
    e.stack, e.stack_from = MMAP_PATH, "tracepoint:mmap:vm_unmapped_area"
    lines = path_lines(Paths().add_all([e]), {"kallsyms": {"mmap_region": "mmap_region"}})
    assert lines[0] == "path of do_mmap: 1 event, stack captured at tracepoint:mmap:vm_unmapped_area"
    assert lines[1].strip().startswith("entry_SYSCALL_64_after_hwframe → do_syscall_64 → ksys_mmap_pgoff")
    assert lines[2] == "  article: seen: ksys_mmap_pgoff → vm_mmap_pgoff → do_mmap; not on this path: mmap_region"


def test_every_step_and_path_point_has_its_own_stack_count() -> None:
    """probes/common.h stack_here counts steps in the first STACK_STEP_SLOTS of a process's
    slots and path points after them (tracer/stacks.py slot_defines): more of either would
    share a count, and the bound the verifier sees is a power of two."""
    flags = dict(flag.removeprefix("-D").split("=") for flag in slot_defines())
    step_slots, slots = int(flags["STACK_STEP_SLOTS"]), int(flags["STACK_SLOTS"])
    assert len(lessons.step_names()) <= step_slots and step_slots + len(lessons.path_points()) <= slots
    assert slots & (slots - 1) == 0 and step_slots & (step_slots - 1) == 0
    common = (Path(__file__).parents[2] / "probes" / "common.h").read_text()
    assert "slot = STACK_STEP_SLOTS + step - PATH_STEP_BASE" in common
