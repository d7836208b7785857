"""The steps of each scenario and, per step, the hooks that can observe it.

A step is a moment of the kernel story (design.md fixes the names). Each step
lists candidate hooks, best first; resolution picks, per step, the first one the
running kernel allows and says why it was chosen or why nothing could be.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from tracer import arch
from tracer.errors import SyspathError

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


@dataclass(frozen=True)
class Step:
    name: str
    summary: str
    hooks: tuple[Hook, ...]
    optional: bool = False          # an extra step: shown when the kernel lets it be hooked


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

    def as_record(self) -> dict[str, str]:
        return {"step": self.step, "hook": self.hook, "status": self.status, "reason": self.reason}


def _syscall(point: str, tracepoints: tuple[str, ...], reads: str, direct: bool = False) -> Hook:
    return Hook("syscall", f"tracepoint:syscalls:{point}", reads, direct, tracepoints)


def _function(function: str, reads: str, params: tuple[str, ...] = (), entry: bool = True,
              exit: bool = True, direct: bool = True) -> tuple[Hook, ...]:
    """The same kernel function hooked by kprobe and by fentry (the C body is shared)."""
    kprobe = f"kretprobe:{function}" if exit else f"kprobe:{function}"
    fentry = f"fexit:{function}" if exit else f"fentry:{function}"
    return tuple(Hook(tier, point, reads, direct, (), function, entry, exit, params)
                 for tier, point in (("kprobe", kprobe), ("fentry", fentry)))


MEMFD_STEPS: tuple[Step, ...] = (
    Step("memfd_create", "memfd_create() returns an fd for a new memory-only file", (
        *_function("__do_sys_memfd_create", "the name and flags, then the returned fd looked up in "
                   "the caller's fd table -> struct file, inode, refcount", ("uname", "flags")),
        # the arch's syscall wrapper (tracer/arch.py): __x64_sys_memfd_create, __arm64_sys_memfd_create
        *(hook for machine in arch.SYSCALL_PREFIX for hook in _function(
            arch.syscall_wrapper("memfd_create", machine) or "", "the returned fd looked up in the caller's fd "
            "table -> struct file, inode, refcount (the syscall's own body is inlined)")),
        _syscall("sys_exit_memfd_create", ("syscalls/sys_enter_memfd_create", "syscalls/sys_exit_memfd_create"),
                 "the returned fd, looked up in the caller's fd table -> struct file, inode, refcount",
                 direct=True),
    )),
    Step("shmem_file_setup", "mm/shmem.c creates the shmem inode and its struct file", (
        *_function("shmem_file_setup", "the name, then the struct file it returns", ("name",)),
        _syscall("sys_exit_memfd_create", ("syscalls/sys_exit_memfd_create",),
                 "the struct file shmem_file_setup returned, found through the new fd; "
                 "its superblock magic TMPFS_MAGIC shows shmem made it"),
    )),
    Step("do_mmap", "mmap() maps the file: do_mmap -> mmap_region makes a vma (VM_SHARED with MAP_SHARED)", (
        *_function("do_mmap", "the file, length, prot and MAP_ flags, then the mapped address and "
                   "the new vma found in the file's i_mmap tree", ("file", "len", "prot", "flags", "pgoff")),
        _syscall("sys_exit_mmap", ("syscalls/sys_enter_mmap", "syscalls/sys_exit_mmap"),
                 "the mapped file, the address, and the new vma found in the file's "
                 "address_space i_mmap tree (vm_flags, vm_file)"),
    )),
    Step("unix_stream_sendmsg", "sendmsg() on an AF_UNIX stream socket runs unix_stream_sendmsg", (
        *_function("unix_stream_sendmsg", "the socket, its sock and the peer's, and the SCM_RIGHTS "
                   "count in the kernel copy of the control message", ("sock", "msg")),
        _syscall("sys_enter_sendmsg", ("syscalls/sys_enter_sendmsg",),
                 "the socket behind the fd: AF_UNIX + SOCK_STREAM means its sendmsg is "
                 "unix_stream_sendmsg; its sock and the peer's"),
    )),
    Step("scm_fp_copy", "each SCM_RIGHTS fd becomes a struct file pointer (fget_raw) in the skb", (
        *_function("scm_fp_copy", "the scm_fp_list it filled: one struct file per fd", ("cmsg", "fplp")),
        *_function("__scm_send", "the scm_cookie's scm_fp_list after scm_fp_copy filled it", ("msg", "p"),
                   direct=False),
        _syscall("sys_enter_sendmsg", ("syscalls/sys_enter_sendmsg",),
                 "the SCM_RIGHTS fds read from the user msghdr, each looked up in the "
                 "sender's fd table as fget_raw does"),
    )),
    Step("in_flight", "the struct file waits in an skb on the receiver's queue (UNIXCB(skb).fp)", (
        Hook("syscall", "tracepoint:sock:sk_data_ready", "the peer's sk_receive_queue tail, the skb sendmsg "
             "just queued, and the struct files of the scm_fp_list in its control block", True,
             ("sock/sk_data_ready",), any_mode=True),
        *_function("sock_def_readable", "the peer's sk_receive_queue tail, the skb sendmsg just queued, "
                   "and the struct files of the scm_fp_list in its control block", ("sk",), exit=False),
    )),
    Step("receive_fd", "the receiver gets a new fd for the same struct file (receive_fd)", (
        *_function("__receive_fd", "the struct file, then the fd it was installed at", ("file",)),
        *_function("receive_fd", "the struct file, then the fd it was installed at", ("file",)),
        *_function("security_file_receive", "the struct file about to be installed (the LSM check "
                   "receive_fd makes first); its fd shows at fd_install", ("file",), exit=False, direct=False),
        _syscall("sys_exit_recvmsg", ("syscalls/sys_enter_recvmsg", "syscalls/sys_exit_recvmsg"),
                 "the fds the kernel wrote into the receiver's SCM_RIGHTS message, "
                 "each looked up in the receiver's fd table"),
    )),
    Step("fd_install", "fs/file.c fd_install puts the struct file into a slot of the fd table", (
        *_function("fd_install", "the fd and the struct file, for files this session follows",
                   ("fd", "file"), exit=False),
    ), optional=True),
    Step("alloc_file_pseudo", "fs/file_table.c alloc_file_pseudo makes the struct file for shmem's inode", (
        *_function("alloc_file_pseudo", "the struct file it returns, inside shmem_file_setup", entry=False),
    ), optional=True),
    Step("fput", "fs/file_table.c __fput releases the struct file once its last reference is gone", (
        *_function("__fput", "the struct file being released, for files this session follows",
                   ("file",), exit=False),
    ), optional=True),
)

CLONE_STEPS: tuple[Step, ...] = (
    Step("clone", "copy_process makes a new task; the CLONE_* flags decide what it shares", (
        *_function("copy_process", "the CLONE_* flags in kernel_clone_args, then the new task_struct: "
                   "its mm/fs/files/sighand/signal pointers beside the parent's", ("args",)),
        Hook("syscall", "raw_tracepoint:sched_process_fork", "clone flags from task:task_newtask, then "
             "parent's and child's mm/fs/files/sighand/signal pointers read from both task_structs",
             False, ("task/task_newtask", "sched/sched_process_fork")),
    )),
    Step("dup_fd", "fs/file.c dup_fd copies the fd table (a fork without CLONE_FILES)", (
        *_function("dup_fd", "the parent's files_struct and the copy it returns", ("oldf",)),
    ), optional=True),
    Step("dup_mm", "kernel/fork.c dup_mm copies the address space (a fork without CLONE_VM)", (
        *_function("dup_mm", "the parent's mm_struct and the copy it returns", ("oldmm",)),
    ), optional=True),
)

def _signal(name: str, reads: str) -> Hook:
    """A signal tracepoint (kernel/signal.c): the event itself, on every tier."""
    return Hook("syscall", f"tracepoint:signal:{name}", reads, True, (f"signal/{name}",), any_mode=True)


CLONE_STEPS += (
    Step("signal_generate", "kernel/signal.c queues a signal: on one thread, or on the thread group", (
        _signal("signal_generate", "the signal, the task it was queued on and whether it was sent to the "
                "whole thread group (kill) or to one thread (tgkill)"),
    )),
    Step("signal_deliver", "a thread takes a signal: get_signal() in the thread the kernel picked", (
        _signal("signal_deliver", "the signal and the thread that took it (the one the event runs in)"),
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
    for param in hook.params:
        if param not in (params or []):
            return f"{function}({', '.join(params or [])}) has no parameter {param!r} on this kernel"
        if hook.tier == "kprobe" and (params or []).index(param) >= KPROBE_ARGS:
            return f"{function}'s {param!r} is argument {params.index(param) + 1}, beyond what a kprobe reads"
    return ""


def _missing(hook: Hook, kernel: KernelView) -> str:
    if hook.function:
        return _function_missing(hook, kernel)
    for tracepoint in hook.needs_tracepoints:
        if not kernel.has_tracepoint(*tracepoint.split("/")):
            return f"tracepoint {tracepoint.replace('/', ':')} does not exist here"
    return ""


def _choice(step: Step, hook: Hook, kernel: KernelView, not_used: list[str], tier_notes: list[str]) -> HookChoice:
    if hook.direct:
        status, reason = "attached", hook.reads
    else:
        first = not_used[0].split(": ", 1)[1] if not_used else (tier_notes or [""])[0]
        why = f" ({first})" if first else ""
        status = "fallback"
        reason = f"{step.name} is not hooked as a function here{why}; observed at {hook.point}: {hook.reads}"
    if not_used:
        reason += f" [not used: {'; '.join(not_used)}]"
    if not hook.function:
        return HookChoice(step.name, hook.point, hook.tier, status, reason)
    params = kernel.params(hook.function) or []
    return HookChoice(step.name, hook.point, hook.tier, status, reason, hook.function,
                      kernel.symbol(hook.function), hook.entry, hook.exit,
                      tuple((param, params.index(param)) for param in hook.params), len(params))


def _tier_notes(tiers_out: dict[str, str]) -> list[str]:
    return [f"{tier} tier: {why}" for tier, why in tiers_out.items()]


def resolve_step(step: Step, tiers: Sequence[str], kernel: KernelView,
                 left_out: str = "this session uses another tier") -> HookChoice:
    not_used: list[str] = []
    tiers_out: dict[str, str] = {}
    for hook in step.hooks:
        if hook.function and arch.foreign_wrapper(hook.function, kernel.machine):
            continue                            # another architecture's syscall wrapper
        if hook.tier not in tiers and not hook.any_mode:
            tiers_out.setdefault(hook.tier, kernel.tiers.get(hook.tier) or left_out)
            continue
        missing = _missing(hook, kernel)
        if missing:
            not_used.append(f"{hook.point}: {missing}")
            continue
        return _choice(step, hook, kernel, not_used, _tier_notes(tiers_out))
    return HookChoice(step.name, "", None, "unavailable",
                      "; ".join(not_used + _tier_notes(tiers_out)) or "no hook in the catalog for this step")


def resolve(scenario: str | None, mode: str, kernel: KernelView) -> list[HookChoice]:
    tiers = allowed_tiers(mode, kernel)
    left_out = f"--mode {mode} leaves it out" if mode != "auto" else f"functions are hooked with {tiers[0]} here"
    return [resolve_step(step, tiers, kernel, left_out) for step in steps_for(scenario)]


def all_functions() -> set[str]:
    return {hook.function for steps in SCENARIO_STEPS.values() for step in steps
            for hook in step.hooks if hook.function}


def all_tracepoints() -> set[str]:
    return {tp for steps in SCENARIO_STEPS.values() for step in steps
            for hook in step.hooks for tp in hook.needs_tracepoints}
