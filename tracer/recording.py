"""Recordings: JSONL as design.md fixes it (session line, events and the program's output
lines, summary line): the writer, the reader and what it checks."""
from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from tracer.errors import SyspathError
from tracer.events import Event
from tracer.observer import OutputLine
from tracer.shapes import detail_shapes
from tracer.text import map_strings, printable
from tracer.userfiles import create_in_place

try:
    import orjson
    HAVE_ORJSON = True
except ImportError:          # a plain json recording, written slower
    HAVE_ORJSON = False

VERSION = 2               # version 1 (no stacks) still reads
SESSION_KEYS = ("type", "version", "kernel", "mode", "scenario", "command", "started_ns", "hooks")
SUMMARY_KEYS = ("type", "events", "lost", "exit_code", "duration_ns", "undecoded")   # undecoded: only when > 0
RECORD_TYPES = ("session", "event", "output", "summary")

Played = Event | OutputLine     # what a recording holds between its session and summary lines


@dataclass
class Recording:
    session: dict[str, Any]
    events: list[Event] = field(default_factory=list)
    summary: dict[str, Any] | None = None
    outputs: list[OutputLine] = field(default_factory=list)


def json_line(record: dict[str, Any]) -> str:
    """One record as a line of compact JSON. orjson writes the same JSON some ten times faster
    than json (1 us against 14 here: the writer's share of a busy trace); json when it is
    missing or refuses a value."""
    if HAVE_ORJSON:
        try:
            return orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE).decode()
        except TypeError:
            pass
    return json.dumps(record, separators=(",", ":")) + "\n"


def output_record(line: OutputLine) -> dict[str, Any]:
    """A line the program printed, as the recording keeps it. A plain line's role is its
    stream (stdout, stderr); a report line's is the role it names."""
    return {"type": "output", "ts_ns": line.ts_ns, "pid": line.pid if line.pid is not None else 0,
            "role": line.role, "text": line.text, "report": line.report}


