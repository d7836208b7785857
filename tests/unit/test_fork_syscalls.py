"""arm64 has no fork/vfork syscalls: fork-vs-thread's build leaves their tracepoints out."""
from __future__ import annotations

import pytest

from tracer import kernel, lessons


def test_no_fork_tracepoint_means_no_fork_syscalls_define(monkeypatch: pytest.MonkeyPatch) -> None:
    fork_vs_thread = lessons.lesson("fork-vs-thread")
    monkeypatch.setattr(kernel, "has_tracepoint", lambda category, name: name != "sys_enter_fork")
    assert "-DNO_FORK_SYSCALLS" in fork_vs_thread.defines([])
    monkeypatch.setattr(kernel, "has_tracepoint", lambda category, name: True)
    assert "-DNO_FORK_SYSCALLS" not in fork_vs_thread.defines([])
