"""Events: the C record the probes emit, and the Event every other module uses."""
from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from tracer.text import printable

TEXT_LEN = 32
ARG_COUNT = 13

PROT_BITS = {0x1: "PROT_READ", 0x2: "PROT_WRITE", 0x4: "PROT_EXEC"}
MAP_BITS = {0x01: "MAP_SHARED", 0x02: "MAP_PRIVATE", 0x10: "MAP_FIXED", 0x20: "MAP_ANONYMOUS",
            0x8000: "MAP_POPULATE"}
# include/linux/mm.h
VM_BITS = {0x1: "VM_READ", 0x2: "VM_WRITE", 0x4: "VM_EXEC", 0x8: "VM_SHARED",
           0x10: "VM_MAYREAD", 0x20: "VM_MAYWRITE", 0x40: "VM_MAYEXEC", 0x80: "VM_MAYSHARE"}
MFD_BITS = {0x1: "MFD_CLOEXEC", 0x2: "MFD_ALLOW_SEALING", 0x4: "MFD_HUGETLB",
            0x8: "MFD_NOEXEC_SEAL", 0x10: "MFD_EXEC"}


# struct syspath_event in probes/common.h, unpacked in one call (ctypes field access
# cost ~3 us per event; this ~1 us): ts pid tgid comm step fd depth stack_id file inode
# refcount arg[13] text[32].
RECORD = struct.Struct(f"<QII16sIiIiQQq{ARG_COUNT}Q{TEXT_LEN}s")


@dataclass(frozen=True, slots=True)
class Raw:
    """What the detail decoders read from a record."""

    arg: tuple[int, ...]
    text: bytes


@dataclass(slots=True)
class Event:
    ts_ns: int
    pid: int
    tgid: int
    comm: str
    step: str
    hook: str
    fd: int | None = None
    file: str | None = None
    inode: int | None = None
    refcount: int | None = None
    detail: dict[str, Any] = field(default_factory=dict)
    stack: list[str] | None = None      # the kernel call chain, innermost frame first
    stack_from: str | None = None       # the hook where that chain was captured

    def as_record(self) -> dict[str, Any]:
        return {"type": "event", "ts_ns": self.ts_ns, "pid": self.pid, "tgid": self.tgid,
                "comm": self.comm, "step": self.step, "hook": self.hook, "fd": self.fd,
                "file": self.file, "inode": self.inode, "refcount": self.refcount,
                "detail": self.detail, "stack": self.stack, "stack_from": self.stack_from}

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> "Event":
        """A version-2 event, or a version-1 one (no stack)."""
        fields = {key: record.get(key) for key in ("ts_ns", "pid", "tgid", "comm", "step", "hook",
                                                   "fd", "file", "inode", "refcount")}
        stack = record.get("stack")
        return cls(**fields, detail=dict(record.get("detail") or {}),
                   stack=[str(frame) for frame in stack] if isinstance(stack, list) else None,
                   stack_from=record.get("stack_from") if isinstance(record.get("stack_from"), str) else None)


def in_call_order(events: Sequence[Event]) -> list[Event]:
    """Events stamped with their call's entry time arrive when the call returns:
    sorting by time puts them back in call order (stable for equal stamps)."""
    return sorted(events, key=lambda event: event.ts_ns)


def hex_pointer(value: int) -> str | None:
    return f"0x{value:016x}" if value else None


_FLAG_NAMES: dict[tuple[int, int], list[str]] = {}


def flag_names(value: int, bits: dict[int, str]) -> list[str]:
    """Names of the bits set (unknown ones in hex). The same flags recur in every event of
    a loop: each combination is built once and shared (read-only)."""
    key = (id(bits), value)
    names = _FLAG_NAMES.get(key)
    if names is None:
        names = [name for bit, name in bits.items() if value & bit]
        unknown = value & ~sum(bits)
        names = _FLAG_NAMES[key] = names + ([hex(unknown)] if unknown else [])
    return names


def kernel_text(data: bytes) -> str:
    """A NUL-terminated string the kernel or the traced program chose, safe to show."""
    return printable(data.split(b"\0", 1)[0].decode(errors="replace"))


def _memfd_detail(raw: Raw) -> dict[str, Any]:
    return {"name": kernel_text(raw.text).removeprefix("memfd:"), "flags": flag_names(raw.arg[0], MFD_BITS),
            "tmpfs": raw.arg[1] == 0x01021994}


def _shmem_detail(raw: Raw) -> dict[str, Any]:
    return {"name": kernel_text(raw.text), "s_magic": hex(raw.arg[0])}


def _mmap_detail(raw: Raw) -> dict[str, Any]:
    detail: dict[str, Any] = {
        "address": hex(raw.arg[0]), "length": raw.arg[1],
        "prot": flag_names(raw.arg[2], PROT_BITS), "flags": flag_names(raw.arg[3], MAP_BITS),
        "vmas_in_file_tree": raw.arg[6],
    }
    if raw.arg[4]:
        detail.update(vma=hex_pointer(raw.arg[4]), vm_flags=flag_names(raw.arg[5] & 0xFF, VM_BITS),
                      vm_file=hex_pointer(raw.arg[7]))
    return detail


