"""Steps and the hooks that can observe them, and the resolution that picks one per step.

A step is a moment of a lesson's kernel story (design.md fixes the names); the lessons
declare their steps (scenarios/<lesson>/lesson.py) with candidate hooks, best first.
Resolution picks, per step, the first one the running kernel allows and says why it
was chosen or why nothing could be.
"""
from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from tracer import arch
from tracer.errors import SyspathError
from tracer.events import CStruct

TIERS = ("kprobe", "fentry", "syscall")
MODES = ("auto", *TIERS)


FUNCTION_TIERS = ("kprobe", "fentry")
# x86-64 passes six arguments in registers (PT_REGS_PARM1..6); probes/kfunc.h reads the next
# two from the stack above the return address, where they are at a kprobe on the entry
KPROBE_ARGS = 8


@dataclass(frozen=True)
class Hook:
    tier: str
    point: str                      # how recordings name it: "kretprobe:shmem_file_setup"
    reads: str = ""                 # what the hook reads, for people
    direct: bool = True             # False: stands in for a kernel function it cannot hook
    needs_tracepoints: tuple[str, ...] = ()   # "category/name"
    function: str | None = None     # kprobe/fentry tiers: the kernel function hooked
    entry: bool = False             # a program at the function's entry
    exit: bool = False              # a program at its return
    params: tuple[str, ...] = ()    # parameters read; their positions come from BTF
    any_mode: bool = False          # a tracepoint that every mode may use (no function stands for it)
    # a raw tracepoint's body reads `params` by name: the BTF function whose parameters are the
    # tracepoint's arguments on this kernel (include/trace/bpf_probe.h: __bpf_trace_<event>)
    raw_proto: str | None = None


@dataclass(frozen=True)
class PathPoint:
    """A tracepoint that fires inside a step's kernel path."""

    tracepoint: str          # "category/name"
    inside: str              # the kernel function it fires in (as the source names it)
    when: str                # "before": fires before the step's event; "after": once it was sent

    @property
    def hook(self) -> str:
        return "tracepoint:" + self.tracepoint.replace("/", ":")

    @property
    def define(self) -> str:
        return "PATH_" + self.tracepoint.split("/")[1].upper()


@dataclass(frozen=True)
class Payload:
    """What a step's records carry after the header: a member of union syspath_payload (the
    C struct in the lesson's probes/ header), its Python mirror and how its detail reads it."""

    member: str                     # its name in the union: "memfd"
    struct: CStruct                 # the mirror; struct.name is the C struct's name
    decode: Callable[..., dict[str, Any]]   # takes the members in order, returns the detail


# A field the probes read: define name -> (struct, candidate member paths, size in bytes or 0 for any)
FieldRequest = tuple[str, tuple[str, ...], int]


# What the core's services need to know of a step, whatever its name (Step.roles)
MAPS_FILE = "maps_file"            # its event is a mapping of its struct file (detail address, length)
PASSES_FILE = "passes_file"        # its event is a struct file passed between processes
PAGE_FRAME = "page_frame"          # the page-frame service (tracer/pages.py) emits its events
FROM_USER_SPACE = "from_user_space"   # observed from user space: no kernel path
RELEASES_FILE = "releases_file"    # seen once the file's last reference went: no count to read


@dataclass(frozen=True)
class Step:
    name: str
    summary: str
    hooks: tuple[Hook, ...]
    optional: bool = False          # an extra step: shown when the kernel lets it be hooked
    payload: Payload | None = None
    path_points: tuple[str, ...] = ()   # syscall tier: tracepoints inside its path, best first
    one_event_per_call: bool = False    # a path record belongs to one event (else several share it)
    # several events a call (one per fd of a message): the last of them, from its detail; its
    # path record goes no further (a sampled-out record is never sent: the next call has none)
    last_of_call: Callable[[dict[str, Any]], bool] | None = None
    roles: frozenset[str] = frozenset()


@dataclass(frozen=True)
class HookChoice:
    step: str
    hook: str
    tier: str | None
    status: str                     # "attached" | "fallback" | "unavailable"
    reason: str
    function: str | None = None
    symbol: str | None = None       # the kallsyms name to attach to (maybe a .isra clone)
    entry: bool = False
    exit: bool = False
    arg_index: tuple[tuple[str, int], ...] = ()   # (parameter, position) from BTF
    nargs: int = 0
    reads: str = ""                 # what the hook reads, for people
    not_used: tuple[tuple[str, str], ...] = ()    # (hook, why this kernel refused it), best first
    tiers_out: tuple[tuple[str, str], ...] = ()   # (tier, why the session does not use it)

    def as_record(self) -> dict[str, Any]:
        """The session header's entry: design.md's four fields (reason whole, for people and for
        older readers), then its parts, so that views need not take the reason apart."""
        return {"step": self.step, "hook": self.hook, "status": self.status, "reason": self.reason,
                "reads": self.reads, "not_used": [list(pair) for pair in self.not_used],
                "tiers_out": dict(self.tiers_out)}


