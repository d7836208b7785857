"""A session: the probe build, the traced program and the event sink, put together.

Order matters: probes are attached and the recording's session line is written
before the target is released from its gate; the recording ends with a summary
line however the session ends (done, Ctrl-C, SIGTERM), and the probes detach.
"""
from __future__ import annotations

import gc
import os
import select
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from tracer import arch, catalog, kernel, lessons, paths, stacks
from tracer.build import Probes, Startup, build, known_symbols
from tracer.errors import interrupt_exit_code
from tracer.observer import Observer, OutputLine
from tracer.pages import PageWatch, WatchedSteps
from tracer.recording import VERSION, RecordingWriter
from tracer.sink import EventSink
from tracer.target import Target, scenario_command

POLL_S = 0.02             # between two takes from the ring: it holds ~80k events, 0.2 s at 400k/s
GC_THRESHOLDS = (20_000, 20, 100)     # Python's are (700, 10, 10)
DECODE_SLICE_S = 0.02     # decoding between two takes, while the program runs
STOP_DECODE_S = 1.0       # decoding left to a stopped session: a usual backlog, not a long tail


@dataclass(frozen=True)
class Pacing:
    """--step (wait for a go) or --pace SECONDS before each step of the scenario. The go is
    a line on stdin, unless `ready` says it (the explorer owns the terminal: a key there)."""

    seconds: float | None = None      # None: wait for the go
    ready: Callable[[], bool] | None = None
    key: str = "Enter"
    resumed: Callable[[], None] = lambda: None

    def wait(self, keep_polling: Callable[[], None]) -> None:
        deadline = time.monotonic() + (self.seconds or 0)
        while True:
            keep_polling()
            if self._go() or (self.seconds is not None and time.monotonic() >= deadline):
                self.resumed()
                return

    def _go(self) -> bool:
        if self.ready is not None:
            return self.ready()
        if self.seconds is None and select.select([sys.stdin], [], [], 0)[0]:
            sys.stdin.readline()
            return True
        return False

    @property
    def how(self) -> str:
        return f"press {self.key}" if self.seconds is None else f"in {self.seconds:g} s"


@dataclass
class SessionResult:
    header: dict[str, Any]
    events: int = 0
    lost: int = 0
    lost_steps: dict[str, int] = field(default_factory=dict)
    exit_code: int = 0
    duration_ns: int = 0
    startup: Startup | None = None
    undecoded: int = 0          # taken from the kernel, left undecoded when the session was stopped

    def summary_record(self) -> dict[str, Any]:
        summary = {"type": "summary", "events": self.events, "lost": self.lost,
                   "exit_code": self.exit_code, "duration_ns": self.duration_ns}
        return (summary | ({"lost_steps": self.lost_steps} if self.lost_steps else {})
                | ({"undecoded": self.undecoded} if self.undecoded else {}))


def session_header(scenario: str | None, command: Sequence[str], mode: str,
                   choices: list[catalog.HookChoice]) -> dict[str, Any]:
    return {"type": "session", "version": VERSION, "kernel": kernel.release(), "machine": arch.machine(), "mode": mode,
            "scenario": scenario, "command": None if scenario else list(command),
            "started_ns": time.monotonic_ns(), "hooks": [choice.as_record() for choice in choices],
            "kallsyms": paths.kallsyms_facts(known_symbols())}


def told_by(line: OutputLine, root_pid: int) -> OutputLine:
    """The line with the process it is told of: the pid its report names, else the traced
    program's root (the whole process tree writes to the one pipe syspath reads)."""
    named = line.report.get("pid") if line.report else None
    return replace(line, pid=named if type(named) is int else root_pid)


class Session:
    def __init__(self, scenario: str | None, command: Sequence[str], mode: str,
                 record: Path | None, observer: Observer, pacing: Pacing | None = None) -> None:
        self.scenario = scenario
        self.command = scenario_command(scenario) if scenario else list(command)
        self.mode = mode
        self.record_path = record
        self.observer = observer
        self.pacing = pacing

    def run(self) -> SessionResult:
        probes = build(self.scenario, self.mode)
        writer: RecordingWriter | None = None
        try:
            writer = RecordingWriter(self.record_path) if self.record_path else None
            return Run(self, probes, writer).run()
        finally:
            probes.close()
            if writer:
                writer.close()


