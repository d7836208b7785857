"""fork-vs-thread on this kernel: the clone events' pointers show what is shared."""
from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from tests.clone_checks import (
    all_clones,
    check_counts_and_entries,
    check_fork,
    check_linuxthreads,
    check_nproc_refusal,
    check_setxid_broadcast,
    check_signal_taken_by_another_thread,
    check_spawn,
    check_thread,
    check_thread_stack,
    clones,
    events,
    report,
)
from tests.live.conftest import read_jsonl, run_syspath


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, list[dict]]:
    path: Path = tmp_path_factory.mktemp("rec") / "clone.jsonl"
    done = run_syspath("run", "fork-vs-thread", "--no-live", "--record", str(path))
    assert done.returncode == 0, done.stderr
    return done.stdout, read_jsonl(path)


def test_one_clone_event_per_new_task(recorded: tuple[str, list[dict]]) -> None:
    _, records = recorded
    assert [c["detail"]["kind"] for c in clones(records)] == ["thread", "process", "process", "process"]
    # then the joined thread and the thread(s) started under RLIMIT_NPROC before the refusal: threads
    # only, and no other fork (dup_fd on the function tiers counts the fork and posix_spawn's copies)
    assert {c["detail"]["kind"] for c in all_clones(records)[4:]} == {"thread"}
    assert records[0]["hooks"][0]["step"] == "clone" and records[-1]["lost"] == 0


def test_thread_shares_everything_and_the_tgid(recorded: tuple[str, list[dict]]) -> None:
    check_thread(clones(recorded[1])[0])


def test_linuxthreads_task_shares_four_structures_but_not_the_thread_group(recorded: tuple[str, list[dict]]) -> None:
    check_linuxthreads(clones(recorded[1])[1])


def test_fork_child_copies_everything_and_has_its_own_tgid(recorded: tuple[str, list[dict]]) -> None:
    check_fork(clones(recorded[1])[2])


def test_posix_spawn_shares_only_the_address_space(recorded: tuple[str, list[dict]]) -> None:
    check_spawn(clones(recorded[1])[3])
    # no exec event is recorded: the sentence rests on the program's own reading of /proc/PID/exe, cited
    assert re.search(r"observed \[program report \d+ \(spawn\)\]: when the parent's call returned, the new task "
                     r"already ran sleep \(CLONE_VFORK: the parent waited for it\); the recording holds no exec event",
                     recorded[0])


def test_consequences_match_the_flags(recorded: tuple[str, list[dict]]) -> None:
    stdout, _ = recorded
    assert "(shared); thread's fd" in stdout and "open in main" in stdout
    assert "parent still in / (not shared)" in stdout and "not open in parent" in stdout
    assert "signal   parent 0x" in stdout and "copied (no CLONE_THREAD)" in stdout
    # CLONE_SIGHAND: a disposition set in the thread is the process's; set in the fork child, it is not
    observed = observations(stdout)
    assert ("thread", "SIGUSR2 -> ignore in the new task: the parent sees it (the recording: sighand shared)") \
        in observed
    assert ("fork", "SIGUSR2 -> ignore in the new task: the parent does not see it (the recording: sighand copied)") \
        in observed
    # signal_struct holds the rlimits: shared by the thread, not by the LinuxThreads task or the fork child
    assert ("thread", "setrlimit(RLIMIT_NOFILE) in the new task: the parent sees it (the recording: signal shared)") \
        in observed
    assert ("linuxthreads", "chdir() in the parent: the new task sees it (the recording: fs shared)") in observed
    assert ("linuxthreads", "prlimit(RLIMIT_NOFILE) by the parent on the new task: the parent does not see it "
            "(the recording: signal copied)") in observed
    assert ("fork", "setrlimit(RLIMIT_NOFILE) in the new task: the parent does not see it "
            "(the recording: signal copied)") in observed
    assert not any("disagree" in text for _, text in observed)


def observations(stdout: str) -> set[tuple[str, str]]:
    """(role, sentence) of each line resting on a program report."""
    found = (re.match(r"\s*observed \[program report \d+ \((\w+)\)\]: (.*)", line) for line in stdout.splitlines())
    return {(match.group(1), match.group(2)) for match in found if match}


def test_sharing_is_a_reference_count_and_each_task_names_its_door(recorded: tuple[str, list[dict]]) -> None:
    check_counts_and_entries(recorded[1])
    thread = clones(recorded[1])[0]
    assert thread["detail"]["entry"] == "clone3"          # glibc 2.34+ pthread_create
    assert "mm_users 2 after the clone" in recorded[0] and not re.search(r"mm_users \d+ -> ", recorded[0])


def test_a_process_directed_signal_is_taken_by_the_thread_that_does_not_block_it(
        recorded: tuple[str, list[dict]]) -> None:
    check_signal_taken_by_another_thread(recorded[1])
    assert "taken by thread" in recorded[0] and "not the main thread" in recorded[0]


