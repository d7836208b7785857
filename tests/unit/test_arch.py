"""tracer/arch.py: what differs per machine, and resolution that uses it (no kernel needed)."""
from __future__ import annotations

import dataclasses
from pathlib import Path

from tracer import arch, catalog, lessons
from tracer.catalog import HookChoice, KernelView
from tracer.facts import KernelFacts, saved_view
from tracer.offsets import SYSCALL_ARG_DEFINES, syscall_arg_fields


def resolve(lesson: str, mode: str, view: KernelView) -> list[HookChoice]:
    return catalog.resolve(lessons.hooked_steps_for(lesson), mode, view)

KERNELS = Path(__file__).parent / "kernels"


def test_wrapper_names_per_machine() -> None:
    assert arch.syscall_wrapper("memfd_create", "x86_64") == "__x64_sys_memfd_create"
    assert arch.syscall_wrapper("memfd_create", "aarch64") == "__arm64_sys_memfd_create"
    assert arch.syscall_wrapper("memfd_create", "riscv64") is None
    assert arch.foreign_wrapper("__x64_sys_memfd_create", "aarch64")
    assert not arch.foreign_wrapper("__arm64_sys_memfd_create", "aarch64")
    assert not arch.foreign_wrapper("__x64_sys_memfd_create", "riscv64")   # unknown machine: nothing filtered


def test_fentry_on_arm64_needs_direct_calls() -> None:
    assert "no ftrace direct calls" in arch.fentry_unavailable("aarch64", "6.1.0-57-arm64")
    assert arch.fentry_unavailable("aarch64", "6.12.118+deb12-arm64") == ""
    assert arch.fentry_unavailable("x86_64", "5.10.0-46-amd64") == ""
    assert "x0-x7" in arch.describe("aarch64", "6.12.118+deb12-arm64")


def test_syscall_arguments_sit_in_orig_x0_and_regs_on_arm64() -> None:
    fields = syscall_arg_fields("aarch64")
    assert fields[SYSCALL_ARG_DEFINES[0]] == ("pt_regs", ("orig_x0",), 8)
    assert fields[SYSCALL_ARG_DEFINES[1]] == ("pt_regs", ("regs",), 0)
    assert syscall_arg_fields("x86_64")["PT_REGS_DI"] == ("pt_regs", ("di",), 8)


def as_arm64(facts: KernelFacts) -> KernelFacts:
    """An x86 kernel's facts with arm64's wrapper: what resolution must do with the machine's name."""
    symbols = {("__arm64_sys_memfd_create" if k == "__x64_sys_memfd_create" else k): v.replace("__x64_", "__arm64_")
               for k, v in facts.symbols.items()}
    functions = {("__arm64_sys_memfd_create" if k == "__x64_sys_memfd_create" else k): v
                 for k, v in facts.functions.items()}
    traceable = [t.replace("__x64_", "__arm64_") for t in facts.traceable or []]
    return dataclasses.replace(facts, machine="aarch64", symbols=symbols, functions=functions, traceable=traceable)


def test_resolution_takes_the_running_machines_wrapper_and_never_the_other() -> None:
    debian = KernelFacts.load(KERNELS / "6.12.118+deb12-amd64.json") if (
        KERNELS / "6.12.118+deb12-amd64.json").exists() else KernelFacts.load(KERNELS / "6.12.117+deb12-amd64.json")
    x86 = {c.step: c for c in resolve("memfd-share", "kprobe", saved_view(debian))}
    assert x86["memfd_create"].hook == "kretprobe:__x64_sys_memfd_create"
    assert "__arm64" not in x86["memfd_create"].reason
    arm = {c.step: c for c in resolve("memfd-share", "kprobe", saved_view(as_arm64(debian)))}
    assert arm["memfd_create"].hook == "kretprobe:__arm64_sys_memfd_create"
    assert "__x64" not in arm["memfd_create"].reason


