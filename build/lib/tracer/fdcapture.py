"""Capture what C libraries (libbcc, libbpf, clang) write straight to fd 2."""
from __future__ import annotations

import contextlib
import os
import subprocess
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


# The end of a capture that returned: whatever the watcher read before it is handed back.
CAPTURE_END = b"\0syspath: capture ends\0"
# The watcher: a process of its own, so that it outlives this one. Its stdin is the capture.
WATCHER = """
import sys
data = sys.stdin.buffer.read()
end = data.rfind(END)
if end >= 0:
    sys.stdout.buffer.write(data[:end])
    sys.exit(0)
said = [line.strip() for line in data.decode(errors="replace").splitlines() if "ERROR" in line or "error:" in line]
sys.stderr.write("syspath: " + NOTE.format(error=said[-1] if said else "no message") + "\\n")
"""


@contextlib.contextmanager
def captured_crash_stderr(note: str) -> Iterator[CapturedText]:
    """captured_stderr for a call that may kill the process: LLVM aborts on some errors
    (llvm/lib/Support/ErrorHandling.cpp report_fatal_error), and a capture held in this
    process would die with it, leaving the user nothing but "Aborted". A watcher process
    reads the capture instead; if this process dies before the block ends, the watcher
    prints `note` on the real stderr, its {error} the last error line written."""
    captured = CapturedText()
    sys.stderr.flush()
    read_end, write_end = os.pipe()
    watcher = subprocess.Popen([sys.executable, "-I", "-S", "-c", f"END = {CAPTURE_END!r}\nNOTE = {note!r}\n{WATCHER}"],
                               stdin=read_end, stdout=subprocess.PIPE)
    os.close(read_end)
    saved = os.dup(2)
    os.dup2(write_end, 2)
    os.close(write_end)
    try:
        yield captured
    finally:
        sys.stderr.flush()
        os.write(2, CAPTURE_END)
        os.dup2(saved, 2)             # the last write end: the watcher reads to its end
        os.close(saved)
        out, _ = watcher.communicate()
        captured.text = out.decode(errors="replace")
