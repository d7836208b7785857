"""Recordings: JSONL as design.md fixes it (session line, events, summary line)."""
from __future__ import annotations

import contextlib
import ctypes
import errno
import itertools
import json
import os
import pwd
import stat
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from tracer.errors import SyspathError
from tracer.events import CallOrder, Event
from tracer.observer import Observer
from tracer.text import map_strings, printable

try:
    import orjson
except ImportError:          # a plain json recording, written slower
    orjson = None

VERSION = 2               # version 1 (no stacks) still reads
SESSION_KEYS = ("type", "version", "kernel", "mode", "scenario", "command", "started_ns", "hooks")
SUMMARY_KEYS = ("type", "events", "lost", "exit_code", "duration_ns", "undecoded")   # undecoded: only when > 0
LIBC = ctypes.CDLL(None, use_errno=True)
SETGROUPS_SYSCALL = {"x86_64": 116, "aarch64": 159, "riscv64": 159}


@dataclass
class Recording:
    session: dict[str, Any]
    events: list[Event] = field(default_factory=list)
    summary: dict[str, Any] | None = None


def invoking_user() -> tuple[int, int] | None:
    """(uid, gid) of the user behind sudo, if any."""
    uid, gid = os.environ.get("SUDO_UID"), os.environ.get("SUDO_GID")
    if uid and gid and uid.isdigit() and gid.isdigit():
        return int(uid), int(gid)
    return None


def _user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid {uid}"


def _groups(uid: int, gid: int) -> list[int]:
    try:
        return os.getgrouplist(pwd.getpwuid(uid).pw_name, gid)
    except KeyError:
        return [gid]


def _set_thread_groups(groups: list[int]) -> None:
    """setgroups(2) for this thread only: glibc's setgroups() changes every thread of the
    process (the tracer's other threads must keep root's), the raw system call does not."""
    number = SETGROUPS_SYSCALL.get(os.uname().machine)
    if number is None:
        raise SyspathError(f"cannot write files as the invoking user on {os.uname().machine}: "
                           "run syspath without sudo's SUDO_UID, or write to a root-owned place")
    array = (ctypes.c_uint * len(groups))(*groups)
    if LIBC.syscall(number, len(groups), array) != 0:
        raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))


@contextlib.contextmanager
def as_invoking_user() -> Iterator[None]:
    """File-system rights of the user behind sudo, for this thread (setfsuid/setfsgid and
    the user's groups): whatever is created here is the user's, and what the user may not
    create fails with EACCES. Root's own rights when syspath was not started through sudo."""
    owner = invoking_user()
    if owner is None or os.geteuid() != 0:
        yield
        return
    uid, gid = owner
    saved_groups = os.getgroups()
    _set_thread_groups(_groups(uid, gid))
    LIBC.setfsgid(gid)
    LIBC.setfsuid(uid)
    try:
        if LIBC.setfsuid(uid) != uid or LIBC.setfsgid(gid) != gid:     # returns the current value
            raise SyspathError("cannot take the invoking user's file-system rights (setfsuid)")
        yield
    finally:
        LIBC.setfsuid(0)
        LIBC.setfsgid(0)
        _set_thread_groups(saved_groups)


def _writer_uid() -> int:
    """Whose rights files are written with."""
    owner = invoking_user()
    return owner[0] if owner and os.geteuid() == 0 else os.geteuid()


def _fail(path: Path, what: str, reason: str) -> SyspathError:
    return SyspathError(f"cannot write the {what} {path}: {reason}")


def ensure_writable(path: Path, what: str) -> None:
    """Fail before tracing, not after, when the user could not create the output path:
    the same exclusive create (then removed) and the same checks as the real write."""
    with as_invoking_user():
        _check_target(path, what)
        descriptor, temporary = _create_beside(path, what)
        os.close(descriptor)
        os.unlink(temporary)


