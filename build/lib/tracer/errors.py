"""Errors meant for people: one line, what is wrong and how to fix it."""
from __future__ import annotations


class SyspathError(Exception):
    """A usage or environment problem: printed as one line, exit code 2."""

    exit_code = 2


class Interrupted(Exception):
    """SIGTERM or SIGHUP arrived: unwind like Ctrl-C does, so probes detach and files close."""

    def __init__(self, signal_number: int) -> None:
        super().__init__(f"signal {signal_number}")
        self.exit_code = 128 + signal_number


def interrupt_exit_code(error: BaseException) -> int:
    if isinstance(error, Interrupted):
        return error.exit_code
    return 130 if isinstance(error, KeyboardInterrupt) else 1
