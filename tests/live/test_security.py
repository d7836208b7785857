"""Issue 12: root writes only where the invoking user may, never through a planted
link, and runs only code that only root can change. Run as root with sudo's
SUDO_UID/SUDO_GID set to `nobody`, as a student granted `sudo syspath` would."""
from __future__ import annotations

import json
import os
import pwd
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from tests.live.conftest import REPO

NOBODY = pwd.getpwnam("nobody")
AS_NOBODY = {**os.environ, "SUDO_UID": str(NOBODY.pw_uid), "SUDO_GID": str(NOBODY.pw_gid), "SUDO_USER": "nobody"}
INSTALLED = Path("/usr/local/bin/syspath")


def syspath(*args: str, env: dict[str, str] | None = None, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tracer", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=120, env=env or AS_NOBODY)


@pytest.fixture
def victim(tmp_path: Path) -> Path:
    path = tmp_path / "victim"                     # tmp_path is root's, 0700: nobody cannot reach it
    path.write_text("root's secret\n")
    path.chmod(0o600)
    return path


def _state(path: Path) -> tuple[str, int, int, int]:
    info = path.stat()
    return path.read_text(), stat.S_IMODE(info.st_mode), info.st_uid, info.st_gid


def _plant(link: Path, target: Path) -> None:
    link.symlink_to(target)
    os.lchown(link, NOBODY.pw_uid, NOBODY.pw_gid)  # planted by the attacker


def test_symlink_spray_leaves_the_victim_untouched(shared_dir: Path, victim: Path) -> None:
    assert Path("/proc/sys/fs/protected_symlinks").read_text().strip() in ("0", "1")
    before = _state(victim)
    next_pid = int(Path("/proc/sys/kernel/ns_last_pid").read_text())
    for name in ("x.jsonl", "c.json", "s.svg"):
        for pid in range(next_pid, next_pid + 400):         # the old predictable temporary names
            _plant(shared_dir / f".{name}.{pid}.tmp", victim)
        _plant(shared_dir / name, victim)                   # and the final names themselves
    done = syspath("trace", "--no-live", "--record", str(shared_dir / "x.jsonl"), "--chrome-trace",
                   str(shared_dir / "c.json"), "--export-svg", str(shared_dir / "s.svg"), "--", "true")
    assert done.returncode == 0, done.stderr
    assert _state(victim) == before
    for name in ("x.jsonl", "c.json", "s.svg"):
        written = (shared_dir / name).lstat()
        assert stat.S_ISREG(written.st_mode) and (written.st_uid, written.st_gid) == (NOBODY.pw_uid, NOBODY.pw_gid)
    assert json.loads((shared_dir / "x.jsonl").read_text().splitlines()[0])["type"] == "session"
    left = [p.name for p in shared_dir.iterdir() if not p.is_symlink() and p.name not in ("x.jsonl", "c.json", "s.svg")]
    assert left == [], "no temporary file left behind"


def test_record_where_the_user_cannot_write_is_refused_before_tracing(tmp_path: Path) -> None:
    folder = Path(tempfile.mkdtemp(prefix="syspath-rootonly-", dir="/tmp"))
    try:
        folder.chmod(0o755)                                   # root's: nobody may read it, not write it
        for option in ("--record", "--chrome-trace", "--export-svg", "--export-html"):
            done = syspath("trace", "--no-live", option, str(folder / "out"), "--", "true")
            assert done.returncode == 2, done.stderr
            assert done.stderr.strip().count("\n") == 0 and "not writable by nobody" in done.stderr
            assert "probes attached" not in done.stderr
        assert list(folder.iterdir()) == []
    finally:
        shutil.rmtree(folder)


def test_etc_is_refused_to_a_sudo_user() -> None:
    for option, name in (("--record", "x.jsonl"), ("--export-svg", "x.svg"), ("--export-html", "x.html"),
                         ("--chrome-trace", "x.json")):
        target = Path("/etc") / f"syspath-test-{name}"
        done = syspath("trace", "--no-live", option, str(target), "--", "true")
        assert done.returncode == 2 and "cannot write the" in done.stderr and "/etc is not writable" in done.stderr
        assert not target.exists()
    assert not [p for p in Path("/etc").iterdir() if p.name.startswith((".syspath-test", "syspath-test"))]


def test_replacing_someone_elses_file_in_a_sticky_directory_is_refused(shared_dir: Path) -> None:
    theirs = shared_dir / "theirs.jsonl"
    theirs.write_text("another user's file\n")                   # root's, in a sticky directory
    done = syspath("trace", "--no-live", "--record", str(theirs), "--", "true")
    assert done.returncode == 2 and "belongs to someone else" in done.stderr
    assert theirs.read_text() == "another user's file\n"


def _has_event(path: Path, step: str) -> bool:
    lines = path.read_text().splitlines() if path.exists() else []
    return any('"type":"event",' in line and f'"step":"{step}",' in line for line in lines)


def test_a_killed_session_leaves_a_replayable_recording(shared_dir: Path) -> None:
    """SIGKILL at any moment: the recording is already at its path, all but the summary."""
    path = shared_dir / "killed.jsonl"
    program = "import os, time; os.memfd_create('killed'); time.sleep(60)"
    tracer = subprocess.Popen([sys.executable, "-m", "tracer", "trace", "--no-live", "--record", str(path), "--",
                               sys.executable, "-c", program], cwd=REPO, env=AS_NOBODY, start_new_session=True,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not _has_event(path, "memfd_create"):
            time.sleep(0.1)
    finally:
        os.killpg(tracer.pid, signal.SIGKILL)
        tracer.wait()
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert lines[0]["type"] == "session" and lines[-1]["type"] == "event"
    assert any(line.get("step") == "memfd_create" for line in lines)
    replayed = syspath("replay", "--no-live", str(path), env=dict(os.environ))
    assert replayed.returncode == 0, replayed.stderr


def test_escapes_from_the_traced_program_are_shown_never_obeyed(tmp_path: Path) -> None:
    title = "\\x1b]0;OWNED\\x07[red]"
    program = ("import ctypes, os; ctypes.CDLL(None).prctl(15, b'" + title + "', 0, 0, 0); "
               "print('\\x1b[2Jsays[bold]', flush=True); os.memfd_create('\\x1b[31mname[red]')")
    exports = {"svg": tmp_path / "s.svg", "html": tmp_path / "s.html", "chrome": tmp_path / "c.json",
               "jsonl": tmp_path / "r.jsonl"}
    done = syspath("trace", "--no-live", "--export-svg", str(exports["svg"]), "--export-html", str(exports["html"]),
                   "--chrome-trace", str(exports["chrome"]), "--record", str(exports["jsonl"]), "--",
                   sys.executable, "-c", program, env=dict(os.environ))
    assert done.returncode == 0, done.stderr
    shown = done.stdout + done.stderr
    assert "\x1b" not in shown and "\x07" not in shown
    assert "\\e]0;OWNED\\x07[red]" in shown, "the name set with prctl, escaped, markup literal"
    assert "\\e[2Jsays[bold]" in shown and "\\e[31mname[red]" in shown
    for path in exports.values():
        text = path.read_text()
        assert "\x1b" not in text and "\x07" not in text, path
        assert "[red]" in text, path
    replayed = syspath("replay", "--no-live", str(exports["jsonl"]), env=dict(os.environ))
    assert "\x1b" not in replayed.stdout and "\\e]0;OWNED\\x07[red]" in replayed.stdout


def _unsafe(path: Path) -> str | None:
    """Why someone other than root could change what is at path (the path and each parent)."""
    for part in [path, *path.parents]:
        info = part.lstat()
        if info.st_uid != 0:
            return f"{part} belongs to uid {info.st_uid}"
        if info.st_mode & stat.S_IWOTH and not stat.S_ISLNK(info.st_mode):
            return f"{part} is world-writable"
        if info.st_mode & stat.S_IWGRP and info.st_gid != 0 and not stat.S_ISLNK(info.st_mode):
            return f"{part} is writable by group {info.st_gid}"
    return None


def test_the_syspath_on_roots_path_runs_only_code_root_can_write() -> None:
    assert INSTALLED.exists(), "sudo make setup installs /usr/local/bin/syspath"
    script = INSTALLED.resolve()
    interpreter = script.read_text().splitlines()[0].removeprefix("#!").split()
    assert "-I" in interpreter[1:], "isolated: no PYTHONPATH, user site or current directory"
    probe = ("import json, sys, tracer, tracer.cli, tracer.session, tracer.loader, tracer.recording, tracer.userfiles, "
             "tracer.exports, tracer.views.live, "
             "tracer.resources as r; print(json.dumps({'files': [getattr(m, '__file__', None) for m in "
             "list(sys.modules.values())], 'path': sys.path, 'tracer': tracer.__file__, "
             "'data': [str(r.probes_dir()), str(r.scenario_dir())]}))")
    seen = json.loads(subprocess.run([*interpreter, "-c", probe], cwd="/tmp", capture_output=True, text=True,
                                     check=True, env={"PATH": "/usr/bin:/bin"}).stdout)
    package = Path(seen["tracer"]).parent
    assert "site-packages" in package.parts, f"root runs an installed copy, not a checkout: {package}"
    assert not any(Path(p).is_relative_to(REPO) for p in seen["path"] + seen["data"] if p)
    places = [script, INSTALLED, *(Path(f) for f in seen["files"] if f), *(Path(p) for p in seen["path"] if p),
              *(Path(d) for d in seen["data"])]
    for root, folders, files in os.walk(package):
        places += [Path(root) / name for name in folders + files]
    problems = {problem for place in places if place.exists() and (problem := _unsafe(place))}
    assert not problems, sorted(problems)[:10]
