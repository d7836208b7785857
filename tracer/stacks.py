"""Kernel stacks: captured by the probes, symbolized once per stack id, given to each event.

On the kprobe/fentry tiers the stack is the one at the hooked function. On the syscall
tier the syscall tracepoint only sees the syscall's entry or exit, so tracepoints that
fire *inside* each step (probes/paths.bpf.c) send path records, and PathJoiner gives
their stack to the step's event of the same thread and syscall.
"""
from __future__ import annotations

import dataclasses
import functools
from collections import OrderedDict, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from tracer import lessons
from tracer.catalog import HookChoice, PathPoint, Step
from tracer.events import Event

STACK_DEPTH = 64            # frames kept per stack (syscall paths here are 8-25 deep)
STACK_BUCKETS = 4096        # stack map buckets: ~50 distinct stacks collide rarely (n^2/2N)
PATH_STEP_BASE = 200        # path records' step ids: PATH_STEP_BASE + point index
PATH_STEP = "path"          # how a path record is named once decoded (never recorded)
MAX_PATH_AGE_NS = 1_000_000_000   # a path record older than this belongs to another syscall
KEPT_PATH_THREADS = 4096    # threads whose latest path records are remembered


# Frames the tracing machinery adds at the innermost end of a stack.
UNNAMED = "[unknown]"        # an address kallsyms (as bcc loaded it) does not name
TRACER_FRAMES = ("bpf_prog_", "bpf_trace_run", "__traceiter_", "__bpf_trace_", "perf_trace_", "perf_",
                 "trace_event_raw_event_", "call_trace_", "bpf_trampoline_", "bpf_get_stack",
                 "trace_call_bpf", "kprobe_", "kretprobe_", "__kretprobe_trampoline", "rethook_",
                 "arch_rethook_", "ftrace_", "[unknown]")
FUNCTION_HOOKS = ("kprobe:", "kretprobe:", "fentry:", "fexit:")


@functools.cache
def _step(name: str) -> Step | None:
    return lessons.step(name)


def _ends_its_call(event: Event) -> bool:
    """Whether no later event of its syscall takes the same path record: a step with one event
    a call, or the last of a call's several, as the step tells from the detail. A record sampled
    out in the kernel is not sent, so one kept past its call would give a later call's events
    an earlier call's stack."""
    step = _step(event.step)
    if step is None:
        return False
    return step.one_event_per_call or (step.last_of_call is not None and step.last_of_call(event.detail))


def on_syscall_tier(hook: str) -> bool:
    return hook.startswith(("tracepoint:", "raw_tracepoint:"))


def choose_points(choices: Sequence[HookChoice], has_tracepoint: Callable[[str, str], bool]) -> dict[str, PathPoint]:
    """Step -> the best path point this kernel has, for the steps hooked on the syscall tier."""
    chosen: dict[str, PathPoint] = {}
    for choice in choices:
        step = lessons.step(choice.step)
        if choice.tier != "syscall" or step is None:
            continue
        for tracepoint in step.path_points:
            point = lessons.path_point(tracepoint)
            if point is not None and has_tracepoint(*tracepoint.split("/")):
                chosen[choice.step] = point
                break
    return chosen


def path_defines(points: dict[str, PathPoint]) -> list[str]:
    """The path points to compile, and STACK_FROM_PATH: the steps whose syscall-tier events
    take their stack from a path record, and so walk none of their own (probes/common.h)."""
    names = lessons.step_names()
    from_path = sum(1 << names.index(step) for step in points)
    flags = [f"-DSTACK_DEPTH={STACK_DEPTH}", f"-DSTACK_BUCKETS={STACK_BUCKETS}", f"-DPATH_STEP_BASE={PATH_STEP_BASE}",
             f"-DSTACK_FROM_PATH={from_path}ULL"]
    return flags + sorted({f"-D{point.define}={lessons.path_points().index(point)}" for point in points.values()})


def slot_defines() -> list[str]:
    """probes/common.h counts stacks per process in slots: one per step, then one per path
    point, each a power of two (the verifier sees the bound)."""
    step_slots = _power_of_two(len(lessons.step_names()))
    return [f"-DSTACK_STEP_SLOTS={step_slots}",
            f"-DSTACK_SLOTS={_power_of_two(step_slots + len(lessons.path_points()))}"]


def _power_of_two(count: int) -> int:
    return 1 << max(count - 1, 0).bit_length()


