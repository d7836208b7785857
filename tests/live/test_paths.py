"""The path on this kernel (syscall tier): every step's event carries the kernel stack of a
tracepoint that fired inside it, and the recording, replay and exports keep it."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.live.conftest import REPO, read_jsonl, run_syspath
from tests.live.test_reliability import workload  # noqa: F401 (fixture)
from tracer import lessons

STACK_FIRST, STACK_EVERY = 256, 1024     # probes/common.h: the stack sampling of a loop


@pytest.fixture(scope="module")
def memfd(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict]]:
    path = tmp_path_factory.mktemp("rec") / "memfd.jsonl"
    done = run_syspath("run", "memfd-share", "--no-live", "--record", str(path))
    assert done.returncode == 0, done.stderr
    return path, read_jsonl(path)


@pytest.fixture(scope="module")
def clone(tmp_path_factory: pytest.TempPathFactory) -> list[dict]:
    path = tmp_path_factory.mktemp("rec") / "clone.jsonl"
    done = run_syspath("run", "fork-vs-thread", "--no-live", "--record", str(path))
    assert done.returncode == 0, done.stderr
    return read_jsonl(path)


def events(records: list[dict], step: str, comm: str | None = None) -> list[dict]:
    return [r for r in records if r["type"] == "event" and r["step"] == step and comm in (None, r["comm"])]


def test_the_recording_is_version_2_with_kallsyms_facts(memfd: tuple[Path, list[dict]]) -> None:
    session = memfd[1][0]
    assert session["version"] == 2
    assert session["kallsyms"]["scm_fp_copy"] is None            # inlined on this kernel
    assert session["kallsyms"]["receive_fd"] == "receive_fd"
    assert all("stack" in r and "stack_from" in r for r in memfd[1] if r["type"] == "event")


def test_the_senders_mmap_path_runs_through_do_mmap(memfd: tuple[Path, list[dict]]) -> None:
    [mapped] = events(memfd[1], "do_mmap", "sender")
    assert mapped["stack_from"] == "tracepoint:mmap:vm_unmapped_area"
    stack = mapped["stack"]
    assert stack[0] == "vm_unmapped_area"
    assert stack.index("do_mmap") < stack.index("vm_mmap_pgoff") < stack.index("ksys_mmap_pgoff")


def test_a_mapping_without_its_path_point_shows_no_stack_not_the_syscall_exit(memfd: tuple[Path, list[dict]]) -> None:
    """The loader maps library segments at fixed addresses (MAP_FIXED): do_mmap chooses no
    address, so vm_unmapped_area does not fire inside it. Such a do_mmap has no stack: its
    event walks none of its own, whose frames would only be the syscall's exit."""
    mapped = events(memfd[1], "do_mmap")
    assert {r["stack_from"] for r in mapped} == {"tracepoint:mmap:vm_unmapped_area", None}
    fixed = [r for r in mapped if "MAP_FIXED" in r["detail"]["flags"]]
    assert fixed and all(r["stack"] is None for r in fixed)


def test_unix_stream_sendmsg_is_seen_on_the_senders_path_not_inferred(memfd: tuple[Path, list[dict]]) -> None:
    records = memfd[1]
    for step in ("unix_stream_sendmsg", "scm_fp_copy"):
        [sent] = events(records, step, "sender")
        assert sent["stack_from"] == "tracepoint:sock:sk_data_ready"
        assert "unix_stream_sendmsg" in sent["stack"] and "____sys_sendmsg" in sent["stack"]
    hook = next(h for h in records[0]["hooks"] if h["step"] == "unix_stream_sendmsg")
    assert "unix_stream_sendmsg is seen on it, not inferred" in hook["reason"]


def test_the_receivers_path_runs_through_unix_stream_read_generic(memfd: tuple[Path, list[dict]]) -> None:
    [received] = events(memfd[1], "receive_fd", "receiver")
    assert received["stack_from"] in ("tracepoint:skb:skb_copy_datagram_iovec", "tracepoint:sock:sock_recv_length")
    assert "sock_recvmsg" in received["stack"] and "____sys_recvmsg" in received["stack"]


