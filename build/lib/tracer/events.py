"""Events: the C record the probes emit, and the Event every other module uses."""
from __future__ import annotations

import bisect
import operator
import struct
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from tracer.text import printable

TEXT_LEN = 32          # SYSPATH_TEXT_LEN in probes/event.h

PROT_BITS = {0x1: "PROT_READ", 0x2: "PROT_WRITE", 0x4: "PROT_EXEC"}
MAP_BITS = {0x01: "MAP_SHARED", 0x02: "MAP_PRIVATE", 0x10: "MAP_FIXED", 0x20: "MAP_ANONYMOUS",
            0x8000: "MAP_POPULATE"}
# include/linux/mm.h
VM_BITS = {0x1: "VM_READ", 0x2: "VM_WRITE", 0x4: "VM_EXEC", 0x8: "VM_SHARED",
           0x10: "VM_MAYREAD", 0x20: "VM_MAYWRITE", 0x40: "VM_MAYEXEC", 0x80: "VM_MAYSHARE"}
MFD_BITS = {0x1: "MFD_CLOEXEC", 0x2: "MFD_ALLOW_SEALING", 0x4: "MFD_HUGETLB",
            0x8: "MFD_NOEXEC_SEAL", 0x10: "MFD_EXEC"}


@dataclass(frozen=True)
class CStruct:
    """The Python mirror of a C struct in probes/event.h: its members in order, each with
    its struct module format; padding is spelled out as members, so offsets are cumulative.
    A nested struct's members are named as C's offsetof() names them ("parent.mm")."""

    name: str
    members: tuple[tuple[str, str], ...]

    @property
    def layout(self) -> struct.Struct:
        return struct.Struct("<" + "".join(fmt for _, fmt in self.members))

    def offsets(self) -> dict[str, tuple[int, int]]:
        """member -> (offset, size), as the mirror lays them out."""
        placed: dict[str, tuple[int, int]] = {}
        offset = 0
        for member, fmt in self.members:
            size = struct.calcsize("<" + fmt)
            placed[member] = (offset, size)
            offset += size
        return placed


def _task_shared(owner: str) -> tuple[tuple[str, str], ...]:
    return tuple((f"{owner}.{name}", "Q") for name in ("mm", "fs", "files", "sighand", "signal"))


def _task_counts(owner: str) -> tuple[tuple[str, str], ...]:
    return tuple((f"{owner}.{name}", "I") for name in ("mm", "fs", "files", "sighand", "signal"))


# struct syspath_event up to its payload union
EVENT_HEADER = CStruct("syspath_event", (
    ("ts_ns", "Q"), ("pid", "I"), ("tgid", "I"), ("comm", "16s"), ("step", "H"), ("twin", "H"), ("fd", "i"),
    ("depth", "I"), ("stack_id", "i"), ("file", "Q"), ("inode", "Q"), ("refcount", "q")))
MEMFD_PAYLOAD = CStruct("memfd_payload", (("flags", "Q"), ("s_magic", "Q"), ("name", f"{TEXT_LEN}s")))
MMAP_PAYLOAD = CStruct("mmap_payload", (
    ("address", "Q"), ("length", "Q"), ("prot", "Q"), ("flags", "Q"), ("vma", "Q"), ("vm_flags", "Q"),
    ("vm_file", "Q"), ("pgoff", "Q"), ("vmas_in_file_tree", "I"), ("reserved", "I")))
SENDMSG_PAYLOAD = CStruct("sendmsg_payload", (("sock", "Q"), ("peer", "Q"), ("scm_rights", "I"),
                                              ("reserved", "I")))
PASSED_FILE_PAYLOAD = CStruct("passed_file_payload", (("index", "I"), ("count", "I"), ("sock", "Q")))
IN_FLIGHT_PAYLOAD = CStruct("in_flight_payload", (("skb", "Q"), ("sock", "Q"), ("index", "I"), ("count", "I")))
CLONE_PAYLOAD = CStruct("clone_payload", (("flags", "Q"), ("child_tid", "I"), ("child_tgid", "I"),
                                          *_task_shared("parent"), *_task_shared("child"),
                                          *_task_counts("users"), ("entry", "I")))
SIGNAL_PAYLOAD = CStruct("signal_payload", (("sig", "i"), ("code", "i"), ("group", "i"), ("result", "i"),
                                            ("target_tid", "I"), ("reserved", "I"), ("handler", "Q")))