def _sendmsg_detail(raw: Raw) -> dict[str, Any]:
    return {"sock": hex_pointer(raw.arg[0]), "peer": hex_pointer(raw.arg[1]), "scm_rights": raw.arg[2]}


def _passed_file_detail(raw: Raw) -> dict[str, Any]:
    if not raw.arg[1]:                      # receive_fd hooked as a function: one file, no message
        return {}
    return {"index": raw.arg[0], "count": raw.arg[1], "sock": hex_pointer(raw.arg[2])}


# include/uapi/linux/sched.h (task_newtask reports kernel_clone_args.flags: no exit signal in it)
CLONE_BITS = {0x100: "CLONE_VM", 0x200: "CLONE_FS", 0x400: "CLONE_FILES", 0x800: "CLONE_SIGHAND",
              0x1000: "CLONE_PIDFD", 0x2000: "CLONE_PTRACE", 0x4000: "CLONE_VFORK", 0x8000: "CLONE_PARENT",
              0x10000: "CLONE_THREAD", 0x20000: "CLONE_NEWNS", 0x40000: "CLONE_SYSVSEM", 0x80000: "CLONE_SETTLS",
              0x100000: "CLONE_PARENT_SETTID", 0x200000: "CLONE_CHILD_CLEARTID", 0x800000: "CLONE_UNTRACED",
              0x1000000: "CLONE_CHILD_SETTID", 0x80000000: "CLONE_IO"}
TASK_SHARED = ("mm", "fs", "files", "sighand", "signal")


def _clone_detail(raw: Raw) -> dict[str, Any]:
    flags = flag_names(raw.arg[0], CLONE_BITS)
    parent = {name: hex_pointer(raw.arg[3 + i]) for i, name in enumerate(TASK_SHARED)}
    child = {name: hex_pointer(raw.arg[8 + i]) for i, name in enumerate(TASK_SHARED)}
    return {"kind": "thread" if "CLONE_THREAD" in flags else "process", "flags": flags,
            "child_tid": raw.arg[1], "child_tgid": raw.arg[2],
            "shared": {name: parent[name] is not None and parent[name] == child[name] for name in TASK_SHARED},
            "parent": parent, "child": child}


def _copy_detail(raw: Raw) -> dict[str, Any]:
    return {"from": hex_pointer(raw.arg[0]), "copy": hex_pointer(raw.arg[1])}


DETAIL_DECODERS = {
    "dup_fd": _copy_detail,
    "dup_mm": _copy_detail,
    "clone": _clone_detail,
    "memfd_create": _memfd_detail,
    "shmem_file_setup": _shmem_detail,
    "do_mmap": _mmap_detail,
    "unix_stream_sendmsg": _sendmsg_detail,
    "scm_fp_copy": _passed_file_detail,
    "receive_fd": _passed_file_detail,
}


@dataclass(frozen=True)
class Decoder:
    """Turns event records (struct syspath_event bytes) into Events, knowing the session's step names and hooks."""

    step_names: tuple[str, ...]
    hooks: dict[str, str]
    refcount_bias: int
    other_steps: dict[int, tuple[str, str]] = field(default_factory=dict)   # id -> (step, hook): path records

    def decode(self, data: bytes) -> Event:
        return self.decode_with_stack(data)[0]

    def decode_with_stack(self, data: bytes) -> tuple[Event, int]:
        """The event and the id of its kernel stack in the probes' stack map (<0: none)."""
        (ts_ns, pid, tgid, comm, step_id, fd, depth, stack_id, file, inode, refcount,
         *arg, text) = RECORD.unpack_from(data)
        other = self.other_steps.get(step_id)
        if other is not None:
            return Event(ts_ns=ts_ns, pid=pid, tgid=tgid, comm="", step=other[0], hook=other[1]), stack_id
        step = self.step_names[step_id] if step_id < len(self.step_names) else f"step{step_id}"
        decode_detail = DETAIL_DECODERS.get(step)
        detail = decode_detail(Raw(tuple(arg), text)) if decode_detail else {}
        if depth:
            detail["depth"] = depth           # inside that many hooked kernel functions
        return Event(
            ts_ns=ts_ns, pid=pid, tgid=tgid, comm=kernel_text(comm),
            step=step, hook=self.hooks.get(step, ""), fd=fd if fd >= 0 else None, file=hex_pointer(file),
            inode=inode or None, refcount=self._refcount(step, file, refcount), detail=detail,
        ), stack_id

    def _refcount(self, step: str, file: int, raw: int) -> int | None:
        if not file:
            return None
        # fs/file_table.c __fput runs after the last reference went: a file_ref_t then holds
        # FILE_REF_DEAD, not a count
        return 0 if step == "fput" else raw + self.refcount_bias