def annotate(choices: list[HookChoice], points: dict[str, PathPoint],
             symbol: Callable[[str], str | None]) -> list[HookChoice]:
    """Each syscall-tier step's reason says where its path is seen (the hooks table shows it)."""
    annotated = []
    for choice in choices:
        point = points.get(choice.step)
        if point is not None:
            inside = point.inside
            seen = (f"{inside} is seen on it, not inferred" if symbol(inside)
                    else f"{inside} is not in kallsyms here (inlined): its caller shows instead")
            annotated.append(dataclasses.replace(choice, reason=f"{choice.reason}; path: the kernel stack at "
                                                 f"{point.hook}, which fires inside {inside}: {seen}"))
        else:
            annotated.append(choice)
    return annotated


def trimmed(frames: Sequence[str]) -> tuple[str, ...]:
    """The stack without the tracer's own frames: those at its innermost end, and the BPF
    trampoline of each fentry/fexit-hooked caller (X <- bpf_trampoline_N <- X: one X). A
    trampoline made after the symbol cache was loaded has no name ([unknown]: outside the
    kernel's text, like a module's code, which names nothing either): it goes too."""
    start = 0
    while start < len(frames) and frames[start].startswith(TRACER_FRAMES):
        start += 1
    kept: list[str] = []
    after_trampoline = False
    for frame in frames[start:]:
        if frame.startswith("bpf_trampoline_") or frame == UNNAMED:
            after_trampoline = True
            continue
        if not (after_trampoline and kept and frame == kept[-1]):
            kept.append(frame)
        after_trampoline = False
    return tuple(kept)


def base_name(symbol: str) -> str:
    """do_mmap for do_mmap.isra.0 or do_mmap.cold."""
    return symbol.split(".", 1)[0]


def with_hooked_function(frames: tuple[str, ...], hook: str) -> tuple[str, ...]:
    """A kretprobe/fexit stack starts in the caller (the function has returned): the hooked
    function is put back at the innermost end, where the probe saw it."""
    if not hook.startswith(FUNCTION_HOOKS):
        return frames
    function = hook.split(":", 1)[1]
    if frames and base_name(frames[0]) == function:
        return frames
    return (function, *frames)


def path_steps() -> dict[int, tuple[str, str]]:
    """Step id -> (step, hook) of the path records (probes/paths.bpf.c), for the decoder."""
    return {PATH_STEP_BASE + index: (PATH_STEP, point.hook) for index, point in enumerate(lessons.path_points())}


SAMPLED_OUT = -1000      # probes/common.h STACK_SAMPLED_OUT: a loop's later events go without a stack
AT_PATH_POINT = -1001    # probes/common.h STACK_AT_PATH_POINT: the event's stack is its path record's
NOT_TAKEN = (SAMPLED_OUT, AT_PATH_POINT)


class StackTable:
    """Stack id -> symbol names (innermost first), read from the stack map and symbolized
    once per id. Ids are never reused (no BPF_F_REUSE_STACKID), and there are at most
    STACK_BUCKETS of them, so the cache is bounded and never stale."""

    def __init__(self, read: Callable[[int], Sequence[int]], symbol: Callable[[int], str | None]) -> None:
        self.read = read
        self.symbol = symbol
        self.cache: dict[int, tuple[str, ...] | None] = {}
        self.failures: dict[int, int] = defaultdict(int)   # negative stack id (errno) -> events

    def frames(self, stack_id: int) -> tuple[str, ...] | None:
        if stack_id < 0:
            if stack_id not in NOT_TAKEN:
                self.failures[stack_id] += 1
            return None
        if stack_id not in self.cache and len(self.cache) < STACK_BUCKETS:
            names = [self.symbol(address) or UNNAMED for address in self.read(stack_id)]
            self.cache[stack_id] = trimmed(names) or None
        return self.cache.get(stack_id)


def warm_symbols() -> None:
    """Load bcc's kernel symbol cache (0.1-1 s: all of /proc/kallsyms) and kallsyms' facts.
    Done while the probes load (ctypes releases the GIL), not at the first stack or file,
    where it stalled the ring reader long enough to lose events."""
    from bcc import BPF

    from tracer.kernel import kallsyms_facts
    BPF.ksym(0xffffffff81000000)
    kallsyms_facts()


@functools.lru_cache(maxsize=4096)
def exact_symbol(address: int) -> str | None:
    """The kallsyms name at exactly `address` (warm_symbols): an f_op table's name where kallsyms
    lists data (CONFIG_KALLSYMS_ALL), a function's from bcc's cache. None when kallsyms names
    nothing that starts there. A few dozen tables and functions: each asked once."""
    from bcc import BPF

    from tracer.kernel import kallsyms_facts
    if not address:
        return None
    table = kallsyms_facts().operations.get(address)
    if table:
        return table
    name = BPF.ksym(address, show_offset=True).decode(errors="replace")
    return name.removesuffix("+0x0") if name.endswith("+0x0") else None


