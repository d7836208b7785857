"""fork-vs-thread on this kernel: the clone events' pointers show what is shared."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.clone_checks import (
    check_counts_and_entries,
    check_fork,
    check_linuxthreads,
    check_signal_taken_by_another_thread,
    check_spawn,
    check_thread,
    clones,
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
    assert records[0]["hooks"][0]["step"] == "clone" and records[-1]["lost"] == 0


def test_thread_shares_everything_and_the_tgid(recorded: tuple[str, list[dict]]) -> None:
    check_thread(clones(recorded[1])[0])


def test_linuxthreads_task_shares_four_structures_but_not_the_thread_group(recorded: tuple[str, list[dict]]) -> None:
    check_linuxthreads(clones(recorded[1])[1])


def test_fork_child_copies_everything_and_has_its_own_tgid(recorded: tuple[str, list[dict]]) -> None:
    check_fork(clones(recorded[1])[2])


def test_posix_spawn_shares_only_the_address_space(recorded: tuple[str, list[dict]]) -> None:
    check_spawn(clones(recorded[1])[3])
    assert "observed: the parent's clone returned only once the child had exec'd (CLONE_VFORK)" in recorded[0]


def test_consequences_match_the_flags(recorded: tuple[str, list[dict]]) -> None:
    stdout, _ = recorded
    assert "(shared); thread's fd" in stdout and "open in main" in stdout
    assert "parent still in / (not shared)" in stdout and "not open in parent" in stdout
    assert "signal   parent 0x" in stdout and "copied (no CLONE_THREAD)" in stdout
    # CLONE_SIGHAND: a disposition set in the thread is the process's; set in the fork child, it is not
    assert "observed: SIGUSR2 -> ignore in the new task: the parent sees it (sighand shared)" in stdout
    assert "observed: SIGUSR2 -> ignore in the new task: the parent does not see it (sighand copied)" in stdout
    # signal_struct holds the rlimits: shared by the thread, not by the LinuxThreads task or the fork child
    assert "observed: setrlimit(RLIMIT_NOFILE) in the new task: the parent sees it (signal shared)" in stdout
    assert "observed: chdir() in the parent: the new task sees it (fs shared)" in stdout
    assert "observed: setrlimit(RLIMIT_NOFILE) in the new task: the parent does not see it (signal copied)" in stdout


def test_sharing_is_a_reference_count_and_each_task_names_its_door(recorded: tuple[str, list[dict]]) -> None:
    check_counts_and_entries(recorded[1])
    thread = clones(recorded[1])[0]
    assert thread["detail"]["entry"] == "clone3"          # glibc 2.34+ pthread_create
    assert "mm_users 1 -> 2" in recorded[0]


def test_a_process_directed_signal_is_taken_by_the_thread_that_does_not_block_it(
        recorded: tuple[str, list[dict]]) -> None:
    check_signal_taken_by_another_thread(recorded[1])
    assert "taken by thread" in recorded[0] and "not the main thread" in recorded[0]


def test_the_pid_problem_and_stop_continue_per_thread(recorded: tuple[str, list[dict]]) -> None:
    stdout, records = recorded
    linuxthreads = clones(records)[1]
    assert f"getpid() returns {linuxthreads['detail']['child_tgid']} in it" in stdout and "pid problem" in stdout
    stop = next(line for line in stdout.splitlines() if line.startswith("SIGSTOP to process"))
    assert stop.count(" T") >= 2 and "SIGCONT" in stop       # both threads stopped, then resumed
    resumed = stop.split("SIGCONT:", 1)[1]
    assert " T" not in resumed


def test_a_replay_tells_the_observations_of_the_live_run(recorded: tuple[str, list[dict]], tmp_path: Path) -> None:
    """The scenario's observations (cwd, fds, rlimits, getpid, signals) are in the recording:
    its replay prints them as the live run did."""
    stdout, records = recorded
    path = tmp_path / "clone.jsonl"
    path.write_text("".join(json.dumps(record) + "\n" for record in records))
    replayed = run_syspath("replay", str(path), "--no-live")
    assert replayed.returncode == 0, replayed.stderr
    live_lines = [line for line in stdout.splitlines() if line.startswith("program: ")]
    assert any("getpid()" in line for line in live_lines)
    assert live_lines == [line for line in replayed.stdout.splitlines() if line.startswith("program: ")]
