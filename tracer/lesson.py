"""What a lesson declares: its steps and their hooks, its payloads, fields and path points.

A lesson is two folders, scenarios/<package>/ (this declaration in lesson.py, its
program, narration, story and views) and probes/<package>/ (its BPF side). The core
reads these declarations and derives everything numbered from them (step ids, the
payload union, stack-sampling slots, path point ids): nothing in tracer/ names a step.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tracer.catalog import FieldRequest, HookChoice, KernelView, PathPoint, Step

# A detail value's JSON shape, checked when a recording is read (tracer/recording.py)
Shape = tuple[Any, ...]


def no_defines(_choices: Sequence[HookChoice]) -> list[str]:
    return []


def runs_anywhere(_kernel: KernelView) -> str:
    return ""


@dataclass(frozen=True)
class Lesson:
    """One lesson, as its scenarios/<package>/lesson.py declares it (LESSON = Lesson(...))."""

    name: str                               # how the CLI and recordings name it, e.g. memfd-share
    summary: str                            # one line, for `syspath lessons`
    package: str                            # its folders: scenarios/<package>/, probes/<package>/
    steps: tuple[Step, ...]
    program: str | None = "program.py"      # what `syspath run NAME` starts, in scenarios/<package>/
    any_program: bool = True                # `syspath trace -- CMD` hooks its steps too
    payload_header: str | None = None       # probes/<package>/ header declaring its payload structs
    files: tuple[str, ...] = ()             # compiled whenever one of its steps is hooked, any tier
    syscall_files: tuple[str, ...] = ()     # compiled when one of its steps is on the syscall tier
    function_files: tuple[str, ...] = ()    # compiled when one of its steps is on kprobe/fentry
    path_file: str | None = None            # its path points' programs, when any point is used
    fork_hook: str | None = None            # C function (ctx, parent, child) the core calls at each fork
    fields: Mapping[str, FieldRequest] = field(default_factory=dict)
    spans: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    cast_types: Mapping[str, str] = field(default_factory=dict)     # AS_KERNEL TYPE -> struct name
    path_points: tuple[PathPoint, ...] = ()
    detail_shapes: Mapping[str, Shape] = field(default_factory=dict)
    renamed: Mapping[str, str] = field(default_factory=dict)        # the article's old names -> today's
    defines: Callable[[Sequence[HookChoice]], list[str]] = no_defines
    extra_cflags: Callable[[Mapping[str, Any]], list[str]] = lambda _members: []
    # why the lesson cannot run on this kernel or machine at all ("" when it can): said in one
    # line before anything is compiled
    cannot_run: Callable[[KernelView], str] = runs_anywhere

    def step(self, name: str) -> Step | None:
        return next((step for step in self.steps if step.name == name), None)
