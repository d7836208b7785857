"""Findings are pure functions of events: checked here on hand-made events."""
from __future__ import annotations

from tracer.events import Event
from tracer.findings import findings_of
from tracer.scenarios.fork_vs_thread.story import new_tasks
from tracer.scenarios.fork_vs_thread.views import observed_lines
from tracer.scenarios.memfd_share.story import shared_files

PARENT = {"mm": "0xa1", "fs": "0xa2", "files": "0xa3", "sighand": "0xa4", "signal": "0xa5"}


def clone(child_tid: int, child: dict[str, str], flags: list[str]) -> Event:
    shared = {name: PARENT[name] == child[name] for name in PARENT}
    return Event(10, 100, 100, "main", "clone", "kretprobe:copy_process",
                 detail={"kind": "thread" if "CLONE_THREAD" in flags else "process", "flags": flags,
                         "child_tid": child_tid, "child_tgid": 100 if "CLONE_THREAD" in flags else child_tid,
                         "shared": shared, "parent": PARENT, "child": child})


def check(structure: str, action: str, seen: bool) -> dict[str, object]:
    return {"structure": structure, "action": action, "changed": "new task", "looked_in": "parent", "seen": seen}


def test_each_structure_names_the_flag_and_the_copy_seen() -> None:
    forked = {name: f"0xb{i}" for i, name in enumerate(PARENT)}
    events = [clone(101, dict(PARENT), ["CLONE_VM", "CLONE_THREAD"]), clone(102, forked, []),
              Event(11, 100, 100, "main", "dup_fd", "kretprobe:dup_fd", detail={"from": "0xa3", "copy": "0xb2"})]
    reports = [{"role": "fork", "child": 102, "checks": [
                   check("fs", "chdir() in the new task", False),
                   check("sighand", "SIGUSR2 -> ignore in the new task", False)]},
               {"role": "thread", "child": 101, "checks": [check("files", "open() in the new task", True)]}]
    thread, fork = new_tasks(events, reports)
    assert thread.same_thread_group and not fork.same_thread_group
    assert (thread.rows[0].name, thread.rows[0].shared, thread.rows[0].flag) == ("mm", True, "CLONE_VM")
    files = next(r for r in fork.rows if r.name == "files")
    assert not files.shared and files.copied_by == "dup_fd"
    assert next(r for r in fork.rows if r.name == "mm").copied_by is None      # dup_mm not seen
    assert observed_lines(thread) == ["observed [program report 2 (thread)]: open() in the new task: the parent "
                                      "sees it (the recording: files shared)"]
    assert observed_lines(fork) == [
        "observed [program report 1 (fork)]: chdir() in the new task: the parent does not see it "
        "(the recording: fs copied)",
        "observed [program report 1 (fork)]: SIGUSR2 -> ignore in the new task: the parent does not see it "
        "(the recording: sighand copied)"]


def test_refcounts_follow_call_order_not_arrival_order() -> None:
    def event(ts: int, step: str, comm: str, tgid: int, refcount: int, fd: int | None) -> Event:
        return Event(ts, tgid, tgid, comm, step, "", fd, "0xf1", 7, refcount)

    arrival = [event(3, "shmem_file_setup", "sender", 1, 1, None), event(1, "memfd_create", "sender", 1, 1, 3),
               event(9, "fd_install", "receiver", 2, 3, 5), event(8, "receive_fd", "receiver", 2, 3, None)]
    [story] = shared_files(arrival)
    assert [seen.step for seen in story.refcounts] == ["memfd_create", "receive_fd"]   # where the count changed
    assert story.receivers[0].fd == 5          # from fd_install when receive_fd could not tell


def test_lost_events_are_reported_whatever_the_findings() -> None:
    from tracer.views.summary import conclusion_lines

    forked = {name: f"0xb{i}" for i, name in enumerate(PARENT)}
    with_clone = findings_of([clone(102, forked, [])])
    with_clone.finished(lost=5, exit_code=0)
    assert conclusion_lines(with_clone)[0].startswith("main[100] -> new process tid 102")
    assert conclusion_lines(with_clone)[-1].startswith("5 events were lost")
    memfd_only = {"hooks": [{"step": "memfd_create", "status": "attached"}, {"step": "clone", "status": "unavailable"}]}
    assert conclusion_lines(findings_of([], memfd_only)) == [
        "Nothing the lessons tell was seen in 0 events: no struct file shared between two processes."]
    assert conclusion_lines(findings_of([], {"hooks": [{"step": "clone", "status": "unavailable"}]})) == [
        "No lesson with a story was traced in this session (0 events)."]


def test_lost_events_name_the_steps_that_lost_them_most_first() -> None:
    from tracer.views.summary import conclusion_lines

    lossy = findings_of([])
    lossy.finished(lost=7, exit_code=0, lost_steps={"shmem_file_setup": 2, "memfd_create": 5})
    assert conclusion_lines(lossy)[-1].startswith(
        "7 events were lost (the ring buffer refused them: memfd_create 5, shmem_file_setup 2)")
