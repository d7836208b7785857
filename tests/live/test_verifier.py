"""Every kernel-function probe passes this kernel's verifier, even where it cannot attach.

This machine has no kprobes, but the verifier still checks BPF_PROG_TYPE_KPROBE
programs at load time (bcc's load_func), so every kprobe/kretprobe body syspath
can build is loaded here, one hook at a time, with the argument positions of a
distro kernel's BTF (Debian 6.12) plus the signatures of older names.
"""
from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from tracer import arch, catalog, kernel, lessons, loader
from tracer.build import program_source
from tracer.catalog import HookChoice, Step
from tracer.facts import KernelFacts, saved_view
from tracer.loader import program_text
from tracer.offsets import load_layout

DEBIAN = Path(__file__).resolve().parents[1] / "unit" / "kernels" / "6.12.117+deb12-amd64.json"
# Functions Debian 6.12 inlines or renamed, as the kernels that have them declare them.
OLDER_SIGNATURES = {"scm_fp_copy": ["cmsg", "fplp"], "__receive_fd": ["file", "ufd", "o_flags"],
                    "dup_mm": ["tsk", "oldmm"], "do_wp_page": ["vmf"], "wp_page_copy": ["vmf"]}


@pytest.fixture(autouse=True, scope="module")
def tracefs_mounted() -> None:
    """bcc's TRACEPOINT_PROBE takes each tracepoint's fields from tracefs, which a fresh boot
    may not have mounted: mounted as syspath's own build mounts it."""
    assert kernel.tracefs_dir() is not None, "tracefs is not mounted and could not be mounted"


def every_kprobe_hook() -> list[HookChoice]:
    facts = KernelFacts.load(DEBIAN)
    everything = dataclasses.replace(
        facts, symbols={name: name for name in catalog.all_functions(lessons.all_steps())},
        functions={**facts.functions, **OLDER_SIGNATURES}, traceable=None,
        tiers={"kprobe": "", "fentry": "", "syscall": ""})
    view = saved_view(everything)
    hooks = []
    for step in lessons.all_steps():
        for hook in step.hooks:
            if hook.tier == "kprobe" and not arch.foreign_wrapper(hook.function or "", arch.machine()):
                hooks.append(catalog.resolve_step(Step(step.name, step.summary, (hook,)), ["kprobe"], view))
    return hooks


def test_every_kprobe_program_passes_the_verifier() -> None:
    from bcc import BPF

    kernel.use_headers()
    choices = every_kprobe_hook()
    native = {name for name in catalog.all_functions(lessons.all_steps())
              if not arch.foreign_wrapper(name, arch.machine())}       # another machine's syscall wrapper
    assert {c.function for c in choices} == native
    assert all(c.status != "unavailable" for c in choices), [c.reason for c in choices]
    loaded = []
    for lesson in lessons.all_lessons():      # each lesson compiled alone, as a session compiles it
        steps = {step.name for step in lesson.steps}
        mine = [choice for choice in choices if choice.step in steps]
        if not mine:
            continue
        files, flags = program_source([lesson], mine, {}, load_layout())
        bpf = BPF(text=program_text(files).encode(),
                  cflags=[*flags, "-DRINGBUF_PAGES=16", "-Wno-ignored-attributes"])
        try:
            for choice in mine:
                names = [f"at_entry_{choice.function}"] * choice.entry + [f"at_return_{choice.function}"] * choice.exit
                for name in names:
                    assert bpf.load_func(name.encode(), BPF.KPROBE).fd >= 0
                    loaded.append(name)
        finally:
            bpf.cleanup()
    assert len(loaded) == len(choices) + sum(c.entry and c.exit for c in choices)     # entry and/or return each


