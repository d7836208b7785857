"""The steps of each scenario and, per step, the hooks that can observe it.

A step is a moment of the kernel story (design.md fixes the names). Each step
lists candidate hooks, best first; resolution picks, per step, the first one the
running kernel allows and says why it was chosen or why nothing could be.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from tracer.errors import SyspathError

TIERS = ("kprobe", "fentry", "syscall")
MODES = ("auto", *TIERS)


@dataclass(frozen=True)
class Hook:
    tier: str
    point: str                      # how it is named in recordings: "tracepoint:syscalls:sys_exit_mmap"
    needs_tracepoints: tuple[str, ...] = ()   # "category/name"
    needs_symbol: str | None = None
    direct: bool = True             # False: stands in for a kernel function it cannot hook
    reads: str = ""                 # what the hook reads, for people


@dataclass(frozen=True)
class Step:
    name: str
    summary: str
    hooks: tuple[Hook, ...]


@dataclass(frozen=True)
class HookChoice:
    step: str
    hook: str
    tier: str | None
    status: str                     # "attached" | "fallback" | "unavailable"
    reason: str

    def as_record(self) -> dict[str, str]:
        return {"step": self.step, "hook": self.hook, "status": self.status, "reason": self.reason}


def _syscall(point: str, tracepoints: tuple[str, ...], reads: str, direct: bool = False) -> Hook:
    return Hook("syscall", f"tracepoint:syscalls:{point}", tracepoints, None, direct, reads)


MEMFD_STEPS: tuple[Step, ...] = (
    Step("memfd_create", "memfd_create() returns an fd for a new memory-only file", (
        _syscall("sys_exit_memfd_create", ("syscalls/sys_enter_memfd_create", "syscalls/sys_exit_memfd_create"),
                 "the returned fd, looked up in the caller's fd table -> struct file, inode, refcount",
                 direct=True),
    )),
    Step("shmem_file_setup", "mm/shmem.c creates the shmem inode and its struct file", (
        _syscall("sys_exit_memfd_create", ("syscalls/sys_exit_memfd_create",),
                 "the struct file shmem_file_setup returned, found through the new fd; "
                 "its superblock magic TMPFS_MAGIC shows shmem made it"),
    )),
    Step("do_mmap", "mmap(MAP_SHARED) maps the file: do_mmap -> mmap_region makes a VM_SHARED vma", (
        _syscall("sys_exit_mmap", ("syscalls/sys_enter_mmap", "syscalls/sys_exit_mmap"),
                 "the mapped file, the address, and the new vma found in the file's "
                 "address_space i_mmap tree (vm_flags, vm_file)"),
    )),
    Step("unix_stream_sendmsg", "sendmsg() on an AF_UNIX stream socket runs unix_stream_sendmsg", (
        _syscall("sys_enter_sendmsg", ("syscalls/sys_enter_sendmsg",),
                 "the socket behind the fd: AF_UNIX + SOCK_STREAM means its sendmsg is "
                 "unix_stream_sendmsg; its sock and the peer's"),
    )),
    Step("scm_fp_copy", "each SCM_RIGHTS fd becomes a struct file pointer (fget_raw) in the skb", (
        _syscall("sys_enter_sendmsg", ("syscalls/sys_enter_sendmsg",),
                 "the SCM_RIGHTS fds read from the user msghdr, each looked up in the "
                 "sender's fd table as fget_raw does"),
    )),
    Step("receive_fd", "the receiver gets a new fd for the same struct file (receive_fd)", (
        _syscall("sys_exit_recvmsg", ("syscalls/sys_enter_recvmsg", "syscalls/sys_exit_recvmsg"),
                 "the fds the kernel wrote into the receiver's SCM_RIGHTS message, "
                 "each looked up in the receiver's fd table"),
    )),
)

CLONE_STEPS: tuple[Step, ...] = (
    Step("clone", "copy_process makes a new task; the CLONE_* flags decide what it shares", (
        Hook("syscall", "raw_tracepoint:sched_process_fork", ("task/task_newtask", "sched/sched_process_fork"),
             None, False, "clone flags from task:task_newtask, then parent's and child's "
             "mm/fs/files/sighand/signal pointers read from both task_structs"),
    )),
)

SCENARIO_STEPS: dict[str, tuple[Step, ...]] = {"memfd-share": MEMFD_STEPS, "fork-vs-thread": CLONE_STEPS}
# Every step id the probes may emit; the number is the STEP_* define.
ALL_STEP_NAMES: tuple[str, ...] = tuple(step.name for step in (*MEMFD_STEPS, *CLONE_STEPS))


def steps_for(scenario: str | None) -> tuple[Step, ...]:
    if scenario is None:
        return tuple(step for steps in SCENARIO_STEPS.values() for step in steps)
    return SCENARIO_STEPS[scenario]


def step_defines() -> list[str]:
    return [f"-DSTEP_{name.upper()}={index}" for index, name in enumerate(ALL_STEP_NAMES)]


@dataclass(frozen=True)
class KernelView:
    """What resolution needs to know about the kernel (real or saved)."""

    tiers: dict[str, str]                      # tier -> "" when usable, else why not
    has_symbol: Callable[[str], bool]
    has_tracepoint: Callable[[str, str], bool]


def allowed_tiers(mode: str, kernel: KernelView) -> list[str]:
    if mode not in MODES:
        raise SyspathError(f"unknown mode {mode!r}: choose one of {', '.join(MODES)}")
    usable = [tier for tier in TIERS if not kernel.tiers.get(tier, "unknown")]
    if mode == "auto":
        if not usable:
            raise SyspathError("this kernel allows no tracing tier: " + _tier_reasons(kernel))
        return usable
    if mode not in usable:
        can = ", ".join(usable) or "none"
        raise SyspathError(f"mode {mode} is not available on this kernel ({kernel.tiers[mode]}); "
                           f"modes it can do: {can}")
    return [mode]


def _tier_reasons(kernel: KernelView) -> str:
    return "; ".join(f"{tier}: {why}" for tier, why in kernel.tiers.items() if why)


def _missing(hook: Hook, kernel: KernelView) -> str:
    if hook.needs_symbol and not kernel.has_symbol(hook.needs_symbol):
        return f"{hook.needs_symbol} is not in kallsyms (inlined or renamed on this kernel)"
    for tracepoint in hook.needs_tracepoints:
        if not kernel.has_tracepoint(*tracepoint.split("/")):
            return f"tracepoint {tracepoint.replace('/', ':')} does not exist here"
    return ""


def resolve_step(step: Step, tiers: Sequence[str], kernel: KernelView) -> HookChoice:
    skipped: list[str] = []
    for hook in step.hooks:
        if hook.tier not in tiers:
            why = kernel.tiers.get(hook.tier) or f"mode excludes the {hook.tier} tier"
            skipped.append(f"{hook.point}: {why}")
            continue
        missing = _missing(hook, kernel)
        if missing:
            skipped.append(f"{hook.point}: {missing}")
            continue
        status = "attached" if hook.direct else "fallback"
        reason = hook.reads if not skipped else f"{hook.reads} (not used: {'; '.join(skipped)})"
        if not hook.direct:
            reason = f"{step.name} is not hooked as a function here; observed at {hook.point}: {reason}"
        return HookChoice(step.name, hook.point, hook.tier, status, reason)
    return HookChoice(step.name, "", None, "unavailable",
                      "; ".join(skipped) or "no hook in the catalog for this step")


def resolve(scenario: str | None, mode: str, kernel: KernelView) -> list[HookChoice]:
    tiers = allowed_tiers(mode, kernel)
    return [resolve_step(step, tiers, kernel) for step in steps_for(scenario)]
