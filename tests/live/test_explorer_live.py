"""The explorer on a real terminal (a pty): a live run ends well, by its end or by a signal."""
from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import signal
import struct
import subprocess
import sys
import termios
import threading
import time
from collections.abc import Callable
from pathlib import Path

from tests.live.conftest import REPO
from tests.live.test_reliability import workload  # noqa: F401 (fixture)
from tracer.recording import read_recording


def on_a_terminal(*args: str) -> tuple[subprocess.Popen[bytes], int]:
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))
    os.set_blocking(master, False)
    process = subprocess.Popen([sys.executable, "-m", "tracer", *args], cwd=REPO, stdin=slave, stdout=slave,
                               stderr=slave, start_new_session=True, env={**os.environ, "TERM": "xterm-256color"})
    os.close(slave)
    return process, master


ESCAPES = re.compile(rb"\x1b\[[0-9;?<>=$]*[A-Za-z]|\x1b[()][A-Z0-9]|\r|\n")


class Screen:
    """Everything the app wrote, read all along (a pty left unread would block the app)."""

    def __init__(self, master: int) -> None:
        self.master = master
        self.seen = b""
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        while True:
            if select.select([self.master], [], [], 0.2)[0]:
                try:
                    chunk = os.read(self.master, 65536)
                except OSError:
                    return
                if not chunk:
                    return
                self.seen += chunk

    def text(self) -> bytes:
        return ESCAPES.sub(b"", self.seen)

    def wait_for(self, text: str, timeout: float = 90) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text.replace(" ", "").encode() in ESCAPES.sub(b"", self.seen).replace(b" ", b""):
                return True
            time.sleep(0.2)
        return False


def stepped_run(recording: Path, drive: Callable[[subprocess.Popen[bytes], int, Screen], int]) -> dict:
    """`run memfd-share --step` on a pty, driven until it exits; the recording's summary."""
    process, master = on_a_terminal("run", "memfd-share", "--step", "--record", str(recording))
    screen = Screen(master)
    try:
        assert screen.wait_for("press space")
        assert drive(process, master, screen) == process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    summary = read_recording(recording).summary
    assert summary is not None
    return summary


def test_run_in_the_explorer_steps_by_key_then_quits(tmp_path: Path) -> None:
    def steps_then_quit(process: subprocess.Popen[bytes], master: int, screen: Screen) -> int:
        for _ in range(8):
            os.write(master, b" ")
            time.sleep(1)
        assert screen.wait_for("done: exit 0")
        os.write(master, b"q")
        return 0

    summary = stepped_run(tmp_path / "explored.jsonl", steps_then_quit)
    assert summary["exit_code"] == 0 and summary["events"] >= 8


def test_sigterm_in_the_explorer_detaches_and_ends_the_recording(tmp_path: Path) -> None:
    def terminate(process: subprocess.Popen[bytes], master: int, screen: Screen) -> int:
        process.send_signal(signal.SIGTERM)
        return 143

    assert stepped_run(tmp_path / "cut.jsonl", terminate)["exit_code"] == 143


FLOOD_MEMFDS = 10_000_000          # two events each, as fast as two producers go: far more than a test waits for
SHOWN = re.compile(rb"(\d+) events \(")


def test_the_explorer_keeps_up_with_a_flood_and_quits_at_once(workload: Path, tmp_path: Path) -> None:  # noqa: F811
    """Two producers at full speed (about 300k events/s here): the screen goes on counting
    and q ends the session. Before the event list, the explorer formatted and dropped rows
    one by one (DataTable): it showed 9-10k events in 8 s and q took from 7 s to over 290 s."""
    recording = tmp_path / "flood.jsonl"
    process, master = on_a_terminal("trace", "--record", str(recording), "--", str(workload),
                                    "memfd", str(FLOOD_MEMFDS), "0", "2")
    screen = Screen(master)
    try:
        assert screen.wait_for("oldest not kept here")           # more than the 10k-row window
        counts = []
        for _ in range(4):
            time.sleep(1)
            counts.append(max(int(n) for n in SHOWN.findall(screen.text())))
        asked = time.monotonic()
        os.write(master, b"q")
        assert process.wait(timeout=30) == 130
        quit_s = time.monotonic() - asked
    finally:
        if process.poll() is None:
            process.kill()
    assert counts == sorted(set(counts)), counts                  # a new count every second
    assert quit_s < 10, quit_s
    summary = read_recording(recording).summary
    assert summary is not None and summary["exit_code"] == 130
    assert summary["events"] >= counts[-1]
