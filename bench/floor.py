"""The floor under syspath's overhead in the benchmark's loops (bench/run.py runs it).

    floor.py hooks -- COMMAND...     syspath's hooks and its process-tree filter, nothing sent
    floor.py records -- COMMAND...   the same, plus a record a call where a step's hook is,
                                     through the probes' own event path
                                     (probes/common.h): nothing read from the kernel's
                                     objects, no stacks

What separates `records` from syspath is what syspath reads and shows; what separates it
from the untraced loop is the cost of sending that many records at all.

The floor is made from syspath's own program, not a copy of it: the session the benchmark
measures (`syspath trace`, every lesson that applies to any program, in the syscall tier) is
resolved and compiled as `syspath trace` does, and the floor attaches wherever it attaches
(a hook of another lesson's step costs the loop its filter even when the loop never takes the
step): the core's process-tree file as it is, and at every other point a probe that runs
the same filter; where a required step's hook is, it also sends one record a call. In the
selfloop that is as many records a round as syspath sends (8), at other points: syspath sends
two at sendmsg (the message's and one per passed fd) and one at kmem:mm_page_alloc (the
optional memfd_page: only a fault on the lesson's mapping, which the floor, reading nothing,
cannot tell from the loop's other allocations); the floor sends one at sendmsg and two at
mmap:vm_unmapped_area, the hook of fork-vs-thread's thread_stack, where syspath sends none (it
keeps thread stacks only). The floor prints how many records it took. The command starts once
its pid is in the filter, like syspath's gate.
"""
from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tracer import kernel, lessons
from tracer.build import kernel_view, program_source, resolve_with_paths
from tracer.catalog import HookChoice
from tracer.loader import TREE_FILE, program_text, ring_pages, track_thread
from tracer.offsets import load_layout
from tracer.ringbuf import PAGE, RingReader
from tracer.session import POLL_S

SCENARIO = None             # bench/run.py traces with `syspath trace`: every lesson's hooks, not one lesson's
TREE_HOOKS = {"raw_tracepoint:sched_process_fork", "tracepoint:sched:sched_process_exit"}   # the core's tree file


@dataclass(frozen=True, order=True)
class AttachPoint:
    kind: str               # "tracepoint" | "raw_tracepoint"
    name: str               # "group:name" for a tracepoint, the name for a raw one

    @property
    def hook(self) -> str:
        return f"{self.kind}:{self.name}"

    def program(self, sends: bool) -> str:
        """One probe at this point: the tree filter, then one record if `sends`."""
        body = "if (is_tracked()) send(ctx);" if sends else "is_tracked();"
        if self.kind == "raw_tracepoint":
            return f"RAW_TRACEPOINT_PROBE({self.name}) {{ {body} return 0; }}"
        group, name = self.name.split(":", 1)
        return f"TRACEPOINT_PROBE({group}, {name}) {{ void *ctx = args; {body} return 0; }}"


# What a probe does to send an event (common.h new_event, submit_with_stack), without the
# probe's reads: the step is only a number here.
SEND = r"""
static __always_inline void send(void *ctx)
{
#ifdef RECORDS
    struct syspath_event *e = new_event(0);
    if (e)
        submit_with_stack(ctx, e, -1);
#endif
}
"""


def syspath_program() -> tuple[list[str], list[str], list[HookChoice]]:
    """syspath's own program for the scenario in the syscall tier, as `syspath run` builds it."""
    choices, points = resolve_with_paths(SCENARIO, "syscall", kernel_view())
    files, flags = program_source(lessons.session_lessons(SCENARIO), choices, points, load_layout(),
                                  with_stacks=True, extra=entry_stash_flags())
    return files, flags, choices


def entry_stash_flags() -> list[str]:
    return [] if kernel.probe_capabilities()["task_pt_regs"].available else ["-DSYSCALL_ARGS_AT_ENTRY"]


def attach_points(files: list[str], flags: list[str]) -> list[AttachPoint]:
    """Where syspath's program attaches: bcc compiles and attaches it, and says where."""
    from bcc import BPF

    bpf = BPF(text=program_text(files), cflags=[*flags, f"-DRINGBUF_PAGES={ring_pages()}", "-Wno-ignored-attributes"])
    try:
        points = [AttachPoint("tracepoint", tp.decode()) for tp in bpf.tracepoint_fds]
        points += [AttachPoint("raw_tracepoint", tp.decode()) for tp in bpf.raw_tracepoint_fds]
    finally:
        bpf.cleanup()
    return sorted(point for point in points if point.hook not in TREE_HOOKS)


def floor_source(points: list[AttachPoint], choices: list[HookChoice]) -> str:
    """The core's tree file as syspath compiles it (it follows the forks), and at each other point
    of syspath's a probe that filters; one that stands for a step also sends one record a call."""
    optional = {step.name for step in lessons.all_steps() if step.optional}
    stepped = {choice.hook for choice in choices
               if choice.status in ("attached", "fallback") and choice.step not in optional}
    probes = "\n".join(point.program(point.hook in stepped) for point in points)
    return "\n".join((program_text(["common.h", TREE_FILE]), SEND, probes))


def cflags(records: bool) -> list[str]:
    """common.h's fields at this kernel's offsets, read by helper calls (no kfunc rewriting here)."""
    flags = [*load_layout().cflags(), *lessons.step_defines(), f"-DRINGBUF_PAGES={ring_pages()}",
             "-DSYSPATH_NO_STACKS"]
    return flags + (["-DRECORDS"] if records else [])


def run(records: bool, command: list[str]) -> int:
    kernel.use_headers()
    from bcc import BPF

    files, flags, choices = syspath_program()
    points = attach_points(files, flags)
    bpf = BPF(text=floor_source(points, choices), cflags=cflags(records))
    print(f"floor: {len(points)} attach points of syspath's: {' '.join(point.hook for point in points)}",
          file=sys.stderr)
    reader = RingReader(bpf["events"].map_fd, ring_pages() * PAGE)
    gate_read, gate_write = os.pipe()
    child = os.fork()
    if child == 0:
        os.read(gate_read, 1)
        try:
            os.execvp(command[0], command)
        except OSError as error:
            print(f"floor: cannot run {command[0]}: {error.strerror}", file=sys.stderr)
        os._exit(127)
    track_thread(bpf["tracked"].map_fd, child)
    os.write(gate_write, b"go")
    taken = 0
    while True:
        finished, status = os.waitpid(child, os.WNOHANG)
        while (block := reader.read()) is not None:
            taken += len(block.offsets)
        if finished:
            break
        time.sleep(POLL_S)
    print(f"floor: {taken} records taken", file=sys.stderr)
    return os.waitstatus_to_exitcode(status)


def main(argv: list[str]) -> int:
    if len(argv) < 4 or argv[1] not in ("hooks", "records") or argv[2] != "--":
        print(__doc__, file=sys.stderr)
        return 2
    return run(argv[1] == "records", argv[3:])


if __name__ == "__main__":
    sys.exit(main(sys.argv))
