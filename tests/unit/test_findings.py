"""Findings are pure functions of events: checked here on hand-made events."""
from __future__ import annotations

from tracer.events import Event
from tracer.findings import findings_of, new_tasks, shared_files

PARENT = {"mm": "0xa1", "fs": "0xa2", "files": "0xa3", "sighand": "0xa4", "signal": "0xa5"}


def clone(child_tid: int, child: dict[str, str], flags: list[str]) -> Event:
    shared = {name: PARENT[name] == child[name] for name in PARENT}
    return Event(10, 100, 100, "main", "clone", "kretprobe:copy_process",
                 detail={"kind": "thread" if "CLONE_THREAD" in flags else "process", "flags": flags,
                         "child_tid": child_tid, "child_tgid": 100 if "CLONE_THREAD" in flags else child_tid,
                         "shared": shared, "parent": PARENT, "child": child})


def test_each_structure_names_the_flag_and_the_copy_seen() -> None:
    forked = {name: f"0xb{i}" for i, name in enumerate(PARENT)}
    events = [clone(101, dict(PARENT), ["CLONE_VM", "CLONE_THREAD"]), clone(102, forked, []),
              Event(11, 100, 100, "main", "dup_fd", "kretprobe:dup_fd", detail={"from": "0xa3", "copy": "0xb2"})]
    reports = [{"role": "fork", "child": 102, "cwd_shared": False, "signal_shared": False},
               {"role": "thread", "child": 101, "fd_shared": True}]
    thread, fork = new_tasks(events, reports)
    assert thread.same_thread_group and not fork.same_thread_group
    assert (thread.rows[0].name, thread.rows[0].shared, thread.rows[0].flag) == ("mm", True, "CLONE_VM")
    files = next(r for r in fork.rows if r.name == "files")
    assert not files.shared and files.copied_by == "dup_fd"
    assert next(r for r in fork.rows if r.name == "mm").copied_by is None      # dup_mm not seen
    assert thread.consequences == ["open() in the new task: the parent sees it (files shared)"]
    assert fork.consequences == ["chdir() in the new task: the parent does not see it (fs copied)",
                                 "SIGUSR2 -> ignore in the new task: the parent does not see it (sighand copied)"]


def test_refcounts_follow_call_order_not_arrival_order() -> None:
    def event(ts: int, step: str, comm: str, tgid: int, refcount: int, fd: int | None) -> Event:
        return Event(ts, tgid, tgid, comm, step, "", fd, "0xf1", 7, refcount)

    arrival = [event(3, "shmem_file_setup", "sender", 1, 1, None), event(1, "memfd_create", "sender", 1, 1, 3),
               event(9, "fd_install", "receiver", 2, 3, 5), event(8, "receive_fd", "receiver", 2, 3, None)]
    [story] = shared_files(arrival)
    assert [step for step, _, _ in story.refcounts] == ["memfd_create", "shmem_file_setup", "receive_fd",
                                                        "fd_install"]
    assert story.receivers[0].fd == 5          # from fd_install when receive_fd could not tell


def test_lost_events_are_reported_whatever_the_findings() -> None:
    from tracer.views.summary import conclusion_lines

    forked = {name: f"0xb{i}" for i, name in enumerate(PARENT)}
    with_clone = findings_of([clone(102, forked, [])])
    with_clone.finished(lost=5, exit_code=0)
    assert conclusion_lines(with_clone)[0].startswith("main[100] -> new process tid 102")
    assert conclusion_lines(with_clone)[-1].startswith("5 events were lost")
    assert conclusion_lines(findings_of([])) == ["No struct file was seen shared between two processes (0 events)."]


def test_lost_events_name_the_steps_that_lost_them_most_first() -> None:
    from tracer.views.summary import conclusion_lines

    lossy = findings_of([])
    lossy.finished(lost=7, exit_code=0, lost_steps={"shmem_file_setup": 2, "memfd_create": 5})
    assert conclusion_lines(lossy)[-1].startswith(
        "7 events were lost (the ring buffer refused them: memfd_create 5, shmem_file_setup 2)")