COPY_PAYLOAD = CStruct("copy_payload", (("from", "Q"), ("copy", "Q")))
# union syspath_payload: every member starts where the header ends
PAYLOADS = (MEMFD_PAYLOAD, MMAP_PAYLOAD, SENDMSG_PAYLOAD, PASSED_FILE_PAYLOAD, IN_FLIGHT_PAYLOAD, CLONE_PAYLOAD,
            COPY_PAYLOAD, SIGNAL_PAYLOAD)
PAYLOAD_SIZE = max(payload.layout.size for payload in PAYLOADS)
# struct file_identity, after the union: what the event's struct file is
FILE_IDENTITY = CStruct("file_identity", (("f_op", "Q"), ("read_iter", "Q"), ("s_magic", "Q"), ("i_mode", "I"), ("reserved", "I"),
                                          ("name", f"{TEXT_LEN}s")))
IDENTITY_OFFSET = EVENT_HEADER.layout.size + PAYLOAD_SIZE
STEP_OFFSET, STEP_SIZE = EVENT_HEADER.offsets()["step"]      # a record's step id, read without decoding it
TWIN_OFFSET = EVENT_HEADER.offsets()["twin"][0]              # its twin, the same way (tracer/sink.py events_in)
EVENT_SIZE = IDENTITY_OFFSET + FILE_IDENTITY.layout.size


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

    @property
    def loads_code(self) -> bool:
        """A private mapping of a regular file: the dynamic loader mapping a library or
        ld.so.cache, an interpreter its locale files. Every file mapping is an event, but the
        screens fold these (the recording keeps them)."""
        return (self.step == "do_mmap" and self.detail.get("file_kind") == "regular"
                and "MAP_SHARED" not in self.detail.get("flags", ()))

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


# A function-tier event is stamped with its call's entry time but arrives at its return,
# after the events of the calls it made: events wait to be sorted, every REORDER_MAX events,
# and those older than the window go out (in a dense burst, all but the newest REORDER_KEPT).
# What a sort makes ready goes out RELEASE_CHUNK at a time, every RELEASE_EVERY events added:
# handed over at once, 8192 rows took a view 80-240 ms, while the kernel's ring filled.
REORDER_WINDOW_NS = 1_000_000_000
REORDER_MAX = 8192
REORDER_KEPT = 4 * REORDER_MAX
RELEASE_EVERY = 64
RELEASE_CHUNK = 2 * RELEASE_EVERY       # twice the pace of the sorts: `ready` empties between two


class CallOrder:
    """Events in, events out in call order (by time stamp), within a bounded window. They
    arrive almost sorted: each batch is sorted into the waiting ones it overlaps; those
    older than the window become ready, and in a dense burst all but the newest few batches.
    The ready ones go out in small chunks, so that their consumer's work comes in small pieces
    too, between which the sink empties the kernel's ring."""

    def __init__(self) -> None:
        self.waiting: list[Event] = []
        self.ready: deque[Event] = deque()
        self.next_sort = REORDER_MAX
        self.sorted_count = 0          # waiting[:sorted_count] is in order
        self.added = 0

    def add(self, event: Event) -> Sequence[Event]:
        self.waiting.append(event)
        self.added += 1
        if len(self.waiting) >= self.next_sort:
            self._sort()
        if self.added % RELEASE_EVERY or not self.ready:
            return ()
        ready = self.ready
        return [ready.popleft() for _ in range(min(RELEASE_CHUNK, len(ready)))]

    def _sort(self) -> None:
        """Sort what came since the last sort and merge it in. Only the new batch and the
        waiting events it overlaps are sorted: a sort of all 40k waiting events took 13-20 ms."""
        waiting = self.waiting
        batch = waiting[self.sorted_count:]
        del waiting[self.sorted_count:]
        overlap = bisect.bisect_right(waiting, min(map(_STAMP, batch)), key=_STAMP)
        waiting[overlap:] = sorted(waiting[overlap:] + batch, key=_STAMP)
        cut = bisect.bisect_left(waiting, waiting[-1].ts_ns - REORDER_WINDOW_NS, key=_STAMP)
        cut = max(cut, len(waiting) - REORDER_KEPT)
        self.ready.extend(waiting[:cut])
        del waiting[:cut]
        self.sorted_count = len(waiting)
        self.next_sort = len(waiting) + REORDER_MAX

    def drain(self) -> list[Event]:
        ready = [*self.ready, *sorted(self.waiting, key=_STAMP)]
        self.ready.clear()
        self.waiting = []
        self.next_sort = REORDER_MAX
        self.sorted_count = 0
        return ready


_STAMP = operator.attrgetter("ts_ns")


def call_ordered(events: Iterable[Event]) -> Iterator[Event]:
    """`events` in call order as they come, through CallOrder's window: not a sort of all of
    them, which would hold a whole recording in memory."""
    order = CallOrder()
    for event in events:
        yield from order.add(event)
    yield from order.drain()


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