def _check_target(path: Path, what: str) -> None:
    """What the user could not do at path, checked without following a link there
    (a link at the final name is replaced, never written through)."""
    folder = path.parent
    try:
        here = os.stat(folder)
    except OSError as error:
        raise _fail(path, what, f"cannot reach the directory {folder} ({error.strerror})") from None
    if not stat.S_ISDIR(here.st_mode):
        raise _fail(path, what, f"{folder} is not a directory")
    try:
        old = os.lstat(path)
    except FileNotFoundError:
        return
    except OSError as error:
        raise _fail(path, what, error.strerror) from None
    if stat.S_ISDIR(old.st_mode):
        raise _fail(path, what, "it is a directory")
    if not (stat.S_ISREG(old.st_mode) or stat.S_ISLNK(old.st_mode)):
        # the file is renamed into place: a device such as /dev/null would be replaced
        raise _fail(path, what, "it is not a regular file (a device, pipe or socket); name a file")
    if here.st_mode & stat.S_ISVTX and _writer_uid() not in (0, old.st_uid, here.st_uid):
        raise _fail(path, what, f"{path.name} belongs to someone else in the sticky directory {folder}")


def _create_beside(path: Path, what: str) -> tuple[int, str]:
    """A new file under an unpredictable name in the target's directory, created
    exclusively (O_CREAT|O_EXCL: a planted name, link or not, makes it fail)."""
    try:
        descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as error:
        reason = f"{path.parent} is not writable by {_user_name(_writer_uid())}" if error.errno in (errno.EACCES, errno.EPERM) \
            else error.strerror
        raise _fail(path, what, reason) from None
    os.fchmod(descriptor, 0o666 & ~_umask())
    return descriptor, temporary


def _umask() -> int:
    current = os.umask(0o022)
    os.umask(current)
    return current


def _create_in_place(path: Path, what: str) -> int:
    """Created as the invoking user under a temporary name, then renamed over the target
    (a symlink planted there is replaced, never followed): returns the open descriptor."""
    with as_invoking_user():
        _check_target(path, what)
        descriptor, temporary = _create_beside(path, what)
        try:
            os.replace(temporary, path)
        except OSError as error:
            os.close(descriptor)
            os.unlink(temporary)
            raise _fail(path, what, error.strerror) from None
    return descriptor


def write_user_file(path: Path, text: str) -> None:
    """An export: written whole under a temporary name, then renamed into place, as the user."""
    write_user_chunks(path, [text.encode()])


def write_user_chunks(path: Path, chunks: Iterable[bytes]) -> None:
    """write_user_file for an export made of pieces (read from a spool as they are written)."""
    with as_invoking_user():
        _check_target(path, "file")
        descriptor, temporary = _create_beside(path, "file")
        try:
            with os.fdopen(descriptor, "wb") as stream:
                for chunk in chunks:
                    stream.write(chunk)
            os.replace(temporary, path)
        except OSError as error:
            os.unlink(temporary)
            raise _fail(path, "file", error.strerror) from None


def json_line(record: dict[str, Any]) -> str:
    """One record as a line of compact JSON. orjson writes the same JSON some ten times faster
    than json (1 us against 14 here: the writer's share of a busy trace); json when it is
    missing or refuses a value."""
    if orjson is not None:
        try:
            return orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE).decode()
        except TypeError:
            pass
    return json.dumps(record, separators=(",", ":")) + "\n"


