"""fork-vs-thread on this kernel: the clone events' pointers show what is shared."""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.live.conftest import read_jsonl, run_syspath

STRUCTS = ("mm", "fs", "files", "sighand", "signal")
PTHREAD_FLAGS = {"CLONE_VM", "CLONE_FS", "CLONE_FILES", "CLONE_SIGHAND", "CLONE_THREAD", "CLONE_SYSVSEM",
                 "CLONE_SETTLS", "CLONE_PARENT_SETTID", "CLONE_CHILD_CLEARTID"}


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, list[dict]]:
    path: Path = tmp_path_factory.mktemp("rec") / "clone.jsonl"
    done = run_syspath("run", "fork-vs-thread", "--no-live", "--record", str(path))
    assert done.returncode == 0, done.stderr
    return done.stdout, read_jsonl(path)


def clones(records: list[dict]) -> list[dict]:
    return [r for r in records if r["type"] == "event" and r["step"] == "clone"]


def test_one_clone_event_per_new_task(recorded: tuple[str, list[dict]]) -> None:
    _, records = recorded
    assert [c["detail"]["kind"] for c in clones(records)] == ["thread", "process", "process"]
    assert records[0]["hooks"][0]["step"] == "clone" and records[-1]["lost"] == 0


def test_thread_shares_everything_and_the_tgid(recorded: tuple[str, list[dict]]) -> None:
    _, records = recorded
    thread = clones(records)[0]
    detail = thread["detail"]
    assert set(detail["flags"]) == PTHREAD_FLAGS          # what glibc's pthread_create passes
    assert detail["child_tgid"] == thread["tgid"] and detail["child_tid"] != thread["pid"]
    assert all(detail["shared"][name] for name in STRUCTS)
    assert all(detail["parent"][n] == detail["child"][n] and detail["parent"][n].startswith("0xffff")
               for n in STRUCTS)


def test_fork_child_copies_everything_and_has_its_own_tgid(recorded: tuple[str, list[dict]]) -> None:
    _, records = recorded
    fork = clones(records)[1]
    detail = fork["detail"]
    assert not {"CLONE_VM", "CLONE_FS", "CLONE_FILES", "CLONE_SIGHAND", "CLONE_THREAD"} & set(detail["flags"])
    assert detail["child_tgid"] == detail["child_tid"] != fork["tgid"]
    assert not any(detail["shared"].values())
    assert all(detail["child"][n] and detail["child"][n] != detail["parent"][n] for n in STRUCTS)


def test_posix_spawn_shares_only_the_address_space(recorded: tuple[str, list[dict]]) -> None:
    _, records = recorded
    detail = clones(records)[2]["detail"]
    assert {"CLONE_VM", "CLONE_VFORK"} <= set(detail["flags"])
    assert detail["shared"] == {"mm": True, "fs": False, "files": False, "sighand": False, "signal": False}


def test_consequences_match_the_flags(recorded: tuple[str, list[dict]]) -> None:
    stdout, _ = recorded
    assert "(shared); thread's fd" in stdout and "open in main" in stdout
    assert "parent still in / (not shared)" in stdout and "not open in parent" in stdout
    assert "signal   parent 0x" in stdout and "copied (no CLONE_THREAD)" in stdout