def test_arm64_trampolines_take_eight_arguments() -> None:
    debian = KernelFacts.load(KERNELS / "6.12.117+deb12-amd64.json")
    arm = {c.step: c for c in resolve("memfd-share", "fentry", saved_view(as_arm64(debian)))}
    assert arm["do_mmap"].status == "unavailable"            # do_mmap takes 9 on 6.12
    assert "at most 8" in arm["do_mmap"].reason


def saved_kernels() -> list[KernelFacts]:
    return [KernelFacts.load(path) for path in sorted(KERNELS.glob("*.json"))]


def test_every_saved_kernel_resolves_both_lessons_in_each_tier_it_allows() -> None:
    """tests/unit/kernels/ holds the facts make test-matrix saved from each kernel it booted."""
    for facts in saved_kernels():
        for mode in ("kprobe", "fentry", "syscall"):
            if facts.tiers.get(mode, "unknown"):
                continue
            for lesson in ("memfd-share", "fork-vs-thread"):
                chosen = {c.step: c for c in resolve(lesson, mode, saved_view(facts))}
                wrapper = chosen.get("memfd_create")
                if wrapper and wrapper.function and "_sys_" in wrapper.function:
                    assert wrapper.function == arch.syscall_wrapper("memfd_create", facts.machine), facts.release
                if lesson == "memfd-share":
                    assert chosen["receive_fd"].status != "unavailable", (facts.release, mode, chosen["receive_fd"])


def test_debian_arm64_6_12_hooks_its_own_wrapper_and_leaves_do_mmap_out_of_fentry() -> None:
    """Saved from Debian's arm64 6.12 booted by make test-matrix."""
    facts = KernelFacts.load(KERNELS / "6.12.118+deb12-arm64.json")
    assert facts.machine == "aarch64" and facts.tiers == {"kprobe": "", "fentry": "", "syscall": ""}
    kprobe = {c.step: c for c in resolve("memfd-share", "kprobe", saved_view(facts))}
    assert kprobe["memfd_create"].hook == "kretprobe:__arm64_sys_memfd_create"
    assert kprobe["receive_fd"].hook == "kretprobe:receive_fd"
    assert kprobe["scm_fp_copy"].status == "fallback" and kprobe["scm_fp_copy"].hook == "kretprobe:__scm_send"
    fentry = {c.step: c for c in resolve("memfd-share", "fentry", saved_view(facts))}
    assert fentry["do_mmap"].status == "unavailable" and "at most 8" in fentry["do_mmap"].reason
    assert fentry["memfd_create"].hook == "fexit:__arm64_sys_memfd_create"


def test_fork_cow_runs_on_x86_64_only_and_says_why_elsewhere() -> None:
    """fork-cow walks x86-64 page tables and reads x86 fault error codes: on each saved arm64
    kernel it refuses in one sentence naming the machine; on each x86-64 kernel it runs."""
    machines = set()
    for facts in saved_kernels():
        why_not = lessons.lesson("fork-cow").cannot_run(saved_view(facts))
        machines.add(facts.machine)
        if facts.machine == "x86_64":
            assert why_not == "", facts.release
        else:
            assert "x86-64 page tables" in why_not and facts.machine in why_not, (facts.release, why_not)
    assert {"x86_64", "aarch64"} <= machines
    assert lessons.lesson("memfd-share").cannot_run(saved_view(saved_kernels()[0])) == ""


def test_fork_cow_mm_copy_follows_each_kernels_kmem_cache_alloc() -> None:
    """Saved by make test-matrix: 5.10's kmem_cache_alloc passes no struct kmem_cache (said);
    6.1, 6.12 and 7.x pass it, so mm_copy is hooked there."""
    for facts in saved_kernels():
        if facts.machine != "x86_64" or not facts.release.endswith("-amd64"):
            continue
        mm_copy = {c.step: c for c in resolve("fork-cow", "syscall", saved_view(facts))}["mm_copy"]
        if facts.release.startswith("5.10."):
            assert mm_copy.status == "unavailable" and "passes no 's' argument" in mm_copy.reason, mm_copy.reason
        elif "__bpf_trace_kmem_cache_alloc" in facts.functions:
            assert mm_copy.hook == "tracepoint:kmem:kmem_cache_alloc", (facts.release, mm_copy.reason)