def test_every_clone_event_carries_copy_process_and_kernel_clone(clone: list[dict]) -> None:
    clones = events(clone, "clone")
    assert clones
    for event in clones:
        assert event["stack_from"] == "tracepoint:task:task_newtask"
        assert event["stack"][0] == "copy_process" and "kernel_clone" in event["stack"]


def test_replay_and_exports_show_the_path(memfd: tuple[Path, list[dict]], tmp_path: Path) -> None:
    path = memfd[0]
    trace = tmp_path / "trace.json"
    done = subprocess.run([sys.executable, "-m", "tracer", "replay", str(path), "--speed", "1000",
                           "--chrome-trace", str(trace)], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "path of do_mmap" in done.stdout and "ksys_mmap_pgoff" in done.stdout
    instants = [e for e in json.loads(trace.read_text())["traceEvents"] if e.get("name") == "unix_stream_sendmsg"]
    assert "unix_stream_sendmsg" in instants[0]["args"]["stack"]


def test_without_stacks_the_events_say_none(tmp_path: Path) -> None:
    path = tmp_path / "nostacks.jsonl"
    done = subprocess.run([sys.executable, "-m", "tracer", "run", "memfd-share", "--no-live", "--record", str(path)],
                          cwd=REPO, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "SYSPATH_NO_STACKS": "1"})
    assert done.returncode == 0, done.stderr
    recorded = [r for r in read_jsonl(path) if r["type"] == "event"]
    assert recorded and all(r["stack"] is None and r["stack_from"] is None for r in recorded)


def stacks_expected(events: int) -> int:
    """Of a process's `events` of one step, those probes/common.h stack_here gives a stack:
    the first STACK_FIRST, then one in STACK_EVERY."""
    return sum(1 for seen in range(events) if seen < STACK_FIRST or seen % STACK_EVERY == 0)


def test_a_loop_gets_its_first_stacks_then_one_in_1024_per_process_and_step(
        workload: Path, tmp_path: Path) -> None:  # noqa: F811
    """Two processes, 1,500 memfd_create calls each: every process and step has its own
    count, so each of the four (process, step) pairs has 257 stacked events."""
    path = tmp_path / "loop.jsonl"
    done = run_syspath("trace", "--no-live", "--record", str(path), "--", str(workload), "memfd", "3000", "0", "2")
    assert done.returncode == 0, done.stderr
    recorded = [r for r in read_jsonl(path) if r["type"] == "event" and r["comm"] == "workload"]
    pairs = {(r["tgid"], r["step"]) for r in recorded if r["step"] in ("memfd_create", "shmem_file_setup")}
    assert len(pairs) == 4, pairs
    for tgid, step in pairs:
        mine = [r for r in recorded if (r["tgid"], r["step"]) == (tgid, step)]
        assert len(mine) == 1500
        assert sum(r["stack"] is not None for r in mine) == stacks_expected(1500) == 257, (tgid, step)
        assert all(r["stack"] is not None for r in mine[:STACK_FIRST])


def test_a_loops_received_fds_show_only_their_own_calls_path(workload: Path, tmp_path: Path) -> None:  # noqa: F811
    """600 rounds of one fd sent and received: the receive path's record is sent for the first
    256 recvmsg calls only (sampling); a later call's receive_fd has no stack of its own, and
    must not show an earlier call's (tracer/stacks.py PathJoiner uses a record up at its call's
    last fd)."""
    path = tmp_path / "selfloop.jsonl"
    done = run_syspath("trace", "--no-live", "--record", str(path), "--", str(workload), "selfloop", "600")
    assert done.returncode == 0, done.stderr
    received = [r for r in read_jsonl(path) if r["type"] == "event" and r["step"] == "receive_fd"
                and r["comm"] == "workload"]
    assert len(received) == 600
    stacked = [r for r in received if r["stack"] is not None]
    assert len(stacked) == stacks_expected(600) == STACK_FIRST
    assert stacked == received[:STACK_FIRST]
    receive_fd = lessons.step("receive_fd")
    assert receive_fd is not None
    hooks = {point.hook for point in lessons.path_points() if point.tracepoint in receive_fd.path_points}
    assert len({r["stack_from"] for r in stacked}) == 1 and stacked[0]["stack_from"] in hooks
