"""Exploring: trace any command, step mode, exports, replay without root."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.live.conftest import REPO, read_jsonl, run_syspath

NOBODY = {"SUDO_UID": "65534", "SUDO_GID": "65534"}
FDPASS = Path(__file__).parent / "programs" / "fdpass.c"


@pytest.fixture(scope="module")
def public_dir() -> Iterator[Path]:
    """A directory the unprivileged account can read and write (pytest's own are root-only)."""
    path = Path(tempfile.mkdtemp(prefix="syspath-test-"))
    path.chmod(0o777)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def fdpass(public_dir: Path) -> Path:
    binary = public_dir / "fdpass"
    subprocess.run(["gcc", "-O1", "-Wall", "-I", str(REPO / "bench"), "-o", str(binary), str(FDPASS)], check=True)
    return binary


def syspath_as_sudo(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tracer", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=120, env={**os.environ, **NOBODY})


def events(records: list[dict], step: str) -> list[dict]:
    return [r for r in records if r["type"] == "event" and r["step"] == step]


def test_trace_any_command_as_the_invoking_user(fdpass: Path, public_dir: Path) -> None:
    recording = public_dir / "fdpass.jsonl"
    done = syspath_as_sudo("trace", "--no-live", "--record", str(recording), "--", str(fdpass))
    assert done.returncode == 3, done.stderr           # fdpass exits 3 on success: syspath passes it on
    assert "parent uid 65534: memfd fd" in done.stdout and "child uid 65534: fd" in done.stdout
    records = read_jsonl(recording)
    assert records[0]["command"] == [str(fdpass)] and records[0]["scenario"] is None
    [created] = events(records, "memfd_create")
    [received] = events(records, "receive_fd")
    assert created["file"] == received["file"] and created["tgid"] != received["tgid"]
    assert records[-1]["exit_code"] == 3
    assert recording.stat().st_uid == 65534


def test_trace_of_a_missing_command_is_one_line_exit_2() -> None:
    done = run_syspath("trace", "--no-live", "--", "/nonexistent/program")
    assert done.returncode == 2
    assert done.stderr.strip() == "syspath: /nonexistent/program: command not found (or not executable)"


def test_pace_pauses_before_each_step_and_shows_what_it_caused() -> None:
    done = run_syspath("run", "memfd-share", "--no-live", "--pace", "0.05", timeout=30)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    first = out.index("--- next, in the sender: memfd_create")
    mmap = out.index("--- next, in the sender: mmap(fd 3")
    send = out.index("--- next, in the sender: sendmsg()")
    between = out[first:mmap]
    assert "\tmemfd_create\t" in between and "\tdo_mmap\t" not in between.replace("python", "")
    assert "\tdo_mmap\t" in out[mmap:send]


def test_step_needs_a_terminal() -> None:
    done = run_syspath("run", "memfd-share", "--step")
    assert done.returncode == 2 and "use --pace SECONDS" in done.stderr


@pytest.fixture(scope="module")
def exported(public_dir: Path) -> dict[str, Path]:
    paths = {kind: public_dir / f"memfd.{kind}" for kind in ("jsonl", "svg", "html", "trace.json")}
    done = syspath_as_sudo("run", "memfd-share", "--no-live", "--record", str(paths["jsonl"]),
                           "--export-svg", str(paths["svg"]), "--export-html", str(paths["html"]),
                           "--chrome-trace", str(paths["trace.json"]))
    assert done.returncode == 0, done.stderr
    paths["stdout"] = public_dir / "run.out"
    paths["stdout"].write_text(done.stdout)
    return paths


def test_exports_are_whole_and_owned_by_the_invoking_user(exported: dict[str, Path]) -> None:
    for kind in ("jsonl", "svg", "html", "trace.json"):
        assert exported[kind].stat().st_uid == 65534, kind
    svg = exported["svg"].read_text()
    assert svg.startswith("<svg") and svg.rstrip().endswith("</svg>")
    assert "owners" in svg and "struct&#160;file" in svg           # the object view is on the screen
    assert "<html" in exported["html"].read_text()
    assert not list(exported["svg"].parent.glob(".*.tmp"))


def test_chrome_trace_has_one_track_per_thread(exported: dict[str, Path]) -> None:
    trace = json.loads(exported["trace.json"].read_text())
    threads = {(e["pid"], e["tid"]): e["args"]["name"] for e in trace["traceEvents"] if e["name"] == "thread_name"}
    steps = [e for e in trace["traceEvents"] if e["ph"] == "i"]
    assert {(e["pid"], e["tid"]) for e in steps} == set(threads)
    assert any(name.startswith("sender [") for name in threads.values())
    assert any(name.startswith("receiver [") for name in threads.values())
    assert all(e["ts"] >= 0 and e["s"] == "t" for e in steps)
    [received] = [e for e in steps if e["name"] == "receive_fd"]
    [created] = [e for e in steps if e["name"] == "memfd_create"]
    assert received["args"]["file"] == created["args"]["file"]


def test_replay_needs_no_root_and_reaches_the_same_summary(exported: dict[str, Path], public_dir: Path) -> None:
    svg = public_dir / "replayed.svg"
    done = subprocess.run([sys.executable, "-m", "tracer", "replay", str(exported["jsonl"]), "--no-live",
                           "--export-svg", str(svg)], cwd=REPO, capture_output=True, text=True, timeout=60,
                          user=65534, group=65534, env={"PATH": os.environ["PATH"]})
    assert done.returncode == 0, done.stderr
    run_out = exported["stdout"].read_text()
    summary = [line for line in run_out.splitlines() if line.startswith(("One struct file", "  ", "10 events"))]
    replayed = done.stdout.splitlines()
    assert summary and all(line in replayed for line in summary)
    assert svg.stat().st_uid == 65534 and "owners" in svg.read_text()