def syscall_hook(point: str, tracepoints: tuple[str, ...], reads: str, direct: bool = False) -> Hook:
    """A syscall tracepoint standing for a step (direct: it is the step itself)."""
    return Hook("syscall", f"tracepoint:syscalls:{point}", reads, direct, tracepoints)


def function_hooks(function: str, reads: str, params: tuple[str, ...] = (), entry: bool = True,
              exit: bool = True, direct: bool = True) -> tuple[Hook, ...]:
    """The same kernel function hooked by kprobe and by fentry (the C body is shared)."""
    kprobe = f"kretprobe:{function}" if exit else f"kprobe:{function}"
    fentry = f"fexit:{function}" if exit else f"fentry:{function}"
    return tuple(Hook(tier, point, reads, direct, (), function, entry, exit, params)
                 for tier, point in (("kprobe", kprobe), ("fentry", fentry)))


@dataclass(frozen=True)
class KernelView:
    """What resolution needs to know about the kernel (the running one, or saved facts)."""

    tiers: dict[str, str]                              # tier -> "" when usable, else why not
    symbol: Callable[[str], str | None]                # function -> its kallsyms name
    params: Callable[[str], list[str] | None]          # function -> BTF parameter names
    is_traceable: Callable[[str], bool | None]         # ftrace can hook it (None: unknown)
    has_tracepoint: Callable[[str, str], bool]
    release: str = ""                                  # uname -r
    machine: str = ""                                  # uname -m (tracer/arch.py's key)

    @property
    def trampoline_args(self) -> int:
        """The most arguments an fentry/fexit program's function may take: x86-64's BPF
        trampoline saved 6 until Linux 6.4 raised it to 12 (arch/x86/net/bpf_jit_comp.c,
        arch_prepare_bpf_trampoline returns -ENOTSUPP beyond)."""
        version = tuple(int(part) for part in re.findall(r"\d+", self.release)[:2])
        if self.machine == "aarch64":      # arch/arm64/net/bpf_jit_comp.c: arguments in x0-x7 only
            return 8
        return 12 if not version or version >= (6, 4) else 6


def allowed_tiers(mode: str, kernel: KernelView) -> list[str]:
    """The tiers a session may use. A session hooks functions one way (kprobe or
    fentry: the C wrappers are built for one of them), so auto takes the first usable."""
    if mode not in MODES:
        raise SyspathError(f"unknown mode {mode!r}: choose one of {', '.join(MODES)}")
    usable = [tier for tier in TIERS if not kernel.tiers.get(tier, "unknown")]
    if mode == "auto":
        if not usable:
            raise SyspathError("this kernel allows no tracing tier: " + _tier_reasons(kernel))
        functions = [tier for tier in usable if tier in FUNCTION_TIERS][:1]
        return [*functions, *(tier for tier in usable if tier not in FUNCTION_TIERS)]
    if mode not in usable:
        can = ", ".join(usable) or "none"
        raise SyspathError(f"mode {mode} is not available on this kernel ({kernel.tiers[mode]}); "
                           f"modes it can do: {can}")
    return [mode]


def _tier_reasons(kernel: KernelView) -> str:
    return "; ".join(f"{tier}: {why}" for tier, why in kernel.tiers.items() if why)


def _function_missing(hook: Hook, kernel: KernelView) -> str:
    function = hook.function or ""
    symbol = kernel.symbol(function)
    if symbol is None:
        return f"{function} is not in kallsyms (inlined into its caller or renamed on this kernel)"
    params = kernel.params(function)
    if params is None and (hook.params or hook.tier == "fentry"):
        return f"{function} has no BTF signature here, so its arguments cannot be located"
    if symbol != function and (hook.params or hook.tier == "fentry"):
        return f"only the compiler's clone {symbol} exists; its arguments may have moved"
    if hook.tier == "fentry" and params is not None and len(params) > kernel.trampoline_args:
        return (f"{function} takes {len(params)} arguments, and this kernel's BPF trampolines take at most "
                f"{kernel.trampoline_args} (12 from Linux 6.4): fentry cannot attach")
    # kernel/trace/trace_kprobe.c refuses notrace functions too (unless
    # CONFIG_KPROBE_EVENTS_ON_NOTRACE), as bcc attaches kprobes through it.
    if kernel.is_traceable(function) is False:
        return f"{function} is notrace here (not in available_filter_functions): {hook.tier} cannot attach"
    known = params or []
    for param in hook.params:
        if param not in known:
            return f"{function}({', '.join(known)}) has no parameter {param!r} on this kernel"
        if hook.tier == "kprobe" and known.index(param) >= KPROBE_ARGS:
            return f"{function}'s {param!r} is argument {known.index(param) + 1}, beyond what a kprobe reads"
    return ""


