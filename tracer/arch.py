"""What differs between CPU architectures, as facts about the running kernel's machine.

One table per fact, keyed by `uname -m`; nothing here is assumed for a machine it does
not name (an unknown machine gets None / the reason why not). Used by resolution
(tracer.catalog: the syscall wrapper's name), by the probes' build (argument registers,
the pt_regs slots of a syscall's arguments) and by the tier check (fentry on arm64).
"""
from __future__ import annotations

import os
import re

# arch/<arch>/include/asm/syscall_wrapper.h: the entry point each syscall gets
SYSCALL_PREFIX = {"x86_64": "__x64_sys_", "aarch64": "__arm64_sys_"}

# Function arguments passed in registers (the calling convention): x86-64 rdi, rsi, rdx,
# rcx, r8, r9, then the stack; arm64 x0-x7.
ARG_REGISTERS = {"x86_64": 6, "aarch64": 8}
# What probes/kfunc.h reads at a kprobe: the registers, plus on x86-64 two stack slots
# above the return address.
KPROBE_ARGS = {"x86_64": 8, "aarch64": 8}

# A syscall's six arguments in the pt_regs saved at entry: (member path, extra byte offset).
# arm64 overwrites x0 with the return value; the first argument stays in orig_x0.
SYSCALL_ARG_SLOTS: dict[str, tuple[tuple[str, int], ...]] = {
    "x86_64": (("di", 0), ("si", 0), ("dx", 0), ("r10", 0), ("r8", 0), ("r9", 0)),
    "aarch64": (("orig_x0", 0), ("regs", 8), ("regs", 16), ("regs", 24), ("regs", 32), ("regs", 40)),
}

# arm64's BPF trampolines hook functions through ftrace direct calls
# (CONFIG_DYNAMIC_FTRACE_WITH_DIRECT_CALLS), which arm64 has since Linux 6.4.
ARM64_DIRECT_CALLS = (6, 4)


def machine() -> str:
    return os.uname().machine


def version(release: str) -> tuple[int, int]:
    numbers = [*(int(n) for n in re.findall(r"\d+", release)[:2]), 0, 0]
    return numbers[0], numbers[1]


def syscall_wrapper(name: str, on: str) -> str | None:
    """The kernel function a syscall enters on machine `on`: __x64_sys_memfd_create, ..."""
    prefix = SYSCALL_PREFIX.get(on)
    return None if prefix is None else prefix + name


def foreign_wrapper(function: str, on: str) -> bool:
    """`function` is another architecture's syscall wrapper (never in this kernel)."""
    if on not in SYSCALL_PREFIX:
        return False
    return any(function.startswith(prefix) for arch, prefix in SYSCALL_PREFIX.items() if arch != on)


def kprobe_args(on: str) -> int:
    return KPROBE_ARGS.get(on, ARG_REGISTERS.get(on, 6))


def fentry_unavailable(on: str, release: str) -> str:
    """Why fentry cannot work on this machine and kernel, before trying; "" when it may."""
    if on == "aarch64" and version(release) < ARM64_DIRECT_CALLS:
        return (f"arm64 kernels before {ARM64_DIRECT_CALLS[0]}.{ARM64_DIRECT_CALLS[1]} have no ftrace direct "
                "calls, so BPF trampolines (fentry/fexit) cannot attach to functions; a 6.4+ kernel would")
    if on not in ("x86_64", "aarch64"):
        return f"syspath's fentry tier is tried on x86_64 and aarch64 only, not {on}"
    return ""


def describe(on: str, release: str) -> str:
    """One line for the session header: what resolution took from the machine."""
    prefix = SYSCALL_PREFIX.get(on)
    regs = ARG_REGISTERS.get(on)
    if prefix is None or regs is None:
        return f"{on}: not a machine syspath knows; syscall wrappers and argument registers unknown"
    where = ("rdi, rsi, rdx, rcx, r8, r9; arguments 7-8 from the stack" if on == "x86_64"
             else "x0-x7")
    line = f"{on}: syscall wrappers {prefix}*, {regs} arguments in registers ({where})"
    fentry = fentry_unavailable(on, release)
    if on == "aarch64" and not fentry:
        line += "; fentry by ftrace direct calls (bcc's support_kfunc() says no off x86_64: tried instead)"
    return line
