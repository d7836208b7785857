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


# struct syspath_event up to its payload union
EVENT_HEADER = CStruct("syspath_event", (
    ("ts_ns", "Q"), ("pid", "I"), ("tgid", "I"), ("comm", "16s"), ("step", "H"), ("twin", "H"), ("fd", "i"),
    ("depth", "I"), ("stack_id", "i"), ("file", "Q"), ("inode", "Q"), ("refcount", "q")))
# struct file_identity, after the union: what the event's struct file is
FILE_IDENTITY = CStruct("file_identity", (("f_op", "Q"), ("read_iter", "Q"), ("s_magic", "Q"), ("i_mode", "I"),
                                          ("reserved", "I"), ("name", f"{TEXT_LEN}s")))
STEP_OFFSET, STEP_SIZE = EVENT_HEADER.offsets()["step"]      # a record's step id, read without decoding it
TWIN_OFFSET = EVENT_HEADER.offsets()["twin"][0]              # its twin, the same way (tracer/sink.py events_in)
UNION_ALIGN = 8                                              # the union's members hold u64s


@dataclass(frozen=True)
class EventLayout:
    """Where struct syspath_event's parts are, given the payload union the lessons make."""

    payload_size: int
    identity_offset: int
    size: int

    @classmethod
    def of(cls, payloads: Iterable[CStruct]) -> EventLayout:
        largest = max((payload.layout.size for payload in payloads), default=0)
        payload_size = -(-largest // UNION_ALIGN) * UNION_ALIGN
        identity_offset = EVENT_HEADER.layout.size + payload_size
        return cls(payload_size, identity_offset, identity_offset + FILE_IDENTITY.layout.size)


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
    def from_record(cls, record: dict[str, Any]) -> Event:
        """A version-2 event, or a version-1 one (no stack)."""
        stack = record.get("stack")
        return cls(record["ts_ns"], record["pid"], record["tgid"], record["comm"], record["step"], record["hook"],
                   record.get("fd"), record.get("file"), record.get("inode"), record.get("refcount"),
                   detail=dict(record.get("detail") or {}),
                   stack=[str(frame) for frame in stack] if isinstance(stack, list) else None,
                   stack_from=record.get("stack_from") if isinstance(record.get("stack_from"), str) else None)


# Hooks whose program runs as the hooked call starts: what they read is the state before it ran
# (kretprobe, fexit and sys_exit_* read after; a tracepoint inside a function reads where it fires)
ENTRY_HOOKS = ("kprobe:", "fentry:", "tracepoint:syscalls:sys_enter_")


def reads_before_call(hook: str) -> bool:
    """The event's hook read at the call's entry, before the kernel did the work."""
    return hook.startswith(ENTRY_HOOKS)


def refcount_text(event: Event) -> str:
    """The count as a column shows it: read at an entry hook, it is the value before the call."""
    if event.refcount is None:
        return ""
    return f"{event.refcount} (before)" if reads_before_call(event.hook) else str(event.refcount)


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


_HEADER = EVENT_HEADER.layout
_IDENTITY = FILE_IDENTITY.layout
Record = bytes | bytearray | memoryview      # a record as the ring or a test hands it over
DetailReader = tuple[Callable[[Record, int], tuple[Any, ...]], Callable[..., dict[str, Any]]]


@dataclass(frozen=True)
class Decoder:
    """Turns event records (struct syspath_event bytes) into Events, knowing the session's step names and hooks."""

    step_names: tuple[str, ...]
    hooks: dict[str, str]
    refcount_bias: int
    layout: EventLayout
    readers: dict[str, DetailReader] = field(default_factory=dict)          # step -> its payload's reader
    other_steps: dict[int, tuple[str, str]] = field(default_factory=dict)   # id -> (step, hook): path records
    symbol: Callable[[int], str | None] = _no_symbols       # kernel address -> kallsyms name
    released_steps: frozenset[str] = frozenset()            # steps seen once the file's last reference went
    _identities: dict[tuple[Any, ...], dict[str, Any]] = field(default_factory=dict, compare=False, repr=False)

    def decode(self, data: Record) -> Event:
        return self.decode_with_stack(data)[0]

    def without_symbols(self) -> Decoder:
        """This decoder with no kernel symbols to name addresses (nor its cache of names)."""
        return replace(self, symbol=_no_symbols, _identities={})

    def decode_with_stack(self, data: Record) -> tuple[Event, int, Event | None]:
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

    def _event(self, data: Record, step_id: int, ts_ns: int, pid: int, tgid: int, comm: str, fd: int, depth: int,
               file: int, inode: int, refcount: int) -> Event:
        step = self.step_names[step_id] if step_id < len(self.step_names) else f"step{step_id}"
        reader = self.readers.get(step)
        detail = reader[1](*reader[0](data, _HEADER.size)) if reader else {}
        if depth:
            detail["depth"] = depth           # inside that many hooked kernel functions
        if file and len(data) >= self.layout.size:
            f_op, read_iter, s_magic, i_mode, _, name = _IDENTITY.unpack_from(data, self.layout.identity_offset)
            if f_op:                           # 0: the probe could not read the file's identity
                detail.update(self._identity(f_op, read_iter, s_magic, i_mode, name, inode))
        # positional: a dataclass built with keywords costs a third more, once per event
        return Event(ts_ns, pid, tgid, comm, step, self.hooks.get(step, ""), fd if fd >= 0 else None,
                     hex_pointer(file), inode or None, self._refcount(step, file, refcount), detail)

    def _identity(self, f_op: int, read_iter: int, s_magic: int, i_mode: int, name: bytes,
                  inode: int) -> dict[str, Any]:
        """file_identity, once per file: a file's identity does not change while it lives."""
        fields = (f_op, read_iter, s_magic, i_mode, name, inode)
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
        return 0 if step in self.released_steps else raw + self.refcount_bias