def _raw_args_missing(hook: Hook, kernel: KernelView) -> str:
    """A raw tracepoint passes its TP_PROTO's arguments, which change between releases."""
    if not hook.raw_proto:
        return ""
    known = kernel.params(hook.raw_proto) or []
    absent = [param for param in hook.params if param not in known]
    if not absent:
        return ""
    missing = ", ".join(repr(param) for param in absent)
    noun = "argument" if len(absent) == 1 else "arguments"
    how = f"it passes ({', '.join(known[1:])})" if known else f"its BTF has no {hook.raw_proto}: another prototype"
    return (f"{hook.point.removeprefix('tracepoint:')} passes no {missing} {noun} on this kernel ({how}); a "
            f"kernel whose tracepoint passes {missing} would")


def _missing(hook: Hook, kernel: KernelView) -> str:
    if hook.function:
        return _function_missing(hook, kernel)
    for tracepoint in hook.needs_tracepoints:
        if not kernel.has_tracepoint(*tracepoint.split("/")):
            return f"tracepoint {tracepoint.replace('/', ':')} does not exist here"
    return _raw_args_missing(hook, kernel)


def _choice(step: Step, hook: Hook, kernel: KernelView, not_used: list[tuple[str, str]],
            tiers_out: dict[str, str]) -> HookChoice:
    if hook.direct:
        status, reason = "attached", hook.reads
    else:
        first = not_used[0][1] if not_used else (_tier_notes(tiers_out) or [""])[0]
        why = f" ({first})" if first else ""
        status = "fallback"
        reason = f"{step.name} is not hooked as a function here{why}; observed at {hook.point}: {hook.reads}"
    if not_used:
        reason += f" [not used: {'; '.join(f'{point}: {why}' for point, why in not_used)}]"
    made = HookChoice(step.name, hook.point, hook.tier, status, reason, reads=hook.reads,
                      not_used=tuple(not_used), tiers_out=tuple(tiers_out.items()))
    if not hook.function:
        return made
    params = kernel.params(hook.function) or []
    return dataclasses.replace(made, function=hook.function, symbol=kernel.symbol(hook.function),
                               entry=hook.entry, exit=hook.exit, nargs=len(params),
                               arg_index=tuple((param, params.index(param)) for param in hook.params))


def _tier_notes(tiers_out: dict[str, str]) -> list[str]:
    return [f"{tier} tier: {why}" for tier, why in tiers_out.items()]


def resolve_step(step: Step, tiers: Sequence[str], kernel: KernelView,
                 left_out: str = "this session uses another tier") -> HookChoice:
    not_used: list[tuple[str, str]] = []
    tiers_out: dict[str, str] = {}
    for hook in step.hooks:
        if hook.function and arch.foreign_wrapper(hook.function, kernel.machine):
            continue                            # another architecture's syscall wrapper
        if hook.tier not in tiers and not hook.any_mode:
            tiers_out.setdefault(hook.tier, kernel.tiers.get(hook.tier) or left_out)
            continue
        missing = _missing(hook, kernel)
        if missing:
            not_used.append((hook.point, missing))
            continue
        return _choice(step, hook, kernel, not_used, tiers_out)
    refused = [f"{point}: {why}" for point, why in not_used]
    return HookChoice(step.name, "", None, "unavailable",
                      "; ".join(refused + _tier_notes(tiers_out)) or "no hook in the catalog for this step",
                      not_used=tuple(not_used), tiers_out=tuple(tiers_out.items()))


def resolve(steps: Sequence[Step], mode: str, kernel: KernelView) -> list[HookChoice]:
    tiers = allowed_tiers(mode, kernel)
    left_out = f"--mode {mode} leaves it out" if mode != "auto" else f"functions are hooked with {tiers[0]} here"
    return [resolve_step(step, tiers, kernel, left_out) for step in steps]


def tracepoint_hook(category: str, name: str, reads: str) -> Hook:
    """A tracepoint that is the step itself, on every tier (no function stands for it)."""
    return Hook("syscall", f"tracepoint:{category}:{name}", reads, True, (f"{category}/{name}",), any_mode=True)


def all_functions(steps: Sequence[Step]) -> set[str]:
    return {hook.function for step in steps for hook in step.hooks if hook.function}


def raw_protos(steps: Sequence[Step]) -> set[str]:
    """The BTF functions that name raw tracepoints' arguments (facts save their parameters)."""
    return {hook.raw_proto for step in steps for hook in step.hooks if hook.raw_proto}


def all_tracepoints(steps: Sequence[Step]) -> set[str]:
    return {tp for step in steps for hook in step.hooks for tp in hook.needs_tracepoints}
