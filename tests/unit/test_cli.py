"""Errors for people: one line on stderr, exit 2, no traceback."""
from __future__ import annotations

import json
import os
import pwd
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tracer import cli, kernel

REPO = Path(__file__).resolve().parents[2]


def run_main(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = cli.main(list(argv))
    return code, capsys.readouterr().err


def assert_one_line(err: str, fragment: str) -> None:
    assert err.count("\n") == 1 and err.startswith("syspath: ") and fragment in err
    assert "Traceback" not in err


def test_not_root(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    code, err = run_main(capsys, "run", "memfd-share", "--no-live")
    assert code == 2
    assert_one_line(err, "must run as root")


def test_unknown_scenario(capsys: pytest.CaptureFixture[str]) -> None:
    code, err = run_main(capsys, "run", "no-such", "--no-live")
    assert code == 2
    assert_one_line(err, "unknown lesson 'no-such'")


def test_bcc_missing(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    monkeypatch.setattr(kernel, "bcc_version", lambda: None)
    code, err = run_main(capsys, "run", "memfd-share", "--no-live")
    assert code == 2
    assert_one_line(err, "python3-bpfcc")


def test_no_btf(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    monkeypatch.setattr(kernel, "bcc_version", lambda: "0.26")
    monkeypatch.setattr(kernel, "BTF_PATH", tmp_path / "vmlinux")
    code, err = run_main(capsys, "run", "memfd-share", "--no-live")
    assert code == 2
    assert_one_line(err, "exposes no BTF")


def test_trace_without_command(capsys: pytest.CaptureFixture[str]) -> None:
    code, err = run_main(capsys, "trace", "--")
    assert code == 2
    assert_one_line(err, "trace needs a command")


def test_replay_of_a_missing_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, err = run_main(capsys, "replay", str(tmp_path / "none.jsonl"))
    assert code == 2
    assert_one_line(err, "cannot read")


def test_help_has_examples() -> None:
    assert "examples:" in cli.build_parser().format_help()
    assert "sudo syspath run memfd-share" in cli.build_parser().format_help()


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to become an unprivileged user")
def test_real_unprivileged_run_is_refused_in_one_line() -> None:
    nobody = pwd.getpwnam("nobody")
    try:
        done = subprocess.run([sys.executable, "-m", "tracer", "run", "memfd-share"], cwd=REPO, capture_output=True,
                              text=True, user=nobody.pw_uid, group=nobody.pw_gid, timeout=60)
    except PermissionError as error:
        # a checkout under root's home (/root is 0700 on Debian): nobody cannot reach its venv or code
        pytest.skip(f"user nobody cannot reach this checkout ({error}): clone it where others can enter")
    assert done.returncode == 2
    assert_one_line(done.stderr, "must run as root")


def test_replay_at_a_speed_plays_then_shows_the_same_summary(capsys: pytest.CaptureFixture[str],
                                                              tmp_path: Path) -> None:
    recording = tmp_path / "r.jsonl"
    base = {"type": "event", "pid": 7, "tgid": 7, "comm": "sender", "hook": "tp", "fd": 3,
            "file": "0xffff888100000f00", "inode": 9, "refcount": 1, "detail": {}}
    lines = [{"type": "session", "version": 1, "kernel": "k", "mode": "auto", "scenario": "memfd-share",
              "command": None, "started_ns": 0, "hooks": []},
             {**base, "ts_ns": 1_000_000, "step": "memfd_create"},
             {**base, "ts_ns": 51_000_000, "step": "receive_fd", "pid": 8, "tgid": 8, "comm": "receiver", "fd": 5},
             {"type": "summary", "events": 2, "lost": 0, "exit_code": 0, "duration_ns": 60_000_000}]
    recording.write_text("".join(json.dumps(line) + "\n" for line in lines))
    started = time.monotonic()
    assert cli.main(["replay", str(recording), "--speed", "2"]) == 0
    assert time.monotonic() - started >= 0.025              # 50 ms of recorded time at 2x
    assert "2 events, 0 lost" in capsys.readouterr().out
    with pytest.raises(SystemExit) as refused:
        cli.main(["replay", str(recording), "--speed", "0"])
    assert refused.value.code == 2 and "is not a positive number" in capsys.readouterr().err


# What replay must not need: bcc, and the modules that load probes or read the running kernel.
KERNEL_SIDE = ("bcc", "tracer.loader", "tracer.kernel", "tracer.facts", "tracer.offsets", "tracer.build",
               "tracer.session", "tracer.sink", "tracer.preflight", "tracer.headers", "tracer.btf")


@pytest.mark.parametrize("no_live", [True, False])
def test_replay_imports_nothing_of_the_kernel_side(tmp_path: Path, no_live: bool) -> None:
    recording = tmp_path / "r.jsonl"
    event = {"type": "event", "ts_ns": 5, "pid": 7, "tgid": 7, "comm": "c", "step": "memfd_create", "hook": "h",
             "fd": 3, "file": "0xffff888100000f00", "inode": 1, "refcount": 1, "detail": {}}
    recording.write_text("\n".join(json.dumps(r) for r in (
        {"type": "session", "version": 1, "kernel": "k", "mode": "auto", "scenario": None, "command": ["x"],
         "started_ns": 0, "hooks": []}, event,
        {"type": "summary", "events": 1, "lost": 0, "exit_code": 0, "duration_ns": 9})) + "\n")
    blocked = ("import sys\n"
               f"for name in {KERNEL_SIDE!r}: sys.modules[name] = None\n"
               "from tracer.cli import main\n"
               "sys.exit(main(sys.argv[1:]))")
    args = ["replay", str(recording), "--export-svg", str(tmp_path / "r.svg"),
            "--chrome-trace", str(tmp_path / "r.json")]
    done = subprocess.run([sys.executable, "-c", blocked, *args, *(["--no-live"] if no_live else [])], cwd=REPO,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "1 events, 0 lost" in done.stdout
    assert (tmp_path / "r.svg").exists() and (tmp_path / "r.json").exists()


def test_no_import_cycle_between_tracer_modules() -> None:
    import ast

    imports: dict[str, set[str]] = {}
    for path in (REPO / "tracer").rglob("*.py"):
        module = ".".join(path.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__")
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("tracer"):
                names.add(node.module)
                names.update(f"{node.module}.{alias.name}" for alias in node.names)
            elif isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names if alias.name.startswith("tracer"))
        imports[module] = names
    graph = {module: {name for name in names if name in imports and name != module}
             for module, names in imports.items()}

    def cycle_from(start: str, path: list[str]) -> list[str] | None:
        for follower in graph[path[-1]]:
            if follower == start:
                return [*path, start]
            if follower not in path and (found := cycle_from(start, [*path, follower])):
                return found
        return None

    cycles = [cycle for module in graph if (cycle := cycle_from(module, [module]))]
    assert not cycles, " -> ".join(cycles[0])