def test_the_pid_problem_and_stop_continue_per_thread(recorded: tuple[str, list[dict]]) -> None:
    stdout, records = recorded
    linuxthreads = clones(records)[1]
    tgid = linuxthreads["detail"]["child_tgid"]
    assert f"tgid {tgid} for it" in stdout and "pid problem" in stdout
    assert any(role == "linuxthreads" and text.startswith(f"getpid() is {tgid} in the new task")
               for role, text in observations(stdout))
    [stop] = [text for role, text in observations(stdout) if role == "stop"]
    assert "every thread stopped" in stop and "not every" not in stop       # as the program read the states
    stopped, resumed = stop.split("after SIGCONT", 1)
    assert stopped.count(" T") >= 2 and " T" not in resumed


# ---- what the thread library does around clone, against what the kernel and /proc gave ----

def test_the_thread_stack_is_the_mapping_its_stack_pointer_lies_in(recorded: tuple[str, list[dict]]) -> None:
    check_thread_stack(recorded[1])


def test_setuid_sends_signal_33_to_the_other_thread_and_each_changes_its_own_cred(
        recorded: tuple[str, list[dict]]) -> None:
    check_setxid_broadcast(recorded[1])


def test_nice_set_on_one_thread_stays_that_threads(recorded: tuple[str, list[dict]]) -> None:
    _, records = recorded
    seen = report(records, "nice", "nice_after")
    [set_] = events(records, "nice", call="setpriority")
    assert set_["detail"]["who"] == seen["set_tid"] and set_["detail"]["ret"] == 0
    read_back = {e["detail"]["who"]: e["detail"]["nice"] for e in events(records, "nice", call="getpriority")
                 if e["ts_ns"] > set_["ts_ns"]}
    assert read_back == {int(tid): nice for tid, nice in seen["nice_after"].items()}
    assert read_back[seen["set_tid"]] == set_["detail"]["nice"] != read_back[set_["pid"]]


def test_a_join_is_a_futex_wait_on_the_threads_tid_word(recorded: tuple[str, list[dict]]) -> None:
    _, records = recorded
    joined = all_clones(records)[4]
    [wait] = events(records, "join_futex")
    [made] = events(records, "thread_stack", child_tid=joined["detail"]["child_tid"])
    assert wait["detail"]["owner_tid"] == joined["detail"]["child_tid"] and wait["pid"] == joined["pid"]
    assert wait["detail"]["uaddr"] == made["detail"]["child_tid_addr"]        # clone3's child_tid
    assert wait["detail"]["op"].startswith("FUTEX_WAIT") and wait["detail"]["ret"] == 0
    assert wait["detail"]["waited_ns"] > 50_000_000                          # the thread slept 100 ms
    start = wait["ts_ns"] - wait["detail"]["waited_ns"]
    assert not [e for e in events(records, "signal_generate") if start <= e["ts_ns"] <= wait["ts_ns"]
                and e["tgid"] == wait["tgid"]]


def test_rlimit_nproc_refuses_a_thread_with_eagain(recorded: tuple[str, list[dict]]) -> None:
    check_nproc_refusal(recorded[1])


def test_each_new_task_first_wakes_on_a_cpu_chosen_then(recorded: tuple[str, list[dict]]) -> None:
    _, records = recorded
    woken = {e["detail"]["child_tid"]: e for e in events(records, "first_wakeup")}
    assert {c["detail"]["child_tid"] for c in all_clones(records)} <= set(woken)
    assert all(0 <= e["detail"]["target_cpu"] < os.cpu_count() for e in woken.values())    # type: ignore[operator]
    assert all(e["pid"] in {c["pid"] for c in all_clones(records)} for e in woken.values())


def test_sigstop_to_the_linuxthreads_task_stops_it_alone(recorded: tuple[str, list[dict]]) -> None:
    stdout, records = recorded
    task = clones(records)[1]["detail"]["child_tid"]
    [sent] = events(records, "signal_generate", sig=19, target_tid=task)
    assert sent["detail"]["group"] and next(e["pid"] for e in events(records, "signal_deliver", sig=19)) == task
    seen = report(records, "linuxthreads", "sole_stop")["sole_stop"]
    assert seen["state"] == "T" and seen["others"] and all(state != "T" for state in seen["others"].values())
    assert "it alone stopped, since its thread group is itself" in stdout


def test_the_blocked_mask_is_read_per_thread(recorded: tuple[str, list[dict]]) -> None:
    stdout, records = recorded
    [sent] = [e for e in events(records, "signal_generate", sig=10) if e["detail"]["target_tid"] == e["pid"]]
    assert sent["detail"]["target_blocks"] is True
    taken = [e for e in events(records, "signal_deliver", sig=10) if e["tgid"] == sent["tgid"]]
    assert taken[0]["pid"] != sent["pid"] and taken[0]["detail"]["blocks"] is False
    assert "the blocked mask is each thread's own" in stdout and "History: the article's CLONE_PID" in stdout
