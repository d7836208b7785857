"""Exports of a session or a replay: the Chrome Trace Event file (Perfetto, chrome://tracing),
one track per thread and one instant per event."""
from __future__ import annotations

import itertools
import json
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

from tracer.events import CallOrder, Event
from tracer.observer import Observer
from tracer.recording import json_line
from tracer.userfiles import write_user_chunks


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
        self.spool: IO[bytes] = tempfile.TemporaryFile(prefix="syspath-trace-")     # noqa: SIM115 (closed by save)
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