_TEXTS: dict[bytes, str] = {}
_TEXTS_KEPT = 4096


def kernel_text(data: bytes) -> str:
    """A NUL-terminated string the kernel or the traced program chose, safe to show. The same
    few comms and names recur in every event of a loop: each is decoded once."""
    text = _TEXTS.get(data)
    if text is None:
        if len(_TEXTS) >= _TEXTS_KEPT:
            _TEXTS.clear()
        text = _TEXTS[data] = printable(data.split(b"\0", 1)[0].decode(errors="replace"))
    return text


# Each detail decoder takes its payload's members, in order, as parameters named like them
# ("parent.mm" -> parent_mm; tests/unit/test_event_layout.py checks it).

def _memfd_detail(flags: int, s_magic: int, name: bytes) -> dict[str, Any]:
    return {"name": kernel_text(name).removeprefix("memfd:"), "flags": flag_names(flags, MFD_BITS),
            "tmpfs": s_magic == 0x01021994}


def _shmem_detail(flags: int, s_magic: int, name: bytes) -> dict[str, Any]:
    return {"name": kernel_text(name), "s_magic": hex(s_magic)}


def _mmap_detail(address: int, length: int, prot: int, flags: int, vma: int, vm_flags: int, vm_file: int,
                 pgoff: int, vmas_in_file_tree: int, reserved: int) -> dict[str, Any]:
    detail: dict[str, Any] = {
        "address": hex(address), "length": length,
        "prot": flag_names(prot, PROT_BITS), "flags": flag_names(flags, MAP_BITS),
        "vmas_in_file_tree": vmas_in_file_tree,
    }
    if pgoff:
        detail["pgoff"] = pgoff
    if vma:
        detail.update(vma=hex_pointer(vma), vm_flags=flag_names(vm_flags & 0xFF, VM_BITS),
                      vm_file=hex_pointer(vm_file))
    return detail


def _sendmsg_detail(sock: int, peer: int, scm_rights: int, reserved: int) -> dict[str, Any]:
    return {"sock": hex_pointer(sock), "peer": hex_pointer(peer), "scm_rights": scm_rights}


def _passed_file_detail(index: int, count: int, sock: int) -> dict[str, Any]:
    if not count:                      # receive_fd hooked as a function: one file, no message
        return {}
    return {"index": index, "count": count, "sock": hex_pointer(sock)}


def _in_flight_detail(skb: int, sock: int, index: int, count: int) -> dict[str, Any]:
    return {"skb": hex_pointer(skb), "sock": hex_pointer(sock), "index": index, "count": count}


# include/uapi/linux/sched.h (task_newtask reports kernel_clone_args.flags: no exit signal in it)
CLONE_BITS = {0x100: "CLONE_VM", 0x200: "CLONE_FS", 0x400: "CLONE_FILES", 0x800: "CLONE_SIGHAND",
              0x1000: "CLONE_PIDFD", 0x2000: "CLONE_PTRACE", 0x4000: "CLONE_VFORK", 0x8000: "CLONE_PARENT",
              0x10000: "CLONE_THREAD", 0x20000: "CLONE_NEWNS", 0x40000: "CLONE_SYSVSEM", 0x80000: "CLONE_SETTLS",
              0x100000: "CLONE_PARENT_SETTID", 0x200000: "CLONE_CHILD_CLEARTID", 0x800000: "CLONE_UNTRACED",
              0x1000000: "CLONE_CHILD_SETTID", 0x80000000: "CLONE_IO"}
TASK_SHARED = ("mm", "fs", "files", "sighand", "signal")


# probes/clone.h CLONE_ENTRY_*: the system call that led to kernel_clone
CLONE_ENTRIES = {1: "clone", 2: "clone3", 3: "fork", 4: "vfork"}


def _clone_detail(flags: int, child_tid: int, child_tgid: int, parent_mm: int, parent_fs: int, parent_files: int,
                  parent_sighand: int, parent_signal: int, child_mm: int, child_fs: int, child_files: int,
                  child_sighand: int, child_signal: int, users_mm: int, users_fs: int, users_files: int,
                  users_sighand: int, users_signal: int, entry: int) -> dict[str, Any]:
    names = flag_names(flags, CLONE_BITS)
    parent = dict(zip(TASK_SHARED, map(hex_pointer, (parent_mm, parent_fs, parent_files, parent_sighand,
                                                     parent_signal))))
    child = dict(zip(TASK_SHARED, map(hex_pointer, (child_mm, child_fs, child_files, child_sighand, child_signal))))
    return {"kind": "thread" if "CLONE_THREAD" in names else "process", "flags": names,
            "child_tid": child_tid, "child_tgid": child_tgid,
            "shared": {name: parent[name] is not None and parent[name] == child[name] for name in TASK_SHARED},
            "parent": parent, "child": child,
            "users": dict(zip(TASK_SHARED, (users_mm, users_fs, users_files, users_sighand, users_signal))),
            "entry": CLONE_ENTRIES.get(entry)}


