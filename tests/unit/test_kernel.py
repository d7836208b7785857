"""Kernel facts that need no kernel: tracefs discovery, kallsyms parsing."""
from __future__ import annotations

from pathlib import Path

import pytest

from tracer import kernel


def test_tracefs_missing_and_not_mountable_says_how(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(kernel, "TRACEFS_PATHS", (tmp_path / "tracing", tmp_path / "debug" / "tracing"))
    monkeypatch.setattr(kernel.os, "geteuid", lambda: 1000)          # cannot mount it
    assert kernel.tracefs_dir() is None
    capability = kernel._tracepoint_capability()
    assert not capability.available and "mount -t tracefs tracefs /sys/kernel/tracing" in capability.remedy


def test_tracefs_found_where_it_is_mounted(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "debug" / "tracing" / "events").mkdir(parents=True)
    monkeypatch.setattr(kernel, "TRACEFS_PATHS", (tmp_path / "tracing", tmp_path / "debug" / "tracing"))
    assert kernel.tracefs_dir() == tmp_path / "debug" / "tracing"


def test_kallsyms_keeps_whole_function_clones_only() -> None:
    names = kernel.parse_kallsyms([
        "ffffffff81000000 T do_mmap\n", "ffffffff81000100 t scm_fp_copy.isra.0\n",
        "ffffffff81000200 t copy_process.cold\n", "ffffffff81000300 t shmem_thing.part.0\n",
        "ffffffff81000400 D some_data\n", "ffffffff81000500 t receive_fd.constprop.0.isra.0\n",
    ])
    assert names["do_mmap"] == "do_mmap" and names["scm_fp_copy"] == "scm_fp_copy.isra.0"
    assert "copy_process" not in names and "shmem_thing" not in names and "some_data" not in names
    assert names["receive_fd"] == "receive_fd.constprop.0.isra.0"


def test_typed_loads_say_what_this_kernels_btf_lacks(monkeypatch: pytest.MonkeyPatch) -> None:
    from tracer import kfuncs

    everything = {define: index + 1 for index, define in enumerate(kfuncs.type_requests())}
    no_kfunc = {k: v for k, v in everything.items() if k != "KFUNC_bpf_rdonly_cast"}
    monkeypatch.setattr(kfuncs, "resolve", lambda: no_kfunc)
    found = kernel._typed_loads_capability()
    assert not found.available
    assert found.detail == "this kernel's BTF has no bpf_rdonly_cast (bpf_rdonly_cast came in 6.2)"
    no_struct = {k: v for k, v in everything.items() if k != "BTF_TYPE_UNIX_SOCK"}
    monkeypatch.setattr(kfuncs, "resolve", lambda: no_struct)
    assert kernel._typed_loads_capability().detail == "this kernel's BTF has no unix_sock"