@pytest.mark.parametrize(("perf_buffer", "args_at_entry"), [(False, False), (True, False), (False, True)])
def test_the_syscall_tier_builds_with_any_mix_of_steps(perf_buffer: bool, args_at_entry: bool) -> None:
    """Each memfd step alone on the syscall tier compiles and loads (SYSCALL_STEPS gating),
    also as a kernel older than 5.15 builds it: arguments stashed by entry programs."""
    from bcc import BPF

    kernel.use_headers()
    layout = load_layout()
    memfd = lessons.lesson("memfd-share")
    for step in memfd.steps[:6]:
        choice = HookChoice(step.name, step.hooks[-1].point, "syscall", "fallback", "")
        files, flags = program_source((memfd,), [choice], {}, layout)
        flags += ["-DRINGBUF_PAGES=16", "-Wno-ignored-attributes", *(["-DSYSPATH_PERF_BUFFER"] if perf_buffer else []),
                  *(["-DSYSCALL_ARGS_AT_ENTRY"] if args_at_entry else [])]
        bpf = BPF(text=program_text(files).encode(), cflags=flags)
        bpf.cleanup()


def nth_choice(step: Step, alternative: int) -> str:
    """The step's path point of that rank, or its last where it has fewer."""
    return step.path_points[min(alternative, len(step.path_points) - 1)]


@pytest.mark.parametrize("alternative", [0, 1], ids=["first-choice", "fallback"])
def test_every_path_point_passes_the_verifier(alternative: int) -> None:
    """Every lesson's paths.bpf.c with a point for each step at once (each stack captured at a
    raw tracepoint): its first choice, then its fallback where it has one; together every point."""
    from bcc import BPF

    kernel.use_headers()
    points = {step.name: lessons.path_point(nth_choice(step, alternative))
              for each in lessons.all_lessons() for step in each.steps if step.path_points}
    chosen = {name: point for name, point in points.items() if point is not None}
    assert len(chosen) == len(points), "a step names a path point no lesson declares"
    _, flags = program_source(lessons.all_lessons(), [], chosen, load_layout())
    path_files = [f"{each.package}/{each.path_file}" for each in lessons.all_lessons() if each.path_file]
    bpf = BPF(text=program_text(path_files).encode(), cflags=[*flags, "-DRINGBUF_PAGES=16", "-Wno-ignored-attributes"])
    try:
        assert bpf.num_open_kprobes() == 0 and len(bpf.raw_tracepoint_fds) == len(set(chosen.values()))
    finally:
        bpf.cleanup()


def test_the_two_passes_compile_every_path_point() -> None:
    covered = {nth_choice(step, alternative) for alternative in (0, 1)
               for each in lessons.all_lessons() for step in each.steps if step.path_points}
    assert covered == {point.tracepoint for point in lessons.path_points()}


# A 32-bit fetch-and-add whose result is used: bcc's LLVM aborts the whole process on it
# (report_fatal_error: "Invalid usage of the XADD return value") instead of returning an error.
LLVM_ABORT = """
BPF_ARRAY(counts, u32, 1);
TRACEPOINT_PROBE(syscalls, sys_enter_getppid)
{
    int zero = 0;
    u32 *count = counts.lookup(&zero);
    if (count && __sync_fetch_and_add(count, 1) == 7)
        bpf_trace_printk("seven\\n");
    return 0;
}
"""


def test_a_compiler_that_aborts_leaves_one_line_saying_so(tmp_path: Path) -> None:
    import subprocess
    import sys

    from tests.live.conftest import REPO
    script = ("from tracer import kernel, loader\nkernel.use_headers()\n"
              f"loader._compile(['crash.bpf.c'], {LLVM_ABORT!r}, ['-Wno-ignored-attributes'], False, {{}})\n")
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=120)
    if done.returncode == 0:
        pytest.skip("this bcc's LLVM compiles a used 32-bit fetch-and-add: nothing here aborts it")
    assert done.returncode == -6, done.stderr             # SIGABRT, from LLVM
    said = [line for line in done.stderr.splitlines() if line.strip()]
    expected = re.escape("syspath: " + loader.COMPILER_CRASHED).replace(
        re.escape("{error}"), r"LLVM ERROR: line \d+: Invalid usage of the XADD return value")
    assert len(said) == 1 and re.fullmatch(expected, said[0]), said
