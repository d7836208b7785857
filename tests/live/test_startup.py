"""A warm start loads the compiled probes from the compile cache and tells the same story."""
from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from tests.live.conftest import REPO, read_jsonl
from tracer import objcache

KERNEL_STEPS_WITH_PATHS = {"do_mmap", "unix_stream_sendmsg", "scm_fp_copy", "receive_fd", "in_flight"}


def record(path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([sys.executable, "-m", "tracer", "run", "memfd-share", "--no-live", "--record", str(path)],
                          cwd=REPO, env={**os.environ, **env}, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr
    return done


def story(records: list[dict]) -> tuple[Counter[tuple[str, str]], set[str]]:
    """What each process did in the kernel (steps per comm), and the steps that got a stack."""
    kernel_events = [r for r in records if r["type"] == "event" and r["step"] != "page"]
    return (Counter((r["comm"], r["step"]) for r in kernel_events),
            {r["step"] for r in kernel_events if r.get("stack")})


def test_a_cached_start_records_what_a_compiled_one_does(tmp_path: Path) -> None:
    compiled = record(tmp_path / "compiled.jsonl", SYSPATH_NO_CACHE="1")
    record(tmp_path / "first.jsonl")                     # saves the program, unless an earlier run did
    cached = record(tmp_path / "cached.jsonl")
    assert "compile+load" in compiled.stderr
    assert "loaded from the compile cache" in cached.stderr, cached.stderr
    steps, with_stacks = story(read_jsonl(tmp_path / "compiled.jsonl"))
    assert story(read_jsonl(tmp_path / "cached.jsonl")) == (steps, with_stacks)
    assert with_stacks >= KERNEL_STEPS_WITH_PATHS
    sent = [r for r in read_jsonl(tmp_path / "cached.jsonl") if r["type"] == "event"]
    [created] = [r for r in sent if r["step"] == "memfd_create"]
    [received] = [r for r in sent if r["step"] == "receive_fd"]
    assert created["file"] == received["file"] and created["fd"] != received["fd"]


def test_a_cached_program_the_kernel_refuses_leaves_nothing_open() -> None:
    before = len(os.listdir("/proc/self/fd"))
    broken = objcache.CachedObject(
        maps=[objcache.CachedMap("tracked", 3, 1, 4, 1, 16, 0)],                   # a BPF_MAP_TYPE_HASH
        programs=[objcache.CachedProgram("tracepoint__syscalls__sys_enter_getpid", "AAAAAAAAAAA=")],
        license="GPL", kern_version=0)
    with pytest.raises(objcache.CacheError):
        objcache.load(broken)
    assert len(os.listdir("/proc/self/fd")) == before


def facts_of_the_memfd(records: list[dict]) -> list[tuple]:
    """What the probes read of the memfd's struct file, event by event, without the addresses
    that change from run to run: its steps, refcounts, kind, name, f_op, vma and skb. Only
    events from its creation on, and with its inode: a file closed earlier, or opened after it
    was freed (a shell's library mapped at the end), may have had the same address."""
    events = [r for r in records if r["type"] == "event"]
    [created] = [r for r in events if r["step"] == "memfd_create"]
    facts = []
    for event in events:
        if (event.get("file") != created["file"] or event["inode"] != created["inode"] or event["step"] == "page"
                or event["ts_ns"] < created["ts_ns"]):
            continue
        detail = event["detail"]
        facts.append((event["comm"], event["step"], event["refcount"], detail.get("file_kind"), detail.get("file_name"),
                      detail.get("f_op_read"),
                      tuple(detail.get("vm_flags", ())), detail.get("vm_file") == created["file"] or None,
                      bool(detail.get("vma")), detail.get("pgoff"), bool(detail.get("skb")), detail.get("index")))
    return facts


def test_typed_loads_read_what_helper_reads_read(tmp_path: Path) -> None:
    from tracer import kernel

    if not kernel.probe_capabilities()["typed_loads"].available:
        pytest.skip(f"no typed loads here: {kernel.probe_capabilities()['typed_loads'].detail}")
    typed = record(tmp_path / "typed.jsonl")
    helpers = record(tmp_path / "helpers.jsonl", SYSPATH_NO_TYPED_LOADS="1")
    assert "; fields read by typed loads" in typed.stderr, typed.stderr
    assert "; fields read with bpf_probe_read_kernel: SYSPATH_NO_TYPED_LOADS=1" in helpers.stderr, helpers.stderr
    read_typed, read_by_helpers = (read_jsonl(tmp_path / name) for name in ("typed.jsonl", "helpers.jsonl"))
    assert story(read_typed) == story(read_by_helpers)
    facts = facts_of_the_memfd(read_typed)
    assert facts == facts_of_the_memfd(read_by_helpers)
    steps = {fact[1] for fact in facts}
    assert {"memfd_create", "do_mmap", "scm_fp_copy", "in_flight", "receive_fd"} <= steps
    assert all(fact[3] == "memfd" and fact[4] == "syspath-demo" and fact[5] == "shmem_file_read_iter"
               for fact in facts), facts