class RecordingWriter:
    """The recording is at its path from the start (created as the invoking user and
    renamed into place at once) and flushed every poll cycle: if syspath is killed, what
    was seen is there and replayable, only the summary line is missing."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.stream: IO[str] = os.fdopen(_create_in_place(path, "recording"), "w", encoding="utf-8")

    def write(self, record: dict[str, Any]) -> None:
        self.stream.write(json_line(record))

    def write_event(self, event: Event) -> None:
        self.write(event.as_record())

    def flush(self) -> None:
        self.stream.flush()

    def close(self) -> None:
        self.stream.close()


def _parse_line(number: int, raw: bytes, path: Path) -> dict[str, Any]:
    try:
        line = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise SyspathError(f"{path}:{number}: not UTF-8 text (byte 0x{raw[error.start]:02x} "
                           f"at column {error.start + 1})") from None
    try:
        record = json.loads(line)
    except json.JSONDecodeError as error:
        cut = "" if raw.endswith(b"\n") else ", the line is cut short (the recording was not finished)"
        raise SyspathError(f"{path}:{number}: not JSON ({error.msg}{cut})") from None
    except (ValueError, RecursionError) as error:          # digits beyond int's limit, nesting too deep
        raise SyspathError(f"{path}:{number}: not JSON syspath can read ({str(error)[:80]})") from None
    if not isinstance(record, dict) or record.get("type") not in ("session", "event", "summary"):
        raise SyspathError(f"{path}:{number}: not a syspath record (no type session/event/summary)")
    return record if _without_controls(raw) else map_strings(record, _shown)


def _without_controls(raw: bytes) -> bool:
    """No string of this JSON line can hold a character printable() escapes: JSON writes a
    control below 0x20 as an escape (a backslash), and DEL, the C1 controls, the separators
    and the bidi overrides as themselves (DEL, or bytes beyond ASCII). Nearly every line of a
    recording syspath made: checking each of its 31 strings took some 40 % of a replay."""
    return raw.isascii() and b"\\" not in raw and b"\x7f" not in raw


def _shown(text: str) -> str:
    """Text syspath recorded is printable already (escaped when it was decoded): shown as
    it is, so a replay looks like the live run. Text with raw control characters (a file
    made by hand) is escaped whole."""
    bare = text.replace("\\", "")
    return text if printable(bare) == bare else printable(text)


def _records(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    try:
        with path.open("rb") as lines:
            for number, raw in enumerate(lines, start=1):
                if raw.strip():
                    yield number, _parse_line(number, raw, path)
    except OSError as error:
        raise SyspathError(f"cannot read {path}: {error.strerror}") from None


def read_recording(path: Path) -> Recording:
    """A whole recording in memory (small ones: tests). A replay streams it: open_recording."""
    stream = open_recording(path)
    return Recording(stream.session, list(stream.events()), stream.summary)


@dataclass(frozen=True)
class RecordingStream:
    """A recording as a replay reads it: the session line and the summary (the last line,
    read from the file's end) at once, the events one at a time and as often as asked, so
    that a replay holds what its views keep, not every event of the recording."""

    path: Path
    session: dict[str, Any]
    summary: dict[str, Any] | None

    def events(self) -> Iterator[Event]:
        records = _records(self.path)
        next(records)                                   # the session line, checked at open
        for number, record in records:
            kind = record["type"]
            if kind == "event":
                yield _event(number, record, self.path)
            elif kind == "summary":
                _summary(number, record, self.path)     # read at open if it ends the file; checked here
            else:
                raise SyspathError(f"{self.path}:{number}: a second session line")


def open_recording(path: Path) -> RecordingStream:
    number, record = next(_records(path), (0, {}))
    if not record:
        raise SyspathError(f"{path}: empty, no session line")
    if record["type"] != "session":
        raise SyspathError(f"{path}:{number}: a recording starts with a session line")
    return RecordingStream(path, _session(number, record, path), _closing_summary(path))


SUMMARY_TAIL = 1 << 16          # bytes read from a recording's end to find its summary line


def _closing_summary(path: Path) -> dict[str, Any] | None:
    """The summary line that ends the recording, or None: a tracer killed before its end
    wrote none. A last line that does not read as one is left for events() to name."""
    try:
        with path.open("rb") as recording:
            size = recording.seek(0, os.SEEK_END)
            recording.seek(max(0, size - SUMMARY_TAIL))
            tail = recording.read()
    except OSError as error:
        raise SyspathError(f"cannot read {path}: {error.strerror}") from None
    lines = tail.rstrip(b"\n").rsplit(b"\n", 1)
    if len(lines) < 2 and size > SUMMARY_TAIL:
        return None                                     # a last line longer than any summary
    try:
        record = _parse_line(0, lines[-1] + b"\n", path)
        return _summary(0, record, path) if record["type"] == "summary" else None
    except SyspathError:
        return None


SESSION_TYPES: dict[str, tuple[type, ...]] = {
    "version": (int,), "kernel": (str,), "mode": (str,), "scenario": (str, type(None)), "command": (list, type(None)),
}


def _session(number: int, record: dict[str, Any], path: Path) -> dict[str, Any]:
    hooks = record.get("hooks")
    if not isinstance(record.get("started_ns"), int) or not isinstance(hooks, list):
        raise SyspathError(f"{path}:{number}: session line without started_ns or hooks")
    for key, types in SESSION_TYPES.items():
        if key in record and (not isinstance(record[key], types) or isinstance(record[key], bool)):
            raise SyspathError(f"{path}:{number}: session field {key} is {type(record[key]).__name__}, "
                               f"expected {' or '.join(t.__name__ for t in types)}")
    if not all(isinstance(word, str) for word in record.get("command") or []):
        raise SyspathError(f"{path}:{number}: session field command holds something other than strings")
    for hook in hooks:
        if not isinstance(hook, dict) or not all(isinstance(hook.get(k), str) for k in ("step", "hook", "status", "reason")):
            raise SyspathError(f"{path}:{number}: malformed hook entry {str(hook)[:60]!r}")
    return record


def _summary(number: int, record: dict[str, Any], path: Path) -> dict[str, Any]:
    for key in SUMMARY_KEYS[1:]:
        value = record.get(key)
        if key in record and (not isinstance(value, int) or isinstance(value, bool)):
            raise SyspathError(f"{path}:{number}: summary field {key} is {type(value).__name__}, expected int")
    steps = record.get("lost_steps", {})
    if not isinstance(steps, dict) or not all(isinstance(k, str) and isinstance(v, int) for k, v in steps.items()):
        raise SyspathError(f"{path}:{number}: summary field lost_steps is not a map of step to count")
    return record


EVENT_TYPES: dict[str, tuple[type, ...]] = {
    "ts_ns": (int,), "pid": (int,), "tgid": (int,), "comm": (str,), "step": (str,), "hook": (str,),
    "fd": (int, type(None)), "file": (str, type(None)), "inode": (int, type(None)),
    "refcount": (int, type(None)), "detail": (dict, type(None)),
    "stack": (list, type(None)), "stack_from": (str, type(None)),     # version 2; absent (None) in version 1
}


_TEXT = (str, type(None))
_NUMBER = (int, type(None))
# The detail fields the views read, by shape: a type tuple, or ("list"|"dict", type tuple)
# for the items or values. Fields not listed are shown as they are.
DETAIL_SHAPES: dict[str, Any] = {
    **{key: ("list", (str,)) for key in ("flags", "vm_flags", "prot")},
    **{key: (int,) for key in ("index", "count", "depth")},         # computed with, never null
    **{key: _NUMBER for key in ("child_tid", "child_tgid", "length", "scm_rights",
                                "vmas_in_file_tree", "pgoff", "sig", "target_tid", "pfn")},
    **{key: _TEXT for key in ("address", "vma", "sock", "peer", "name", "kind", "s_magic", "vm_file", "entry",
                              "file_kind", "file_name", "f_op", "skb", "addr", "copy")},
    "shared": ("dict", (bool,)), "parent": ("dict", _TEXT), "child": ("dict", _TEXT), "users": ("dict", _NUMBER),
}


def _fits(value: Any, shape: Any) -> bool:
    """Exact types: JSON gives nothing else, and a bool is then no int."""
    if shape[0] == "list":
        return type(value) is list and all(type(item) in shape[1] for item in value)
    if shape[0] == "dict":
        return type(value) is dict and all(type(item) in shape[1] for item in value.values())
    return type(value) in shape


def _event(number: int, record: dict[str, Any], path: Path) -> Event:
    for key, types in EVENT_TYPES.items():
        value = record.get(key)
        if type(value) not in types:
            raise SyspathError(f"{path}:{number}: event field {key} is {type(value).__name__}, "
                               f"expected {' or '.join(t.__name__ for t in types)}")
    for key, value in (record.get("detail") or {}).items():
        shape = DETAIL_SHAPES.get(key)
        if shape is not None and not _fits(value, shape):
            raise SyspathError(f"{path}:{number}: event detail {key} has the wrong type ({json.dumps(value)[:40]})")
    if not all(isinstance(frame, str) for frame in record.get("stack") or ()):
        raise SyspathError(f"{path}:{number}: event field stack holds a non-string frame")
    return Event.from_record(record)


def trace_instant(event: Event, started_ns: int, threads: dict[tuple[int, int], str]) -> dict[str, Any]:
    """One event as an instant on its thread's track; `threads` learns the thread's name."""
    threads[(event.tgid, event.pid)] = event.comm          # the latest name: after exec or prctl
    args = {"hook": event.hook, "fd": event.fd, "file": event.file, "inode": event.inode,
            "refcount": event.refcount, **event.detail, "stack": event.stack, "stack_from": event.stack_from}
    return {"name": event.step, "cat": event.hook.split(":", 1)[0] or "syspath", "ph": "i", "s": "t",
            "ts": (event.ts_ns - started_ns) / 1000, "pid": event.tgid, "tid": event.pid,
            "args": {k: v for k, v in args.items() if v is not None}}


def thread_names(threads: dict[tuple[int, int], str]) -> list[dict[str, Any]]:
    """The metadata naming each process's and thread's track."""
    processes: dict[int, str] = {}
    for (tgid, pid), comm in threads.items():
        if pid == tgid or tgid not in processes:       # the leader's name, else the first seen
            processes[tgid] = comm
    metadata = [{"name": "process_name", "ph": "M", "pid": tgid, "tid": tgid, "args": {"name": f"{comm} [{tgid}]"}}
                for tgid, comm in processes.items()]
    return metadata + [{"name": "thread_name", "ph": "M", "pid": tgid, "tid": pid, "args": {"name": f"{comm} [{pid}]"}}
                       for (tgid, pid), comm in threads.items()]


def trace_footer(session: dict[str, Any]) -> dict[str, Any]:
    return {"displayTimeUnit": "ms", "otherData": {"kernel": session.get("kernel"), "mode": session.get("mode"),
                                                   "scenario": session.get("scenario"),
                                                   "command": session.get("command")}}


class ChromeTraceSpool(Observer):
    """--chrome-trace for a session as it runs: each event's instant is written as it comes (in
    call order within CallOrder's window) to an unlinked temporary file, and only the threads'
    names are kept, so a long trace costs disk, not memory. `save` assembles the export from it."""

    def __init__(self) -> None:
        self.spool: IO[bytes] = tempfile.TemporaryFile(prefix="syspath-trace-")
        self.order = CallOrder()
        self.threads: dict[tuple[int, int], str] = {}
        self.session: dict[str, Any] = {}
        self.count = 0

    def started(self, header: dict[str, Any]) -> None:
        self.session = header

    def event(self, event: Event) -> None:
        self._write(self.order.add(event))

    def finished(self, lost: int, exit_code: int, lost_steps: dict[str, int] | None = None) -> None:
        self._write(self.order.drain())

    def _write(self, events: Sequence[Event]) -> None:
        started = int(self.session.get("started_ns", 0))
        for event in events:
            self.spool.write(b"," + json_line(trace_instant(event, started, self.threads)).rstrip("\n").encode())
            self.count += 1

    def save(self, path: Path) -> None:
        """The export at `path`, written as the invoking user like every other one."""
        self._write(self.order.drain())           # a session cut short was not told `finished`
        head = json.dumps({"traceEvents": thread_names(self.threads)})[:-2]      # '{"traceEvents": [...'
        tail = json.dumps(trace_footer(self.session))[1:]                        # '"displayTimeUnit": ...}'
        self.spool.seek(0)                            # each instant starts with a comma: the names come first
        instants = iter(lambda: self.spool.read(1 << 20), b"")
        write_user_chunks(path, itertools.chain([head.encode()], instants, [b"], " + tail.encode()]))
        self.spool.close()