class RecordingWriter:
    """The recording is at its path from the start (created as the invoking user and
    renamed into place at once) and flushed every poll cycle: if syspath is killed, what
    was seen is there and replayable, only the summary line is missing."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.stream: IO[str] = os.fdopen(create_in_place(path, "recording"), "w", encoding="utf-8")

    def write(self, record: dict[str, Any]) -> None:
        self.stream.write(json_line(record))

    def write_event(self, event: Event) -> None:
        self.write(event.as_record())

    def write_output(self, line: OutputLine) -> None:
        self.write(output_record(line))

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
    if not isinstance(record, dict) or record.get("type") not in RECORD_TYPES:
        raise SyspathError(f"{path}:{number}: not a syspath record (no type {'/'.join(RECORD_TYPES)})")
    return record if _without_controls(raw) else _shown_tree(record)


def _shown_tree(record: dict[str, Any]) -> dict[str, Any]:
    shown: dict[str, Any] = map_strings(record, _shown)
    return shown


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
        raise SyspathError(f"cannot read {path}: {error.strerror or error}") from None


def read_recording(path: Path) -> Recording:
    """A whole recording in memory (small ones: tests). A replay streams it: open_recording."""
    stream = open_recording(path)
    recording = Recording(stream.session, summary=stream.summary)
    for played in stream.played():
        if isinstance(played, Event):
            recording.events.append(played)
        else:
            recording.outputs.append(played)
    return recording


@dataclass(frozen=True)
class RecordingStream:
    """A recording as a replay reads it: the session line and the summary (the last line,
    read from the file's end) at once, the rest one record at a time and as often as asked,
    so that a replay holds what its views keep, not every event of the recording."""

    path: Path
    session: dict[str, Any]
    summary: dict[str, Any] | None

    def played(self) -> Iterator[Played]:
        """The events and the program's output lines, in the recording's order: the order
        in which the live session told them to its views."""
        records = _records(self.path)
        next(records)                                   # the session line, checked at open
        for number, record in records:
            kind = record["type"]
            if kind == "event":
                yield _event(number, record, self.path)
            elif kind == "output":
                yield _output(number, record, self.path)
            elif kind == "summary":
                _summary(number, record, self.path)     # read at open if it ends the file; checked here
            else:
                raise SyspathError(f"{self.path}:{number}: a second session line")

    def events(self) -> Iterator[Event]:
        """The events alone (output lines are checked, and left out)."""
        return (played for played in self.played() if isinstance(played, Event))


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
    wrote none. A last line that does not read as one is left for played() to name."""
    try:
        with path.open("rb") as recording:
            size = recording.seek(0, os.SEEK_END)
            recording.seek(max(0, size - SUMMARY_TAIL))
            tail = recording.read()
    except OSError as error:
        raise SyspathError(f"cannot read {path}: {error.strerror or error}") from None
    lines = tail.rstrip(b"\n").rsplit(b"\n", 1)
    if len(lines) < 2 and size > SUMMARY_TAIL:
        return None                                     # a last line longer than any summary
    try:
        record = _parse_line(0, lines[-1] + b"\n", path)
        return _summary(0, record, path) if record["type"] == "summary" else None
    except SyspathError:
        return None


SESSION_TYPES: dict[str, tuple[type, ...]] = {
    "version": (int,), "kernel": (str,), "machine": (str,), "mode": (str,), "scenario": (str, type(None)),
    "command": (list, type(None)),
}


def _expected(types: tuple[type, ...]) -> str:
    return " or ".join(t.__name__ for t in types)


def _session(number: int, record: dict[str, Any], path: Path) -> dict[str, Any]:
    hooks = record.get("hooks")
    if not isinstance(record.get("started_ns"), int) or not isinstance(hooks, list):
        raise SyspathError(f"{path}:{number}: session line without started_ns or hooks")
    for key, types in SESSION_TYPES.items():
        if key in record and (not isinstance(record[key], types) or isinstance(record[key], bool)):
            raise SyspathError(f"{path}:{number}: session field {key} is {type(record[key]).__name__}, "
                               f"expected {_expected(types)}")
    if not all(isinstance(word, str) for word in record.get("command") or []):
        raise SyspathError(f"{path}:{number}: session field command holds something other than strings")
    for hook in hooks:
        if not isinstance(hook, dict) or not all(isinstance(hook.get(k), str)
                                                 for k in ("step", "hook", "status", "reason")):
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
OUTPUT_TYPES: dict[str, tuple[type, ...]] = {
    "ts_ns": (int,), "pid": (int,), "role": (str,), "text": (str,), "report": (dict, type(None)),
}


def _check_fields(number: int, record: dict[str, Any], path: Path, kind: str,
                  fields: dict[str, tuple[type, ...]]) -> None:
    """Exact types: JSON gives nothing else, and a bool is then no int. A missing field is None."""
    for key, types in fields.items():
        value = record.get(key)
        if type(value) not in types:
            raise SyspathError(f"{path}:{number}: {kind} field {key} is {type(value).__name__}, "
                               f"expected {_expected(types)}")


def _fits(value: Any, shape: Any) -> bool:
    """Exact types: JSON gives nothing else, and a bool is then no int."""
    if shape[0] == "list":
        return type(value) is list and all(type(item) in shape[1] for item in value)
    if shape[0] == "dict":
        return type(value) is dict and all(type(item) in shape[1] for item in value.values())
    return type(value) in shape


def _event(number: int, record: dict[str, Any], path: Path) -> Event:
    _check_fields(number, record, path, "event", EVENT_TYPES)
    for key, value in (record.get("detail") or {}).items():
        shape = detail_shapes().get(key)
        if shape is not None and not _fits(value, shape):
            raise SyspathError(f"{path}:{number}: event detail {key} has the wrong type ({json.dumps(value)[:40]})")
    if not all(isinstance(frame, str) for frame in record.get("stack") or ()):
        raise SyspathError(f"{path}:{number}: event field stack holds a non-string frame")
    return Event.from_record(record)


def _output(number: int, record: dict[str, Any], path: Path) -> OutputLine:
    """An output record, as the line the live views were told. Report lines come only from
    stdout; a plain line's stream is its role."""
    _check_fields(number, record, path, "output", OUTPUT_TYPES)
    report = record["report"]
    return OutputLine(stream="stdout" if report is not None else record["role"], text=record["text"],
                      report=report, ts_ns=record["ts_ns"], pid=record["pid"])
