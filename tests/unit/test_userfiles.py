"""Output files with the user's rights: checked before tracing, never written through a link or a device."""
from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from tracer.errors import SyspathError
from tracer.userfiles import ensure_writable


def test_a_device_is_never_replaced_by_an_output(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(SyspathError, match="not a regular file"):
        ensure_writable(fifo, "recording")
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    with pytest.raises(SyspathError, match="not a regular file"):
        ensure_writable(Path("/dev/null"), "recording")
    assert stat.S_ISCHR(os.lstat("/dev/null").st_mode)
