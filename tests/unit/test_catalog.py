"""Resolution against saved kernel facts, not the running kernel."""
from __future__ import annotations

import pytest

from tracer import catalog
from tracer.catalog import KernelView, resolve
from tracer.errors import SyspathError

ALL_TRACEPOINTS = {"syscalls/sys_enter_memfd_create", "syscalls/sys_exit_memfd_create", "syscalls/sys_enter_mmap",
                   "syscalls/sys_exit_mmap", "syscalls/sys_enter_sendmsg", "syscalls/sys_enter_recvmsg",
                   "syscalls/sys_exit_recvmsg"}
# This project's machines (6.18, custom): tracepoints only.
TRACEPOINTS_ONLY = {"kprobe": "kprobe_events missing", "fentry": "EPERM", "syscall": ""}


def view(tiers: dict[str, str], tracepoints: set[str] = ALL_TRACEPOINTS) -> KernelView:
    return KernelView(tiers=tiers, has_symbol=lambda name: False,
                      has_tracepoint=lambda cat, name: f"{cat}/{name}" in tracepoints)


def test_syscall_tier_observes_every_memfd_step() -> None:
    choices = {c.step: c for c in resolve("memfd-share", "auto", view(TRACEPOINTS_ONLY))}
    assert set(choices) == {"memfd_create", "shmem_file_setup", "do_mmap", "unix_stream_sendmsg",
                            "scm_fp_copy", "receive_fd"}
    assert choices["memfd_create"].status == "attached"
    assert choices["memfd_create"].hook == "tracepoint:syscalls:sys_exit_memfd_create"
    for step in ("shmem_file_setup", "do_mmap", "unix_stream_sendmsg", "scm_fp_copy", "receive_fd"):
        assert choices[step].status == "fallback"
        assert f"{step} is not hooked as a function here" in choices[step].reason


def test_missing_tracepoint_makes_the_step_unavailable_with_the_reason() -> None:
    choices = {c.step: c for c in resolve("memfd-share", "auto",
                                          view(TRACEPOINTS_ONLY, ALL_TRACEPOINTS - {"syscalls/sys_exit_recvmsg"}))}
    assert choices["receive_fd"].status == "unavailable"
    assert "syscalls:sys_exit_recvmsg does not exist" in choices["receive_fd"].reason
    assert choices["memfd_create"].status == "attached"


def test_mode_the_kernel_cannot_do_names_what_it_can() -> None:
    with pytest.raises(SyspathError, match=r"mode kprobe is not available.*kprobe_events missing.*can do: syscall"):
        resolve("memfd-share", "kprobe", view(TRACEPOINTS_ONLY))


def test_no_tier_at_all() -> None:
    with pytest.raises(SyspathError, match="allows no tracing tier"):
        resolve("memfd-share", "auto", view({"kprobe": "a", "fentry": "b", "syscall": "c"}))


def test_unknown_mode() -> None:
    with pytest.raises(SyspathError, match="unknown mode"):
        catalog.allowed_tiers("ebpf", view(TRACEPOINTS_ONLY))


def test_step_ids_are_stable_and_unique() -> None:
    defines = catalog.step_defines()
    assert defines[0] == "-DSTEP_MEMFD_CREATE=0"
    assert len(set(catalog.ALL_STEP_NAMES)) == len(catalog.ALL_STEP_NAMES)
