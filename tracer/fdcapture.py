"""Capture what C libraries (libbcc, libbpf, clang) write straight to fd 2."""
from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator


class CapturedText:
    text: str = ""


@contextlib.contextmanager
def captured_stderr() -> Iterator[CapturedText]:
    captured = CapturedText()
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield captured
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            captured.text = sink.read().decode(errors="replace")
