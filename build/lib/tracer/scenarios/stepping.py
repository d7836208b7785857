"""How scenarios talk to syspath: JSON report lines, and step mode.

Reports go to stdout as one JSON object per line. Several processes share that
pipe, so each line is one write(2) (atomic below PIPE_BUF): print() may split it.

Step mode (`syspath run --step/--pace`): pause before each step.

syspath hands the scenario the read end of a pipe (SYSPATH_STEP_FD). Before a
step, a process announces it on stdout ({"role", "pause"}) and blocks until
syspath writes one byte: after Enter (--step) or a delay (--pace).
"""
from __future__ import annotations

import json
import os
from typing import Any

STEP_FD = int(os.environ.get("SYSPATH_STEP_FD", "-1"))


def emit(record: dict[str, Any]) -> None:
    os.write(1, (json.dumps(record) + "\n").encode())


def report(role: str, say: str, **facts: Any) -> None:
    emit({"role": role, "say": say, **facts})


def pause(role: str, next_step: str) -> None:
    if STEP_FD < 0:
        return
    emit({"role": role, "pause": next_step})
    os.read(STEP_FD, 1)


def step_fds() -> list[int]:
    """Fds a child process must inherit so that it can pause too."""
    return [STEP_FD] if STEP_FD >= 0 else []
