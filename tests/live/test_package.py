"""A real package: the wheel (not an editable install) carries probes/ and scenarios/,
and its syspath runs a scenario from anywhere, with bcc from the system python."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from tests.live.conftest import REPO

SYSTEM_PYTHON = "/usr/bin/python3"
NOT_SOURCES = shutil.ignore_patterns(".venv", ".git", "build", "*.egg-info", "__pycache__", ".pytest_cache",
                                     ".hypothesis", "*.jsonl", "tests", "bench")


def _run(*command: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{' '.join(command)}: {done.stderr[-2000:]}"
    return done


def test_the_installed_wheel_runs_a_scenario_outside_the_checkout(shared_dir: Path) -> None:
    tmp_path = shared_dir                           # the scenario runs as nobody: it must read the venv
    source = tmp_path / "source"                    # build from a copy: the checkout stays clean
    shutil.copytree(REPO, source, ignore=NOT_SOURCES)
    _run(SYSTEM_PYTHON, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(tmp_path), ".",
         cwd=source)
    wheel = next(tmp_path.glob("syspath-*.whl"))
    venv = tmp_path / "venv"
    _run(SYSTEM_PYTHON, "-m", "venv", "--system-site-packages", str(venv), cwd=tmp_path)
    _run(str(venv / "bin" / "pip"), "install", "-q", "--no-index", "--no-deps", str(wheel), cwd=tmp_path)
    _run(str(venv / "bin" / "pip"), "install", "-q", "rich>=13", cwd=tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    shutil.rmtree(source)                           # nothing of the checkout is left to lean on
    version = _run(str(venv / "bin" / "syspath"), "--version", cwd=elsewhere).stdout
    metadata = _run(str(venv / "bin" / "python"), "-c", "import importlib.metadata as m; print(m.version('syspath'))",
                    cwd=elsewhere).stdout.strip()
    assert version.strip() == f"syspath {metadata}"
    done = _run(str(venv / "bin" / "syspath"), "run", "memfd-share", "--no-live", cwd=elsewhere)
    assert "One struct file 0xffff" in done.stdout, done.stdout[-2000:]
    assert str(venv) in _run(str(venv / "bin" / "python"), "-c", "import tracer.resources as r; print(r.probes_dir())",
                             cwd=elsewhere).stdout
