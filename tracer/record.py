"""Recordings: JSONL as design.md fixes it (session line, events, summary line)."""
from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from tracer.errors import SyspathError
from tracer.events import Event, in_call_order
from tracer.text import printable_tree

VERSION = 2               # version 1 (no stacks) still reads
SESSION_KEYS = ("type", "version", "kernel", "mode", "scenario", "command", "started_ns", "hooks")
SUMMARY_KEYS = ("type", "events", "lost", "exit_code", "duration_ns")


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


def _publish(temporary: Path, path: Path) -> None:
    """Give the finished file to the invoking user and move it into place in one step."""
    owner = invoking_user()
    if owner:
        os.chown(temporary, *owner)
    os.replace(temporary, path)


def _temporary_name(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


def ensure_writable(path: Path, what: str) -> None:
    """Fail before tracing, not after, when an output path cannot be written."""
    folder = path.parent if str(path.parent) else Path(".")
    if path.is_dir():
        raise SyspathError(f"cannot write the {what} {path}: it is a directory")
    if not folder.is_dir():
        raise SyspathError(f"cannot write the {what} {path}: no directory {folder}")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise SyspathError(f"cannot write the {what} {path}: {folder} is not writable")


def write_user_file(path: Path, text: str) -> None:
    """An export: written whole (temporary file + rename), owned by the invoking user."""
    temporary = _temporary_name(path)
    try:
        temporary.write_text(text, encoding="utf-8")
        _publish(temporary, path)
    except OSError as error:
        temporary.unlink(missing_ok=True)
        raise SyspathError(f"cannot write {path}: {error.strerror}") from None


class RecordingWriter:
    """Writes next to the target under a temporary name and renames it into place on
    close, so a reader never sees half a recording; owned by the invoking user."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.temporary = _temporary_name(path)
        try:
            self.stream: IO[str] = self.temporary.open("w", encoding="utf-8")
        except OSError as error:
            raise SyspathError(f"cannot write the recording {path}: {error.strerror}") from None

    def write(self, record: dict[str, Any]) -> None:
        self.stream.write(json.dumps(record, separators=(",", ":")) + "\n")

    def write_event(self, event: Event) -> None:
        self.write(event.as_record())

    def flush(self) -> None:
        self.stream.flush()

    def close(self) -> None:
        self.stream.close()
        _publish(self.temporary, self.path)


def _parse_line(number: int, line: str, path: Path) -> dict[str, Any]:
    try:
        record = json.loads(line)
    except json.JSONDecodeError as error:
        raise SyspathError(f"{path}:{number}: not JSON ({error.msg})") from None
    if not isinstance(record, dict) or record.get("type") not in ("session", "event", "summary"):
        raise SyspathError(f"{path}:{number}: not a syspath record (no type session/event/summary)")
    return printable_tree(record)


def _records(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    try:
        with path.open(encoding="utf-8") as lines:
            for number, line in enumerate(lines, start=1):
                if line.strip():
                    yield number, _parse_line(number, line, path)
    except OSError as error:
        raise SyspathError(f"cannot read {path}: {error.strerror}") from None
    except UnicodeDecodeError:
        raise SyspathError(f"{path}: not UTF-8 text") from None


def read_recording(path: Path) -> Recording:
    recording: Recording | None = None
    for number, record in _records(path):
        kind = record["type"]
        if recording is None:
            if kind != "session":
                raise SyspathError(f"{path}:{number}: a recording starts with a session line")
            recording = Recording(session=_session(number, record, path))
        elif kind == "event":
            recording.events.append(_event(number, record, path))
        elif kind == "summary":
            recording.summary = record
        else:
            raise SyspathError(f"{path}:{number}: a second session line")
    if recording is None:
        raise SyspathError(f"{path}: empty, no session line")
    return recording


def _session(number: int, record: dict[str, Any], path: Path) -> dict[str, Any]:
    hooks = record.get("hooks")
    if not isinstance(record.get("started_ns"), int) or not isinstance(hooks, list):
        raise SyspathError(f"{path}:{number}: session line without started_ns or hooks")
    for hook in hooks:
        if not isinstance(hook, dict) or not all(isinstance(hook.get(k), str) for k in ("step", "hook", "status", "reason")):
            raise SyspathError(f"{path}:{number}: malformed hook entry {str(hook)[:60]!r}")
    return record


EVENT_TYPES: dict[str, tuple[type, ...]] = {
    "ts_ns": (int,), "pid": (int,), "tgid": (int,), "comm": (str,), "step": (str,), "hook": (str,),
    "fd": (int, type(None)), "file": (str, type(None)), "inode": (int, type(None)),
    "refcount": (int, type(None)), "detail": (dict, type(None)),
    "stack": (list, type(None)), "stack_from": (str, type(None)),     # version 2; absent (None) in version 1
}


def _event(number: int, record: dict[str, Any], path: Path) -> Event:
    for key, types in EVENT_TYPES.items():
        value = record.get(key)
        if not isinstance(value, types) or isinstance(value, bool):
            raise SyspathError(f"{path}:{number}: event field {key} is {type(value).__name__}, "
                               f"expected {' or '.join(t.__name__ for t in types)}")
    if not all(isinstance(frame, str) for frame in record.get("stack") or ()):
        raise SyspathError(f"{path}:{number}: event field stack holds a non-string frame")
    return Event.from_record(record)


def chrome_trace(session: dict[str, Any], events: list[Event]) -> dict[str, Any]:
    """Trace Event Format (Perfetto, chrome://tracing): a track per thread, an instant per step."""
    started = int(session.get("started_ns", 0))
    threads: dict[tuple[int, int], str] = {}
    trace: list[dict[str, Any]] = []
    for event in in_call_order(events):
        threads[(event.tgid, event.pid)] = event.comm          # the latest name: after exec or prctl
        args = {"hook": event.hook, "fd": event.fd, "file": event.file, "inode": event.inode,
                "refcount": event.refcount, **event.detail, "stack": event.stack, "stack_from": event.stack_from}
        trace.append({"name": event.step, "cat": event.hook.split(":", 1)[0] or "syspath", "ph": "i", "s": "t",
                      "ts": (event.ts_ns - started) / 1000, "pid": event.tgid, "tid": event.pid,
                      "args": {k: v for k, v in args.items() if v is not None}})
    processes: dict[int, str] = {}
    for (tgid, pid), comm in threads.items():
        if pid == tgid or tgid not in processes:       # the leader's name, else the first seen
            processes[tgid] = comm
    metadata = [{"name": "process_name", "ph": "M", "pid": tgid, "tid": tgid, "args": {"name": f"{comm} [{tgid}]"}}
                for tgid, comm in processes.items()]
    metadata += [{"name": "thread_name", "ph": "M", "pid": tgid, "tid": pid, "args": {"name": f"{comm} [{pid}]"}}
                 for (tgid, pid), comm in threads.items()]
    return {"traceEvents": metadata + trace, "displayTimeUnit": "ms",
            "otherData": {"kernel": session.get("kernel"), "mode": session.get("mode"),
                          "scenario": session.get("scenario"), "command": session.get("command")}}