# include/uapi/linux/signal.h
SIGNAL_NAMES = {1: "SIGHUP", 2: "SIGINT", 3: "SIGQUIT", 6: "SIGABRT", 9: "SIGKILL", 10: "SIGUSR1", 11: "SIGSEGV",
                12: "SIGUSR2", 13: "SIGPIPE", 14: "SIGALRM", 15: "SIGTERM", 17: "SIGCHLD", 18: "SIGCONT",
                19: "SIGSTOP", 20: "SIGTSTP"}
# include/trace/events/signal.h enum trace_signal_result
SIGNAL_RESULTS = {0: "delivered", 1: "ignored", 2: "already pending", 3: "overflow", 4: "lost info"}


def _signal_generate_detail(sig: int, code: int, group: int, result: int, target_tid: int, reserved: int,
                            handler: int) -> dict[str, Any]:
    return {"sig": sig, "name": SIGNAL_NAMES.get(sig, f"signal {sig}"), "group": bool(group),
            "target_tid": target_tid, "result": SIGNAL_RESULTS.get(result, str(result)), "code": code}


def _signal_deliver_detail(sig: int, code: int, group: int, result: int, target_tid: int, reserved: int,
                           handler: int) -> dict[str, Any]:
    return {"sig": sig, "name": SIGNAL_NAMES.get(sig, f"signal {sig}"), "code": code,
            "handler": {0: "default", 1: "ignore"}.get(handler, hex(handler))}


def _copy_detail(from_: int, copy: int) -> dict[str, Any]:
    return {"from": hex_pointer(from_), "copy": hex_pointer(copy)}


# include/uapi/linux/magic.h and stat.h: what makes a file a memfd, a pipe, a socket, ...
TMPFS_MAGIC, HUGETLBFS_MAGIC, ANON_INODE_FS_MAGIC = 0x01021994, 0x958458F6, 0x09041934
S_IFMT = 0o170000
MODE_KINDS = {0o010000: "pipe", 0o140000: "socket", 0o100000: "regular", 0o040000: "directory",
              0o020000: "char_device", 0o060000: "block_device", 0o120000: "symlink"}


def file_kind(s_magic: int, i_mode: int, name: str) -> str:
    if name.startswith("memfd:") and s_magic in (TMPFS_MAGIC, HUGETLBFS_MAGIC):
        return "memfd"
    if s_magic == ANON_INODE_FS_MAGIC:
        return "anon_inode"
    return MODE_KINDS.get(i_mode & S_IFMT, "unknown")


def file_identity(f_op: int, read_iter: int, s_magic: int, i_mode: int, name: bytes, inode: int,
                  symbol: Callable[[int], str | None]) -> dict[str, Any]:
    """design.md's file_kind, file_name and f_op of an event's struct file. f_op is the table's
    symbol where kallsyms lists data (CONFIG_KALLSYMS_ALL), else its address; f_op_read is the
    function in its read_iter (or read) slot, which kallsyms always names."""
    text = kernel_text(name)
    kind = file_kind(s_magic, i_mode, text)
    if kind == "memfd":
        text = text.removeprefix("memfd:")
    elif kind in ("pipe", "socket") and not text:      # their names are made on demand (d_dname)
        text = f"{kind}:[{inode}]"
    identity = {"file_kind": kind, "file_name": text, "f_op": symbol(f_op) or hex(f_op)}
    if read_iter:
        identity["f_op_read"] = symbol(read_iter) or hex(read_iter)
    return identity


IDENTITIES_KEPT = 4096      # files whose identity is decoded once (bounded: cleared when full)


def _no_symbols(address: int) -> str | None:
    return None


