"""Reliability: clean detach on every exit path, loss reported, own processes only, stress."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.live.conftest import REPO, read_jsonl, run_syspath
from tracer.recording import read_recording

WORKLOAD = REPO / "bench" / "workload.c"


def loaded_program_ids() -> set[int]:
    shown = subprocess.run(["bpftool", "-j", "prog", "show"], capture_output=True, text=True, check=True)
    return {program["id"] for program in json.loads(shown.stdout or "[]")}


def programs_of(pid: int) -> set[int]:
    """The BPF programs a process holds, from its fds (fdinfo's prog_id): exactly ours,
    whatever else runs on the machine."""
    found = set()
    for info in Path(f"/proc/{pid}/fdinfo").glob("*"):
        try:
            text = info.read_text()
        except OSError:
            continue
        found |= {int(line.split()[1]) for line in text.splitlines() if line.startswith("prog_id:")}
    return found


def assert_all_unloaded(ours: set[int]) -> None:
    assert not ours & loaded_program_ids(), "programs left in the kernel"


@pytest.fixture(scope="module")
def workload() -> Iterator[Path]:
    folder = Path(tempfile.mkdtemp(prefix="syspath-test-"))
    folder.chmod(0o755)
    binary = folder / "workload"
    subprocess.run(["gcc", "-O2", "-o", str(binary), str(WORKLOAD)], check=True)
    yield binary
    shutil.rmtree(folder, ignore_errors=True)


def start(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "tracer", *args], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, **(env or {})})


def wait_for_probes(process: subprocess.Popen[str]) -> set[int]:
    """Until the tracer holds its programs and its target runs (the gate opens after attach)."""
    deadline = time.monotonic() + 30
    while not (subprocess.run(["pgrep", "-P", str(process.pid)], capture_output=True).returncode == 0
               and programs_of(process.pid)):
        assert process.poll() is None and time.monotonic() < deadline, "probes never attached"
        time.sleep(0.05)
    time.sleep(0.3)
    return programs_of(process.pid)


@pytest.mark.parametrize("signum, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130), (signal.SIGHUP, 129)])
def test_a_signal_mid_run_detaches_everything_and_saves_the_recording(tmp_path: Path, signum: int,
                                                                      code: int) -> None:
    recording = tmp_path / "cut.jsonl"
    process = start("trace", "--no-live", "--record", str(recording), "--", "/bin/sleep", "31.25")
    ours = wait_for_probes(process)
    assert len(ours) >= 3
    target = int(subprocess.run(["pgrep", "-P", str(process.pid)], capture_output=True, text=True).stdout.split()[0])
    process.send_signal(signum)
    _, err = process.communicate(timeout=30)
    assert process.returncode == code, err
    assert "syspath: interrupted, probes detached; recording saved in" in err and "Traceback" not in err
    assert_all_unloaded(ours)
    summary = read_recording(recording).summary
    assert summary is not None and summary["exit_code"] == code
    assert not Path(f"/proc/{target}").exists(), "the traced command outlived syspath"


def wait_for_bcc(pid: int, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while "libbcc" not in Path(f"/proc/{pid}/maps").read_text():
        assert time.monotonic() < deadline, "syspath never loaded bcc"
        time.sleep(0.01)


def test_ctrl_c_during_compile_leaves_nothing_loaded() -> None:
    process = start("run", "memfd-share", "--no-live")
    wait_for_bcc(process.pid)            # bcc is loaded: clang compiles next, before anything is attached
    ours = programs_of(process.pid)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=30)
    assert process.returncode == 130 and "Traceback" not in err
    assert_all_unloaded(ours)


def test_ctrl_c_during_the_live_view(tmp_path: Path) -> None:
    recording = tmp_path / "live.jsonl"
    process = start("run", "memfd-share", "--pace", "5", "--record", str(recording))
    ours = wait_for_probes(process)
    time.sleep(1)                        # the scenario is paused before a step, the view is live
    process.send_signal(signal.SIGINT)
    process.communicate(timeout=30)
    assert process.returncode == 130
    assert_all_unloaded(ours)
    assert read_recording(recording).summary["exit_code"] == 130


def test_a_crashing_command_is_reported_like_a_shell_does(tmp_path: Path) -> None:
    recording = tmp_path / "crash.jsonl"
    process = start("trace", "--no-live", "--record", str(recording), "--", "/bin/sh", "-c", "sleep 1; kill -SEGV $$")
    ours = wait_for_probes(process)
    process.communicate(timeout=30)
    assert process.returncode == 139
    assert read_recording(recording).summary["exit_code"] == 139
    assert_all_unloaded(ours)


def kernel_events(records: list[dict]) -> list[dict]:
    """The probes' events: not the `page` readings of /proc/PID/pagemap, whose number depends
    on which polls saw a page mapped (tracer/pages.py)."""
    return [r for r in records if r["type"] == "event" and r["step"] != "page"]


def loader_mappings(records: list[dict]) -> list[dict]:
    """Every file mapping is an event: the dynamic loader's of ld.so.cache and libc too."""
    return [r for r in records if r.get("type") == "event" and r["step"] == "do_mmap"
            and r["detail"].get("file_kind") == "regular"]


def test_forced_loss_is_counted_and_reported(workload: Path, tmp_path: Path) -> None:
    recording = tmp_path / "loss.jsonl"
    done = subprocess.run([sys.executable, "-m", "tracer", "trace", "--no-live", "--record", str(recording), "--",
                           str(workload), "memfd", "100000", "0"], cwd=REPO, capture_output=True, text=True,
                          timeout=120, env={**os.environ, "SYSPATH_RINGBUF_PAGES": "1"})
    assert done.returncode == 0, done.stderr
    records = read_jsonl(recording)
    summary = records[-1]
    assert summary["lost"] > 0
    # each step's share of the loss, from the probes' per-step counters; the path points seen
    # inside a step (the struct file's allocation in kmem_cache_alloc) are records too
    lost_paths = {k: n for k, n in summary["lost_steps"].items() if k.startswith("path at ")}
    assert sum(summary["lost_steps"].values()) == summary["lost"]
    assert set(summary["lost_steps"]) - set(lost_paths) <= {"memfd_create", "shmem_file_setup", "do_mmap"}
    # memfd_create + shmem_file_setup each, and the dynamic loader's mappings of ld.so.cache and libc
    lost_events = summary["lost"] - sum(lost_paths.values())
    assert summary["events"] + lost_events == 200_000 + len(loader_mappings(records)), (
        summary, Counter((r["step"], r["detail"].get("file_kind")) for r in kernel_events(records)))
    assert f"{summary['lost']} events were lost" in done.stdout
    assert f"memfd_create {summary['lost_steps']['memfd_create']}" in done.stdout
    assert done.stdout.rstrip().endswith(f"{summary['events']} events, {summary['lost']} lost")


def test_a_ring_with_room_refuses_no_record(workload: Path, tmp_path: Path) -> None:
    """Fewer records than the ring holds, made as fast as one loop can: none may be lost. A
    reader that moved its position in more than one store made the kernel refuse a few
    reservations in every 50,000 (tracer/ringbuf.py RingReader)."""
    from tracer.lessons import event_layout
    from tracer.loader import ring_pages
    from tracer.ringbuf import PAGE, record_stride

    memfds = ring_pages() * PAGE // record_stride(event_layout().size) - 1000     # one record each, and the loader's
    recording = tmp_path / "room.jsonl"
    done = run_syspath("trace", "--no-live", "--record", str(recording), "--", str(workload), "memfd", str(memfds), "0",
                       timeout=120)
    assert done.returncode == 0, done.stderr
    summary = read_jsonl(recording)[-1]
    assert (summary["lost"], summary["events"] >= 2 * memfds) == (0, True), summary


def test_two_sessions_each_see_only_their_own_processes(workload: Path, tmp_path: Path) -> None:
    rounds = 3000
    paths = [tmp_path / f"session{i}.jsonl" for i in range(2)]
    sessions = [start("trace", "--no-live", "--record", str(path), "--", str(workload), "roundtrip", str(rounds))
                for path in paths]
    for session in sessions:
        session.communicate(timeout=120)
        assert session.returncode == 0
    trees = []
    for path in paths:
        records = read_jsonl(path)
        events = kernel_events(records)
        # 9 a round (the skb in flight too, the memfd page's first touch), the fork, the child's
        # first wake-up and its SIGCHLD to its parent as it exits; plus the dynamic loader's
        # mappings. Far fewer than the ring holds: none lost.
        expected = 9 * rounds + 3 + len(loader_mappings(records))
        assert (len(events), records[-1]["lost"]) == (expected, 0)
        trees.append({e["tgid"] for e in events})
    assert not trees[0] & trees[1] and all(len(tree) == 2 for tree in trees)


def test_stress_every_pass_is_accounted_for(workload: Path, tmp_path: Path) -> None:
    rounds = 5000
    recording = tmp_path / "stress.jsonl"
    done = run_syspath("trace", "--no-live", "--record", str(recording), "--", str(workload), "roundtrip",
                       str(rounds), timeout=180)
    assert done.returncode == 0, done.stderr
    records = read_jsonl(recording)
    loader = {id(r) for r in loader_mappings(records)}
    events = [r for r in kernel_events(records) if id(r) not in loader]
    steps = Counter(e["step"] for e in events)
    expected = {"memfd_create": rounds, "shmem_file_setup": rounds, "do_mmap": 2 * rounds,
                "memfd_page": rounds,                             # the first touch of the mapping
                "unix_stream_sendmsg": rounds, "scm_fp_copy": rounds, "in_flight": rounds, "receive_fd": rounds,
                "clone": 1, "first_wakeup": 1,                    # the fork, the child's first wake-up
                "signal_generate": 1}                             # the child's SIGCHLD as it exits
    # every pass recorded: 45,000 records, far fewer than the ring holds
    assert (steps, records[-1]["lost"]) == (Counter(expected), 0)
    sent = [e["file"] for e in events if e["step"] == "scm_fp_copy"]
    received = [e["file"] for e in events if e["step"] == "receive_fd"]
    assert sent == received                       # each pass arrives as the very struct file sent


def test_commands_run_unprivileged() -> None:
    done = run_syspath("trace", "--no-live", "--", "/usr/bin/id", "-u")
    env_uid = os.environ.get("SUDO_UID")
    expected = env_uid if env_uid and env_uid != "0" else "65534"
    assert done.returncode == 0 and f"program: stdout: {expected}" in done.stdout


def test_an_unwritable_output_fails_before_tracing(tmp_path: Path) -> None:
    done = run_syspath("run", "memfd-share", "--no-live", "--chrome-trace", str(tmp_path / "missing" / "t.json"))
    assert done.returncode == 2 and "probes attached" not in done.stderr
    assert done.stderr.strip().startswith("syspath: cannot write the Chrome trace")
