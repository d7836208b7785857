"""The kernel struct fields the probes read, and where they are on this kernel.

Every offset comes from the running kernel's BTF (tracer.btf); none from headers.
Field names drift between versions, so each field lists its candidates in order.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from tracer import arch
from tracer.btf import BtfError, Member, resolve_offsets
from tracer.catalog import FieldRequest

# The fields the core's probes read (probes/common.h: the fd table, the file's identity,
# syscall arguments); each lesson declares its own (lesson.py fields)
FIELDS: dict[str, FieldRequest] = {
    "TASK_FILES": ("task_struct", ("files",), 8),
    "TASK_PID": ("task_struct", ("pid",), 4),
    "FILES_FDT": ("files_struct", ("fdt",), 8),
    "FDT_FD": ("fdtable", ("fd",), 8),
    "FDT_MAX_FDS": ("fdtable", ("max_fds",), 4),
    "FILE_INODE": ("file", ("f_inode",), 8),
    # f_count (atomic_long_t) became f_ref (file_ref_t) in 6.13: include/linux/file_ref.h
    "FILE_REF": ("file", ("f_ref", "f_count"), 8),
    "FILE_OP": ("file", ("f_op",), 8),
    "FILE_DENTRY": ("file", ("f_path.dentry",), 8),
    "DENTRY_NAME": ("dentry", ("d_name.name",), 8),
    "FOPS_READ_ITER": ("file_operations", ("read_iter",), 8),
    "FOPS_READ": ("file_operations", ("read",), 8),
    "INODE_INO": ("inode", ("i_ino",), 8),
    "INODE_SB": ("inode", ("i_sb",), 8),
    "INODE_MODE": ("inode", ("i_mode",), 2),
    "SB_MAGIC": ("super_block", ("s_magic",), 8),
    # the registers a syscall or a user fault saved (common.h current_syscall_nr, fault_under_way):
    # the syscall's number, which an exception entry sets to -1 once it has taken the error
    # code (arch/x86/entry/entry_64.S), and the instruction pointer
    "REGS_SYSCALL_NR": ("pt_regs", ("orig_ax", "syscallno"), 0),
    "REGS_IP": ("pt_regs", ("ip", "pc"), 8),
    # x86-64: a syscall's six arguments, saved on entry (arch/x86/entry/entry_64.S)
    "PT_REGS_DI": ("pt_regs", ("di",), 8),
    "PT_REGS_SI": ("pt_regs", ("si",), 8),
    "PT_REGS_DX": ("pt_regs", ("dx",), 8),
    "PT_REGS_R10": ("pt_regs", ("r10",), 8),
    "PT_REGS_R8": ("pt_regs", ("r8",), 8),
    "PT_REGS_R9": ("pt_regs", ("r9",), 8),
}


# The fields read of one struct together, with one bpf_probe_read_kernel for all of them
# (probes/common.h SNAPSHOT): prefix -> their define names. A helper call costs more than
# the bytes it copies, so one copy of the bytes between the first and the last of them
# is cheaper than a call per field.
SPANS: dict[str, tuple[str, ...]] = {
    "FDT": ("FDT_MAX_FDS", "FDT_FD"),
    # what the file is; not f_ref, at the struct's end since 6.13 (the stack room of a
    # kretprobe that also holds its call's stash would not fit 176 bytes more)
    "FILE": ("FILE_INODE", "FILE_OP", "FILE_DENTRY"),
    "INODE": ("INODE_MODE", "INODE_SB", "INODE_INO"),
    "FOPS": ("FOPS_READ", "FOPS_READ_ITER"),
    "PT_REGS": ("PT_REGS_DI", "PT_REGS_SI", "PT_REGS_DX", "PT_REGS_R10", "PT_REGS_R8", "PT_REGS_R9"),
}
# Wider than this (a randomized struct layout), the stack copy would cost too much room:
# such a struct is read field by field (<PREFIX>_SPAN_SIZE=0).
SPAN_MAX = 256


SYSCALL_ARG_DEFINES = SPANS["PT_REGS"]     # argument slots 1-6, x86-64's names on every machine
SYSCALL_NO_SLOTS = tuple(("", 0) for _ in SYSCALL_ARG_DEFINES)   # an unknown machine: FIELDS' own


def syscall_arg_fields(machine: str) -> dict[str, FieldRequest]:
    """FIELDS with the six syscall-argument slots of this machine's pt_regs (tracer/arch.py);
    the defines keep x86-64's names: they are argument slots 1-6."""
    slots = arch.SYSCALL_ARG_SLOTS.get(machine)
    if slots is None:
        return FIELDS
    return {**FIELDS, **{name: ("pt_regs", (member,), 0 if extra else 8)
                         for name, (member, extra) in zip(SYSCALL_ARG_DEFINES, slots, strict=True)}}