DetailDecoder = Callable[..., dict[str, Any]]
# step -> the payload it carries and how its detail reads it
STEP_PAYLOADS: dict[str, tuple[CStruct, DetailDecoder]] = {
    "dup_fd": (COPY_PAYLOAD, _copy_detail),
    "dup_mm": (COPY_PAYLOAD, _copy_detail),
    "clone": (CLONE_PAYLOAD, _clone_detail),
    "signal_generate": (SIGNAL_PAYLOAD, _signal_generate_detail),
    "signal_deliver": (SIGNAL_PAYLOAD, _signal_deliver_detail),
    "memfd_create": (MEMFD_PAYLOAD, _memfd_detail),
    "shmem_file_setup": (MEMFD_PAYLOAD, _shmem_detail),
    "do_mmap": (MMAP_PAYLOAD, _mmap_detail),
    "unix_stream_sendmsg": (SENDMSG_PAYLOAD, _sendmsg_detail),
    "scm_fp_copy": (PASSED_FILE_PAYLOAD, _passed_file_detail),
    "receive_fd": (PASSED_FILE_PAYLOAD, _passed_file_detail),
    "in_flight": (IN_FLIGHT_PAYLOAD, _in_flight_detail),
}
_HEADER = EVENT_HEADER.layout
_IDENTITY = FILE_IDENTITY.layout
_DETAIL_READERS: dict[str, tuple[Callable[[bytes, int], tuple[Any, ...]], DetailDecoder]] = {
    step: (payload.layout.unpack_from, decode) for step, (payload, decode) in STEP_PAYLOADS.items()}


@dataclass(frozen=True)
class Decoder:
    """Turns event records (struct syspath_event bytes) into Events, knowing the session's step names and hooks."""

    step_names: tuple[str, ...]
    hooks: dict[str, str]
    refcount_bias: int
    other_steps: dict[int, tuple[str, str]] = field(default_factory=dict)   # id -> (step, hook): path records
    symbol: Callable[[int], str | None] = _no_symbols       # kernel address -> kallsyms name
    _identities: dict[tuple[Any, ...], dict[str, Any]] = field(default_factory=dict, compare=False, repr=False)

    def decode(self, data: bytes) -> Event:
        return self.decode_with_stack(data)[0]

    def without_symbols(self) -> Decoder:
        """This decoder with no kernel symbols to name addresses (nor its cache of names)."""
        return replace(self, symbol=_no_symbols, _identities={})

    def decode_with_stack(self, data: bytes) -> tuple[Event, int, Event | None]:
        """The event, the id of its kernel stack in the probes' stack map (<0: none), and its
        twin: the event of a call inside this one that the record stands for too (probes/event.h
        `twin`: memfd_create's shmem_file_setup), which comes first in call order."""
        ts_ns, pid, tgid, comm, step_id, twin, fd, depth, stack_id, file, inode, refcount = _HEADER.unpack_from(data)
        other = self.other_steps.get(step_id)
        if other is not None:
            return Event(ts_ns=ts_ns, pid=pid, tgid=tgid, comm="", step=other[0], hook=other[1]), stack_id, None
        name = kernel_text(comm)
        event = self._event(data, step_id, ts_ns, pid, tgid, name, fd, depth, file, inode, refcount)
        if not twin:
            return event, stack_id, None
        return event, stack_id, self._event(data, twin - 1, ts_ns, pid, tgid, name, -1, depth, file, inode, refcount)

    def _event(self, data: bytes, step_id: int, ts_ns: int, pid: int, tgid: int, comm: str, fd: int, depth: int,
               file: int, inode: int, refcount: int) -> Event:
        step = self.step_names[step_id] if step_id < len(self.step_names) else f"step{step_id}"
        reader = _DETAIL_READERS.get(step)
        detail = reader[1](*reader[0](data, _HEADER.size)) if reader else {}
        if depth:
            detail["depth"] = depth           # inside that many hooked kernel functions
        if file and len(data) >= EVENT_SIZE:
            f_op, read_iter, s_magic, i_mode, _, name = _IDENTITY.unpack_from(data, IDENTITY_OFFSET)
            if f_op:                           # 0: the probe could not read the file's identity
                detail.update(self._identity(f_op, read_iter, s_magic, i_mode, name, inode))
        # positional: a dataclass built with keywords costs a third more, once per event
        return Event(ts_ns, pid, tgid, comm, step, self.hooks.get(step, ""), fd if fd >= 0 else None,
                     hex_pointer(file), inode or None, self._refcount(step, file, refcount), detail)

    def _identity(self, *fields: Any) -> dict[str, Any]:
        """file_identity, once per file: a file's identity does not change while it lives."""
        found = self._identities.get(fields)
        if found is None:
            if len(self._identities) >= IDENTITIES_KEPT:
                self._identities.clear()
            found = self._identities[fields] = file_identity(*fields, self.symbol)
        return found

    def _refcount(self, step: str, file: int, raw: int) -> int | None:
        if not file:
            return None
        # fs/file_table.c __fput runs after the last reference went: a file_ref_t then holds
        # FILE_REF_DEAD, not a count
        return 0 if step == "fput" else raw + self.refcount_bias
