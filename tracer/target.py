"""The traced program: started behind a gate, as the invoking user, never as root.

The target starts as a shell waiting on a pipe, so its pid can be put in the
kernel-side `tracked` map before it runs a single instruction of its own; from
there sched_process_fork adds every descendant. It dies with syspath
(PR_SET_PDEATHSIG), even when syspath is killed with SIGKILL.
"""
from __future__ import annotations

import ctypes
import json
import os
import pwd
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from tracer.observer import OutputLine
from tracer.text import printable, printable_tree
from tracer.userfiles import invoking_user

# The gate is the shell's stdin; the target gets /dev/null instead.
GATE = 'read _; exec "$0" "$@" </dev/null'
PR_SET_PDEATHSIG = 1
GATE_WAIT_S = 2.0            # how long the gate's shell may take to start
GATE_POLL_S = 0.0005


def scenario_command(scenario: str) -> list[str]:
    """A lesson's program, run by the venv's interpreter (unknown lesson: exit 2)."""
    from tracer import lessons

    return [sys.executable, lessons.program_path(scenario)]


def target_user() -> tuple[int, int]:
    owner = invoking_user()
    if owner and owner[0] != 0:
        return owner
    nobody = pwd.getpwnam("nobody")
    return nobody.pw_uid, nobody.pw_gid


LIBC = ctypes.CDLL(None, use_errno=True)     # loaded here, not in the forked child


def _die_with_parent() -> None:
    """In the child before exec: SIGKILL when syspath goes, however it goes."""
    LIBC.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def _pump(stream: Iterator[str], name: str, lines: queue.Queue[OutputLine]) -> None:
    for raw in stream:
        text = raw.rstrip("\n")
        report = None
        if name == "stdout" and text.startswith("{"):
            try:
                report = printable_tree(json.loads(text))
            except json.JSONDecodeError:
                report = None
        lines.put(OutputLine(name, printable(text), report if isinstance(report, dict) else None))


def _sleeps_reading_fd0(pid: int) -> bool:
    """The task sleeps (state S) in a system call on fd 0 (/proc/PID/syscall: the number,
    then the arguments; the shell's only such call is the gate's read)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        call = Path(f"/proc/{pid}/syscall").read_text().split()
    except (OSError, IndexError):
        return False
    return state == "S" and len(call) > 1 and call[1] == "0x0"


class Target:
    """The traced process tree's root: spawned held at the gate, released by go()."""

    def __init__(self, command: Sequence[str], step_fd: int | None = None) -> None:
        gate_read, self.gate = os.pipe()
        uid, gid = target_user()
        env = dict(os.environ, SYSPATH_STEP_FD=str(step_fd)) if step_fd is not None else None
        try:
            self.process = subprocess.Popen(
                ["/bin/sh", "-c", GATE, *command], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                stdin=gate_read, user=uid, group=gid, extra_groups=[], start_new_session=True, text=True,
                errors="replace", cwd="/", env=env, pass_fds=() if step_fd is None else (step_fd,),
                preexec_fn=_die_with_parent)     # noqa: PLW1509 (it only calls prctl: no lock to inherit)
        finally:
            os.close(gate_read)
        self.lines: queue.Queue[OutputLine] = queue.Queue()
        self.pumps = [threading.Thread(target=_pump, args=(stream, name, self.lines), daemon=True)
                      for stream, name in ((self.process.stdout, "stdout"), (self.process.stderr, "stderr"))]
        for pump in self.pumps:
            pump.start()

    @property
    def pid(self) -> int:
        return self.process.pid

    def wait_at_gate(self, timeout_s: float = GATE_WAIT_S) -> bool:
        """Until the gate's shell sleeps in its read of the gate (fd 0): the tree is tracked
        from then on, so the shell's own start (its loader's mmaps) is not recorded as the
        program's. Popen returned after the exec, so a sleeping shell is at the gate. False if
        it did not get there in time (a starved machine): tracking starts anyway."""
        waited = time.monotonic() + timeout_s
        while time.monotonic() < waited:
            if _sleeps_reading_fd0(self.process.pid):
                return True
            time.sleep(GATE_POLL_S)
        return False

    def go(self) -> None:
        os.write(self.gate, b"go\n")
        os.close(self.gate)

    def running(self) -> bool:
        return self.process.poll() is None or any(pump.is_alive() for pump in self.pumps)

    def output(self) -> Iterator[OutputLine]:
        while not self.lines.empty():
            yield self.lines.get_nowait()

    def exit_code(self) -> int:
        """Killed by a signal: reported the way a shell does, 128 + the signal number."""
        code = self.process.wait()
        return code if code >= 0 else 128 - code

    def kill(self) -> None:
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait()
