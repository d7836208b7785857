"""Recordings: JSONL as design.md fixes it (session line, events, summary line)."""
from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from tracer.errors import SyspathError
from tracer.events import Event

VERSION = 1
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


class RecordingWriter:
    """Writes next to the target under a temporary name and renames it into place on
    close, so a reader never sees half a recording; owned by the invoking user."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            self.stream: IO[str] = self.temporary.open("w", encoding="utf-8")
        except OSError as error:
            raise SyspathError(f"cannot write the recording {path}: {error.strerror}") from None

    def write(self, record: dict[str, Any]) -> None:
        self.stream.write(json.dumps(record, separators=(",", ":")) + "\n")

    def write_event(self, event: Event) -> None:
        self.write(event.as_record())

    def close(self) -> None:
        self.stream.close()
        owner = invoking_user()
        if owner:
            os.chown(self.temporary, *owner)
        os.replace(self.temporary, self.path)


def _parse_line(number: int, line: str, path: Path) -> dict[str, Any]:
    try:
        record = json.loads(line)
    except json.JSONDecodeError as error:
        raise SyspathError(f"{path}:{number}: not JSON ({error.msg})") from None
    if not isinstance(record, dict) or record.get("type") not in ("session", "event", "summary"):
        raise SyspathError(f"{path}:{number}: not a syspath record (no type session/event/summary)")
    return record


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
}


def _event(number: int, record: dict[str, Any], path: Path) -> Event:
    for key, types in EVENT_TYPES.items():
        value = record.get(key)
        if not isinstance(value, types) or isinstance(value, bool):
            raise SyspathError(f"{path}:{number}: event field {key} is {type(value).__name__}, "
                               f"expected {' or '.join(t.__name__ for t in types)}")
    return Event.from_record(record)
