"""The kernel struct fields the probes read, and where they are on this kernel.

Every offset comes from the running kernel's BTF (tracer.btf); none from headers.
Field names drift between versions, so each field lists its candidates in order.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from tracer import arch
from tracer.btf import BtfError, Member, resolve_offsets

# define name -> (struct, candidate member paths, expected size in bytes or 0 for any)
FIELDS: dict[str, tuple[str, tuple[str, ...], int]] = {
    "TASK_FILES": ("task_struct", ("files",), 8),
    "TASK_MM": ("task_struct", ("mm",), 8),
    "TASK_FS": ("task_struct", ("fs",), 8),
    "TASK_SIGHAND": ("task_struct", ("sighand",), 8),
    "TASK_SIGNAL": ("task_struct", ("signal",), 8),
    "TASK_PID": ("task_struct", ("pid",), 4),
    "TASK_TGID": ("task_struct", ("tgid",), 4),
    "CLONE_ARGS_FLAGS": ("kernel_clone_args", ("flags",), 8),
    # the counts that sharing is made of (kernel/fork.c copy_mm, copy_fs, copy_files, copy_sighand, copy_signal)
    "MM_USERS": ("mm_struct", ("mm_users",), 4),
    "FS_USERS": ("fs_struct", ("users",), 4),
    "FILES_COUNT": ("files_struct", ("count",), 4),
    "SIGHAND_COUNT": ("sighand_struct", ("count",), 4),
    "SIGNAL_SIGCNT": ("signal_struct", ("sigcnt",), 4),
    "FILES_FDT": ("files_struct", ("fdt",), 8),
    "FDT_FD": ("fdtable", ("fd",), 8),
    "FDT_MAX_FDS": ("fdtable", ("max_fds",), 4),
    "FILE_INODE": ("file", ("f_inode",), 8),
    # f_count (atomic_long_t) became f_ref (file_ref_t) in 6.13: include/linux/file_ref.h
    "FILE_REF": ("file", ("f_ref", "f_count"), 8),
    "FILE_PRIVATE_DATA": ("file", ("private_data",), 8),
    "FILE_MAPPING": ("file", ("f_mapping",), 8),
    "FILE_OP": ("file", ("f_op",), 8),
    "FILE_DENTRY": ("file", ("f_path.dentry",), 8),
    "DENTRY_NAME": ("dentry", ("d_name.name",), 8),
    "FOPS_READ_ITER": ("file_operations", ("read_iter",), 8),
    "FOPS_READ": ("file_operations", ("read",), 8),
    "INODE_INO": ("inode", ("i_ino",), 8),
    "INODE_SB": ("inode", ("i_sb",), 8),
    "INODE_MODE": ("inode", ("i_mode",), 2),
    "SB_MAGIC": ("super_block", ("s_magic",), 8),
    "SOCKET_TYPE": ("socket", ("type",), 2),
    "SOCKET_SK": ("socket", ("sk",), 8),
    "SOCKET_FILE": ("socket", ("file",), 8),
    "SOCK_FAMILY": ("sock", ("__sk_common.skc_family",), 2),
    "UNIX_PEER": ("unix_sock", ("peer",), 8),
    # an skb in flight: the peer's receive queue, and the files in its control block (UNIXCB)
    "SOCK_RECEIVE_QUEUE": ("sock", ("sk_receive_queue",), 0),
    "SOCK_RECEIVE_QUEUE_PREV": ("sock", ("sk_receive_queue.prev",), 8),
    "SKB_CB": ("sk_buff", ("cb",), 0),
    "UNIXCB_FP": ("unix_skb_parms", ("fp",), 8),
    "MAPPING_IMMAP": ("address_space", ("i_mmap",), 0),
    "RB_LEFT": ("rb_node", ("rb_left",), 8),
    "RB_RIGHT": ("rb_node", ("rb_right",), 8),
    "VMA_SHARED_RB": ("vm_area_struct", ("shared.rb",), 0),
    "VMA_MM": ("vm_area_struct", ("vm_mm",), 8),
    "VMA_START": ("vm_area_struct", ("vm_start",), 8),
    "VMA_FLAGS": ("vm_area_struct", ("vm_flags", "__vm_flags"), 8),
    "VMA_FILE": ("vm_area_struct", ("vm_file",), 8),
    "VMA_PGOFF": ("vm_area_struct", ("vm_pgoff",), 8),
    "MSGHDR_CONTROL": ("user_msghdr", ("msg_control",), 8),
    "MSGHDR_CONTROLLEN": ("user_msghdr", ("msg_controllen",), 8),
    # the kernel's own msghdr, whose control buffer sendmsg has copied in (net/socket.c)
    "KMSGHDR_CONTROL": ("msghdr", ("msg_control",), 8),
    "KMSGHDR_CONTROLLEN": ("msghdr", ("msg_controllen",), 8),
    "SCM_COOKIE_FP": ("scm_cookie", ("fp",), 8),
    "SCM_FP_COUNT": ("scm_fp_list", ("count",), 2),
    "SCM_FP_FP": ("scm_fp_list", ("fp",), 0),
    # x86-64: a syscall's six arguments, saved on entry (arch/x86/entry/entry_64.S)
    "PT_REGS_DI": ("pt_regs", ("di",), 8),
    "PT_REGS_SI": ("pt_regs", ("si",), 8),
    "PT_REGS_DX": ("pt_regs", ("dx",), 8),
    "PT_REGS_R10": ("pt_regs", ("r10",), 8),
    "PT_REGS_R8": ("pt_regs", ("r8",), 8),
    "PT_REGS_R9": ("pt_regs", ("r9",), 8),
    "CMSG_LEN": ("cmsghdr", ("cmsg_len",), 8),
    "CMSG_LEVEL": ("cmsghdr", ("cmsg_level",), 4),
    "CMSG_TYPE": ("cmsghdr", ("cmsg_type",), 4),
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
    "SOCKFILE": ("FILE_INODE", "FILE_PRIVATE_DATA"),                          # the socket behind it
    "INODE": ("INODE_MODE", "INODE_SB", "INODE_INO"),
    "FOPS": ("FOPS_READ", "FOPS_READ_ITER"),
    "SOCKET": ("SOCKET_TYPE", "SOCKET_SK"),
    "PT_REGS": ("PT_REGS_DI", "PT_REGS_SI", "PT_REGS_DX", "PT_REGS_R10", "PT_REGS_R8", "PT_REGS_R9"),
    # a node of the i_mmap tree: its vm_pgoff, its children, and the vma's identity
    "VMA": ("VMA_START", "VMA_MM", "VMA_FLAGS", "VMA_PGOFF", "VMA_FILE", "VMA_SHARED_RB"),
}
# Wider than this (a randomized struct layout), the stack copy would cost too much room:
# such a struct is read field by field (<PREFIX>_SPAN_SIZE=0).
SPAN_MAX = 256


SYSCALL_ARG_DEFINES = ("PT_REGS_DI", "PT_REGS_SI", "PT_REGS_DX", "PT_REGS_R10", "PT_REGS_R8", "PT_REGS_R9")


def syscall_arg_fields(machine: str) -> dict[str, tuple[str, tuple[str, ...], int]]:
    """FIELDS with the six syscall-argument slots of this machine's pt_regs (tracer/arch.py);
    the defines keep x86-64's names: they are argument slots 1-6."""
    slots = arch.SYSCALL_ARG_SLOTS.get(machine)
    if slots is None:
        return FIELDS
    return {**FIELDS, **{name: ("pt_regs", (member,), 0 if extra else 8)
                         for name, (member, extra) in zip(SYSCALL_ARG_DEFINES, slots)}}


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
    """Resolved offsets plus what follows from which candidate matched."""

    members: dict[str, Member]

    @property
    def refcount_bias(self) -> int:
        # file_ref_t stores count - 1 (FILE_REF_ONEREF is 0), atomic_long_t the count.
        return 1 if self.members["FILE_REF"].path == "f_ref" else 0

    @property
    def refcount_field(self) -> str:
        return f"file.{self.members['FILE_REF'].path}"

    def cflags(self) -> list[str]:
        flags = [f"-D{name}={member.offset}" for name, member in self.members.items()]
        control_data = self.members["CMSG_TYPE"].offset + 4
        flags.append(f"-DCMSG_DATA_OFFSET={(control_data + 7) & ~7}")
        for prefix, names in SPANS.items():
            flags += self.span(prefix).cflags(prefix)
        return flags

    def span(self, prefix: str) -> Span:
        return span_of([self.members[name] for name in SPANS[prefix]])


def load_layout(btf_path: str = "/sys/kernel/btf/vmlinux", machine: str | None = None) -> KernelLayout:
    fields = syscall_arg_fields(machine or arch.machine())
    requests = {name: (struct, candidates) for name, (struct, candidates, _) in fields.items()}
    members = resolve_offsets(requests, btf_path=btf_path)
    for name, (first, extra) in zip(SYSCALL_ARG_DEFINES, arch.SYSCALL_ARG_SLOTS.get(machine or arch.machine(), ())):
        if extra:                      # an element of an array (arm64's regs[n]): its own 8 bytes
            found = members[name]
            members[name] = dataclasses.replace(found, path=f"{first}[{extra // 8}]", offset=found.offset + extra,
                                                size=8)
    for name, (struct, _, size) in fields.items():
        if size and members[name].size != size:
            raise BtfError(
                f"{struct}.{members[name].path} is {members[name].size} bytes on this kernel, "
                f"syspath expects {size}: this kernel is not supported yet"
            )
    return KernelLayout(members)