@dataclass(frozen=True)
class Span:
    start: int
    size: int

    def cflags(self, prefix: str) -> list[str]:
        return [f"-D{prefix}_SPAN_START={self.start}", f"-D{prefix}_SPAN_SIZE={self.size}"]


def span_of(members: list[Member]) -> Span:
    """The 8-byte-aligned bytes that hold every member; size 0 when wider than SPAN_MAX."""
    start = min(member.offset for member in members) & ~7
    end = (max(member.offset + member.size for member in members) + 7) & ~7
    return Span(start, end - start) if end - start <= SPAN_MAX else Span(start, 0)


@dataclass(frozen=True)
class KernelLayout:
    """Resolved offsets (the core's fields and every lesson's) plus what follows from which
    candidate matched."""

    members: dict[str, Member]
    spans: dict[str, tuple[str, ...]] = field(default_factory=lambda: dict(SPANS))
    extra_cflags: tuple[str, ...] = ()          # what the lessons compute from the offsets

    @property
    def refcount_bias(self) -> int:
        # file_ref_t stores count - 1 (FILE_REF_ONEREF is 0), atomic_long_t the count.
        return 1 if self.members["FILE_REF"].path == "f_ref" else 0

    @property
    def refcount_field(self) -> str:
        return f"file.{self.members['FILE_REF'].path}"

    def cflags(self) -> list[str]:
        flags = [f"-D{name}={member.offset}" for name, member in self.members.items()]
        for prefix in self.spans:
            flags += self.span(prefix).cflags(prefix)
        return flags + list(self.extra_cflags)

    def span(self, prefix: str) -> Span:
        return span_of([self.members[name] for name in self.spans[prefix]])


def load_layout(btf_path: str = "/sys/kernel/btf/vmlinux", machine: str | None = None) -> KernelLayout:
    """The core's fields (with this machine's syscall-argument slots) and every lesson's,
    from the running kernel's BTF."""
    from tracer import lessons

    on = machine or arch.machine()
    fields = {**syscall_arg_fields(on), **lessons.fields()}
    requests = {name: (struct, candidates) for name, (struct, candidates, _) in fields.items()}
    members = resolve_offsets(requests, btf_path=btf_path)
    slots = arch.SYSCALL_ARG_SLOTS.get(on, SYSCALL_NO_SLOTS)
    for name, (first, shift) in zip(SYSCALL_ARG_DEFINES, slots, strict=True):
        if shift:                      # an element of an array (arm64's regs[n]): its own 8 bytes
            found = members[name]
            members[name] = dataclasses.replace(found, path=f"{first}[{shift // 8}]", offset=found.offset + shift,
                                                size=8)
    for name, (struct, _, size) in fields.items():
        if size and members[name].size != size:
            raise BtfError(
                f"{struct}.{members[name].path} is {members[name].size} bytes on this kernel, "
                f"syspath expects {size}: this kernel is not supported yet"
            )
    extra = tuple(flag for each in lessons.all_lessons() for flag in each.extra_cflags(members))
    return KernelLayout(members, {**SPANS, **lessons.spans()}, extra)