def kernel_stack_table(read: Callable[[int], list[int]]) -> StackTable:
    """A StackTable over the probes' `stacks` map (`read`: a stack id -> its addresses),
    symbolized by bcc from kallsyms."""
    from bcc import BPF

    from tracer.kernel import kallsyms_facts

    # The cache was loaded before the program (warm_symbols), so it does not know the JIT'd
    # BPF programs: an address outside the kernel's text is not named (trimmed, if innermost).
    def symbol(address: int) -> str | None:
        start, end = kallsyms_facts().text
        if start > 0 and not start <= address < end:
            return None
        name = BPF.ksym(address).decode(errors="replace")
        return None if name == "[unknown]" else name

    return StackTable(read, symbol)


@dataclass(frozen=True)
class PathRecord:
    ts_ns: int
    hook: str
    frames: tuple[str, ...]


@dataclass
class Held:
    """A syscall-tier event whose path record comes after it (sendmsg's sk_data_ready)."""

    event: Event
    fallback: tuple[str, ...] | None
    batch: int


class PathJoiner:
    """Gives each event its stack. Function-tier events: the stack at their hook. Syscall-tier
    events: the stack of the path record of the same thread, fired inside the same syscall
    (just before the event, or, for sendmsg, just after: such events wait at most until the
    end of the next batch). Memory: one record per (thread, point), KEPT_PATH_THREADS threads."""

    def __init__(self, points: dict[str, PathPoint], stacks: StackTable) -> None:
        self.points = points
        self.stacks = stacks
        self.latest: OrderedDict[tuple[int, str], PathRecord] = OrderedDict()
        self.held: dict[int, list[Held]] = {}
        self.batch = 0

    def take(self, event: Event, stack_id: int) -> list[Event]:
        """The events ready to go on (in order) once `event` is known."""
        frames = self.stacks.frames(stack_id)
        if event.step == PATH_STEP:
            return self._path_record(event, frames)
        point = self.points.get(event.step) if on_syscall_tier(event.hook) else None
        waiting = self.held.get(event.pid)
        # another event of the thread: the waiting ones' syscall is over, unless it is one more of them
        ready = self._release(event.pid) if waiting and not (point and point.when == "after") else []
        if point is None:
            ready.append(_with_stack(event, with_hooked_function(frames, event.hook) if frames else None, event.hook))
        elif point.when == "after":
            self.held.setdefault(event.pid, []).append(Held(event, frames, self.batch))
        else:
            ready.append(self._join_earlier(event, point, frames))
        return ready

    def _path_record(self, event: Event, frames: tuple[str, ...] | None) -> list[Event]:
        record = PathRecord(event.ts_ns, event.hook, frames or ())
        waiting = self.held.pop(event.pid, [])
        if waiting:
            return [_with_stack(held.event, frames, event.hook) if frames else _fallback(held) for held in waiting]
        key = (event.pid, event.hook)
        self.latest[key] = record
        self.latest.move_to_end(key)
        while len(self.latest) > KEPT_PATH_THREADS:
            self.latest.popitem(last=False)
        return []

    def _join_earlier(self, event: Event, point: PathPoint, frames: tuple[str, ...] | None) -> Event:
        key = (event.pid, point.hook)
        record = self.latest.get(key)
        if record is None or not 0 <= event.ts_ns - record.ts_ns <= MAX_PATH_AGE_NS or not record.frames:
            return _with_stack(event, frames, event.hook)
        if _ends_its_call(event):
            del self.latest[key]
        return _with_stack(event, record.frames, record.hook)

    def _release(self, pid: int) -> list[Event]:
        return [_fallback(held) for held in self.held.pop(pid, [])]

    def batch_done(self) -> list[Event]:
        """Events that waited a whole batch for their path record go on without it."""
        ready = []
        for pid in [pid for pid, held in self.held.items() if held[0].batch < self.batch]:
            ready += self._release(pid)
        self.batch += 1
        return ready

    def flush(self) -> list[Event]:
        ready = []
        for pid in list(self.held):
            ready += self._release(pid)
        return ready


def _fallback(held: Held) -> Event:
    return _with_stack(held.event, held.fallback, held.event.hook)


def _with_stack(event: Event, frames: tuple[str, ...] | None, where: str) -> Event:
    event.stack = list(frames) if frames else None
    event.stack_from = where if frames else None
    return event
