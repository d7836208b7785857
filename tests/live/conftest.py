"""Live tests load BPF programs into the running kernel: root and bcc required.
`make test` runs as root, so there they always run; elsewhere they say why not."""
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

REPO = Path(__file__).resolve().parents[2]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    why = None
    if os.geteuid() != 0:
        why = "live tests need root (sudo make test)"
    else:
        try:
            import bcc  # noqa: F401
        except ImportError:
            why = "live tests need bcc (sudo make setup)"
    for item in items:
        item.add_marker(pytest.mark.live)
        if why:
            item.add_marker(pytest.mark.skip(reason=why))


def run_syspath(*args: str, timeout: int = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tracer", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=timeout)


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A world-writable sticky directory anyone reaches, like /tmp."""
    folder = Path(tempfile.mkdtemp(prefix="syspath-shared-", dir="/tmp"))
    folder.chmod(0o1777)
    yield folder
    shutil.rmtree(folder)