class Run:
    """One session under way: its state lives here, from the header to the summary."""

    def __init__(self, session: Session, probes: Probes, writer: RecordingWriter | None) -> None:
        self.session = session
        self.probes = probes
        self.program = probes.program
        self.writer = writer
        header = session_header(session.scenario, session.command, session.mode, probes.choices)
        self.result = SessionResult(header, startup=probes.startup)
        decoder = lessons.decoder(probes.hooks, probes.layout.refcount_bias, stacks.path_steps(), stacks.exact_symbol)
        joiner = (stacks.PathJoiner(probes.points, stacks.kernel_stack_table(
            lambda stack_id: self.program.stack_addresses(stack_id, stacks.STACK_DEPTH)))
                  if probes.with_stacks else None)
        watched = WatchedSteps.from_lessons()
        self.sink = EventSink(decoder, session.observer, writer, joiner, PageWatch(watched) if watched else None)
        self.ring = self.program.ring_reader()
        if self.ring is None:
            self.program.on_record(self.sink.take)
        self.step_write: int | None = None

    def run(self) -> SessionResult:
        # What start made (bcc, clang's bindings, the imports) lives as long as the session: out
        # of the cyclic collector's sight. Decoding makes no cycles (a 200k-event trace gave the
        # collector ~500 objects, all from start), but the events waiting in the call-order
        # windows (up to 80k) grow old: each full collection walked them for 60-70 ms while the
        # ring filled. Collections are made rare instead (GC_THRESHOLDS).
        gc.freeze()
        gc.set_threshold(*GC_THRESHOLDS)
        if self.writer:
            self.writer.write(self.result.header)
        self.session.observer.started(self.result.header)
        try:
            try:
                exit_code = self._drive()
            except BaseException as stop:      # interrupted or failed: the recording still ends well
                self._finish(interrupt_exit_code(stop), stopped=True)
                raise
            self._finish(exit_code)
        finally:
            if self.ring is not None:
                self.ring.close()
            self.sink.close()
        return self.result

    def _drive(self) -> int:
        step_read, self.step_write = os.pipe() if self.session.pacing else (None, None)
        try:
            target = Target(self.session.command, step_read)
        finally:
            if step_read is not None:
                os.close(step_read)
        try:
            target.wait_at_gate()
            self.program.track(target.pid)
            target.go()
            while target.running():
                self._collect(POLL_S, DECODE_SLICE_S)
                self._take_output(target)
                self.session.observer.tick()
        except BaseException:
            target.kill()
            raise
        finally:
            if self.step_write is not None:
                os.close(self.step_write)
                self.step_write = None
        self._catch_up()
        self._take_output(target)
        return target.exit_code()

    def _catch_up(self) -> None:
        """The program has ended: what it left undecoded is decoded slice by slice, and the
        views are told how much still waits (a busy program's tail takes seconds)."""
        self._take(0)
        told = False
        while self.sink.backlog:
            self.session.observer.catching_up(self.sink.backlog)
            self.session.observer.tick()            # the explorer's quit or a signal stops it here
            told = True
            self._collect(0, DECODE_SLICE_S)
        if told:
            self.session.observer.catching_up(0)
        self._collect(0)

    def _take(self, wait_s: float) -> None:
        """Move what the probes queued out of the kernel's ring, into the sink's spool."""
        if self.ring is None:
            self.program.poll(int(wait_s * 1000))
            return
        if wait_s:
            self.ring.wait(wait_s)
        while (block := self.ring.read()) is not None:
            self.sink.take_block(block)

    def _collect(self, wait_s: float, decode_s: float | None = None) -> None:
        """Take what the kernel queued and decode it (for decode_s seconds at most: None, all of
        it), taking again between slices; then get the recording onto disk."""
        self._take(wait_s)
        self.probes.wait_for_symbols(self._take_and_look)
        while True:
            self.sink.decode(decode_s or DECODE_SLICE_S, take=lambda: self._take(0))
            if decode_s is not None or not self.sink.backlog:
                break
        self.sink.look_at_pages()
        if self.writer:
            self.writer.flush()

    def _take_and_look(self) -> None:
        """While nothing can be decoded yet: empty the ring and look at the pages read ahead."""
        self._take(0)
        self.sink.look_at_pages()

    def _take_output(self, target: Target) -> None:
        """The program's lines, recorded and told to the views as they come: at the same
        place among the events, so that a replay tells them where the live run did."""
        for printed in target.output():
            line = told_by(printed, target.pid)
            if self.writer:
                self.writer.write_output(line)
            self.session.observer.output(line)
            if line.report and "pause" in line.report and self.step_write is not None:
                self._pause(line.report)

    def _pause(self, report: dict[str, Any]) -> None:
        """The scenario waits before its next step: show it, then let it go on."""
        pacing = self.session.pacing
        assert pacing is not None and self.step_write is not None
        self._collect(0)       # the events of the step just done, before the pause is shown
        self.session.observer.paused(str(report.get("role", "?")), str(report["pause"]), pacing.how)

        def keep_polling() -> None:
            self._collect(POLL_S)
            self.session.observer.tick()

        pacing.wait(keep_polling)
        os.write(self.step_write, b"g")

    def _finish(self, exit_code: int, stopped: bool = False) -> None:
        """The summary. A session stopped (quit, Ctrl-C, a signal) decodes for STOP_DECODE_S at
        most: quitting in the middle of a tail of a million events took as long as decoding it."""
        self._collect(0, STOP_DECODE_S if stopped else None)
        self.sink.flush()
        result = self.result
        result.undecoded = self.sink.backlog
        if result.undecoded:
            print(f"syspath: stopped with {result.undecoded:,} events taken from the kernel still undecoded: "
                  "they are not in the views or the recording", file=sys.stderr)
        result.events = self.sink.count
        result.exit_code = exit_code
        result.lost_steps = self.program.lost_steps(self.probes.step_names())
        result.lost = sum(result.lost_steps.values()) + self.program.perf_lost
        result.duration_ns = time.monotonic_ns() - result.header["started_ns"]
        if self.writer:
            self.writer.write(result.summary_record())
        self.session.observer.finished(result.lost, exit_code, result.lost_steps)
