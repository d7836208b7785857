"""The probe build: which hook stands for each step here, the offsets, the program loaded and attached."""
from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from tracer import catalog, facts, kernel, kfuncs, lessons, paths, stacks
from tracer.btf import BtfError
from tracer.errors import SyspathError
from tracer.lesson import Lesson
from tracer.loader import TREE_FILE, LoadedProgram, fork_hook_define, hook_defines, load
from tracer.offsets import KernelLayout, load_layout
from tracer.preflight import preflight

SYMBOLS_WAIT_S = 0.005


@dataclass
class Startup:
    btf_s: float = 0.0
    compile_s: float = 0.0
    attach_s: float = 0.0
    total_s: float = 0.0
    from_cache: bool = False
    reads: str = ""          # how the probes read kernel fields, and why not the cheaper way

    def line(self) -> str:
        loaded = "loaded from the compile cache" if self.from_cache else "compile+load"
        return (f"probes attached {self.total_s:.2f} s after start (BTF offsets {self.btf_s:.3f} s, "
                f"{loaded} {self.compile_s:.2f} s, attach {self.attach_s:.2f} s); {self.reads}")


@dataclass
class Probes:
    """The hooks chosen for a session and the loaded program that implements them."""

    choices: list[catalog.HookChoice]
    layout: KernelLayout
    program: LoadedProgram
    startup: Startup = field(default_factory=Startup)
    points: dict[str, catalog.PathPoint] = field(default_factory=dict)   # step -> where its path is seen
    with_stacks: bool = True
    symbols: threading.Thread | None = None      # stacks.warm_symbols, still loading when the probes attach

    def wait_for_symbols(self, meanwhile: Callable[[], None]) -> None:
        """Before the first event is named: the symbols' load ends, `meanwhile` called every few
        ms (it empties the kernel's ring, which must not overflow while the names load)."""
        while self.symbols is not None and self.symbols.is_alive():
            self.symbols.join(SYMBOLS_WAIT_S)
            meanwhile()
        self.symbols = None

    @property
    def hooks(self) -> dict[str, str]:
        return {choice.step: choice.hook for choice in self.choices}

    def step_names(self) -> dict[int, str]:
        """The probes' step ids (STEP_* and the path records') -> names."""
        names = dict(enumerate(lessons.step_names()))
        names |= {step_id: f"path at {hook}" for step_id, (_, hook) in stacks.path_steps().items()}
        return names

    def close(self) -> None:
        self.program.close()


def use_perf_buffer(capabilities: dict[str, kernel.Capability]) -> bool:
    """The BPF ring buffer needs 5.8+; SYSPATH_FORCE_PERF_BUFFER=1 tries the fallback anywhere."""
    return os.environ.get("SYSPATH_FORCE_PERF_BUFFER") == "1" or not capabilities["ringbuf"].available


def kernel_view(capabilities: dict[str, kernel.Capability] | None = None) -> catalog.KernelView:
    return facts.live_view(facts.tiers_of(capabilities or kernel.probe_capabilities()))


def kernel_layout() -> KernelLayout:
    try:
        return load_layout()
    except BtfError as error:
        raise SyspathError(f"this kernel's BTF lacks a field syspath reads ({error}): this kernel is not "
                           "supported yet; `syspath probes --mode syscall` and `syspath doctor` show what it has"
                           ) from None


def stacks_wanted() -> bool:
    """SYSPATH_NO_STACKS=1 leaves kernel stacks out (the benchmark measures their cost)."""
    return os.environ.get("SYSPATH_NO_STACKS") != "1"


def resolve_with_paths(scenario: str | None, mode: str, view: catalog.KernelView
                       ) -> tuple[list[catalog.HookChoice], dict[str, catalog.PathPoint]]:
    """The hooks, and where each syscall-tier step's path is seen (its reason says so)."""
    for chosen in lessons.session_lessons(scenario):
        why_not = chosen.cannot_run(view)
        if why_not:
            raise SyspathError(f"{chosen.name} cannot run here: {why_not}")
    choices = catalog.resolve(lessons.hooked_steps_for(scenario), mode, view)
    if not stacks_wanted():
        return choices, {}
    points = stacks.choose_points(choices, view.has_tracepoint)
    return stacks.annotate(choices, points, known_symbols().get), points


def known_symbols() -> dict[str, str]:
    """kallsyms names of the lessons' functions, the article's and the path points' (cached per build)."""
    names = (catalog.all_functions(lessons.all_steps()) | paths.article_names()
             | {point.inside for point in lessons.path_points()})
    return kernel.function_symbols(names)


def choose_hooks(scenario: str | None, mode: str) -> list[catalog.HookChoice]:
    """`syspath probes`: the resolution alone, nothing loaded."""
    preflight(btf=False)
    return resolve_with_paths(scenario, mode, kernel_view())[0]


def load_reading_fields(files: list[str], flags: list[str], perf_buffer: bool,
                        typed_loads: kernel.Capability) -> tuple[LoadedProgram, str]:
    """The program loaded with typed loads where the kernel has them (probes/common.h
    READ_FIELD), else, or if the verifier refuses that program, with a helper call per read."""
    slow = "fields read with bpf_probe_read_kernel"
    if os.environ.get("SYSPATH_NO_TYPED_LOADS") == "1":      # the benchmark measures what they buy
        return load(files, flags, perf_buffer), f"{slow}: SYSPATH_NO_TYPED_LOADS=1"
    if not typed_loads.available:
        return load(files, flags, perf_buffer), f"{slow}: {typed_loads.detail}"
    ids = kfuncs.resolve()
    try:
        return load(files, [*flags, *kfuncs.typed_load_flags(ids)], perf_buffer,
                    kfuncs.slot_targets(ids)), "fields read by typed loads"
    except SyspathError as refused:
        return load(files, flags, perf_buffer), f"{slow}: the typed-load program was refused ({refused})"


def program_source(chosen: Sequence[Lesson], choices: list[catalog.HookChoice], points: dict[str, catalog.PathPoint],
                   layout: KernelLayout, with_stacks: bool = True, extra: Sequence[str] = ()
                   ) -> tuple[list[str], list[str]]:
    """The probes/ files and the -D flags of the program that implements `choices` for the
    `chosen` lessons: what build() loads, and what the tests and the bench compile."""
    emit = stacks.path_defines(points) if with_stacks else ["-DSYSPATH_NO_STACKS"]
    emit += [*extra, *lessons.lesson_defines(chosen, choices), *stacks.slot_defines()]
    found = lessons.program_files(chosen, choices, with_paths=bool(points))
    flags = [*layout.cflags(), *lessons.step_defines(), *hook_defines(choices), *emit,
             *fork_hook_define(found.fork_hooks)]
    return [*found.files, TREE_FILE], flags


def build(scenario: str | None, mode: str) -> Probes:
    started = time.perf_counter()
    preflight()
    # stacks and the files' f_op are named from it: loaded alongside the build and the traced
    # program's start, waited for before the first event is decoded (Probes.wait_for_symbols)
    symbols = threading.Thread(target=stacks.warm_symbols, daemon=True)
    symbols.start()
    capabilities = kernel.probe_capabilities()
    choices, points = resolve_with_paths(scenario, mode, kernel_view(capabilities))
    layout_started = time.perf_counter()
    layout = kernel_layout()
    startup = Startup(btf_s=time.perf_counter() - layout_started)
    emit = [] if capabilities["task_pt_regs"].available else ["-DSYSCALL_ARGS_AT_ENTRY"]
    files, flags = program_source(lessons.session_lessons(scenario), choices, points, layout, stacks_wanted(), emit)
    program, startup.reads = load_reading_fields(files, flags, use_perf_buffer(capabilities),
                                                 capabilities["typed_loads"])
    try:
        program.attach_functions(choices)
    except BaseException:
        program.close()
        raise
    startup.compile_s = program.timings.compile_s
    startup.from_cache = program.from_cache
    startup.attach_s = program.timings.attach_s
    startup.total_s = time.perf_counter() - started
    return Probes(choices, layout, program, startup, points, stacks_wanted(), symbols)
