"""Runs a scenario or a command under the tracer.

The target starts behind a gate (a shell waiting on a pipe), so its pid is in
the kernel-side `tracked` map before it runs a single instruction of its own;
from there sched_process_fork adds every descendant. It runs as the invoking
user (SUDO_UID/SUDO_GID), or nobody, never as root.
"""
from __future__ import annotations

import ctypes
import json
import os
import pwd
import queue
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tracer import catalog, facts, kernel
from tracer.errors import SyspathError, interrupt_exit_code
from tracer.events import Decoder, Event
from tracer.loader import LoadedProgram, hook_defines, load, program_files
from tracer.offsets import KernelLayout, load_layout
from tracer.record import RecordingWriter, invoking_user
from tracer.resources import scenario_dir
from tracer.text import printable

DRAIN_EVERY = 2048          # events decoded between two drains of the ring buffer
SCENARIO_DIR = scenario_dir()
SCENARIOS = {"memfd-share": "memfd_share.py", "fork-vs-thread": "fork_vs_thread.py"}
# The gate is the shell's stdin; the target gets /dev/null instead.
GATE = 'read _; exec "$0" "$@" </dev/null'

@dataclass
class OutputLine:
    """A line the traced program printed; scenarios print JSON {"role", "say", ...}."""

    stream: str
    text: str
    report: dict[str, Any] | None = None

@dataclass
class Startup:
    btf_s: float = 0.0
    compile_s: float = 0.0
    attach_s: float = 0.0
    total_s: float = 0.0

@dataclass
class SessionResult:
    header: dict[str, Any]
    events: list[Event] = field(default_factory=list)
    output: list[OutputLine] = field(default_factory=list)
    lost: int = 0
    exit_code: int = 0
    duration_ns: int = 0
    startup: Startup = field(default_factory=Startup)

    def summary_record(self) -> dict[str, Any]:
        return {"type": "summary", "events": len(self.events), "lost": self.lost,
                "exit_code": self.exit_code, "duration_ns": self.duration_ns}

class Observer:
    """What a view gets told while a session runs."""

    def started(self, result: SessionResult) -> None: ...
    def event(self, event: Event) -> None: ...
    def output(self, line: OutputLine) -> None: ...
    def tick(self) -> None: ...
    def paused(self, role: str, next_step: str, how: str) -> None: ...


@dataclass(frozen=True)
class Pacing:
    """--step (wait for Enter) or --pace SECONDS before each step of the scenario."""

    seconds: float | None = None      # None: wait for Enter

    def wait(self, keep_polling: Callable[[], None]) -> None:
        deadline = time.monotonic() + (self.seconds or 0)
        while True:
            keep_polling()
            if self.seconds is not None:
                if time.monotonic() >= deadline:
                    return
            elif select.select([sys.stdin], [], [], 0)[0]:
                sys.stdin.readline()
                return

    @property
    def how(self) -> str:
        return "press Enter" if self.seconds is None else f"in {self.seconds:g} s"

def scenario_command(scenario: str) -> list[str]:
    if scenario not in SCENARIOS:
        raise SyspathError(f"unknown scenario {scenario!r}: choose one of {', '.join(SCENARIOS)}")
    return [sys.executable, str(SCENARIO_DIR / SCENARIOS[scenario])]


def use_perf_buffer(capabilities: dict[str, kernel.Capability]) -> bool:
    """The BPF ring buffer needs 5.8+; SYSPATH_FORCE_PERF_BUFFER=1 tries the fallback anywhere."""
    return os.environ.get("SYSPATH_FORCE_PERF_BUFFER") == "1" or not capabilities["ringbuf"].available


def kernel_view(capabilities: dict[str, kernel.Capability] | None = None) -> catalog.KernelView:
    return facts.live_view(facts.tiers_of(capabilities or kernel.probe_capabilities()))

def _target_user() -> tuple[int, int]:
    owner = invoking_user()
    if owner and owner[0] != 0:
        return owner
    nobody = pwd.getpwnam("nobody")
    return nobody.pw_uid, nobody.pw_gid

def _spawn_gated(command: Sequence[str], step_fd: int | None = None) -> tuple[subprocess.Popen[str], int]:
    gate_read, gate_write = os.pipe()
    uid, gid = _target_user()
    env = dict(os.environ, SYSPATH_STEP_FD=str(step_fd)) if step_fd is not None else None
    try:
        process = subprocess.Popen(
            ["/bin/sh", "-c", GATE, *command],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=gate_read, user=uid, group=gid, extra_groups=[],
            start_new_session=True, text=True, cwd="/", env=env, pass_fds=() if step_fd is None else (step_fd,),
        )
    finally:
        os.close(gate_read)
    return process, gate_write

def _pump(stream: Any, name: str, lines: queue.Queue[OutputLine]) -> None:
    for text in stream:
        text = printable(text.rstrip("\n"))
        report = None
        if name == "stdout" and text.startswith("{"):
            try:
                report = json.loads(text)
            except json.JSONDecodeError:
                report = None
        lines.put(OutputLine(name, text, report))

class Session:
    def __init__(self, scenario: str | None, command: Sequence[str], mode: str,
                 record: Path | None, observer: Observer, pacing: Pacing | None = None) -> None:
        self.pacing = pacing
        self.step_write: int | None = None
        self.decode_pending: Callable[[], None] = lambda: None
        self.result: SessionResult | None = None        # the session under way, until finished
        self.scenario = scenario
        self.command = list(command)
        self.mode = mode
        self.record_path = record
        self.observer = observer

    def prepare(self) -> tuple[list[catalog.HookChoice], KernelLayout, LoadedProgram, Startup]:
        started = time.perf_counter()
        kernel.require_root()
        kernel.require_bcc()
        kernel.require_btf()
        kernel.use_headers()
        capabilities = kernel.probe_capabilities()
        choices = catalog.resolve(self.scenario, self.mode, kernel_view(capabilities))
        layout_started = time.perf_counter()
        layout = load_layout()
        startup = Startup(btf_s=time.perf_counter() - layout_started)
        emit = ["-DEMIT_CLONE"] if any(c.step == "clone" and c.tier == "syscall" for c in choices) else []
        program = load(program_files(choices),
                       [*layout.cflags(), *catalog.step_defines(), *hook_defines(choices), *emit],
                       use_perf_buffer(capabilities))
        try:
            program.attach_functions(choices)
        except BaseException:
            program.close()
            raise
        startup.compile_s = program.timings.compile_s
        startup.attach_s = program.timings.attach_s
        startup.total_s = time.perf_counter() - started
        return choices, layout, program, startup

    def run(self) -> SessionResult:
        choices, layout, program, startup = self.prepare()
        writer: RecordingWriter | None = None
        try:
            writer = RecordingWriter(self.record_path) if self.record_path else None
            return self._run_traced(choices, layout, program, startup, writer)
        except BaseException as stop:
            if self.result is not None:        # interrupted or failed: the recording still ends well
                self._finish(program, self.result, writer, interrupt_exit_code(stop))
            raise
        finally:
            program.close()
            if writer:
                writer.close()

    def _finish(self, program: LoadedProgram, result: SessionResult, writer: RecordingWriter | None,
                exit_code: int) -> None:
        self.decode_pending()
        result.exit_code = exit_code
        result.lost = program.lost()
        result.duration_ns = time.monotonic_ns() - result.header["started_ns"]
        if writer:
            writer.write(result.summary_record())
        self.result = None

    def _run_traced(self, choices: list[catalog.HookChoice], layout: KernelLayout,
                    program: LoadedProgram, startup: Startup,
                    writer: RecordingWriter | None) -> SessionResult:
        header = {"type": "session", "version": 1, "kernel": kernel.release(), "mode": self.mode,
                  "scenario": self.scenario, "command": None if self.scenario else self.command,
                  "started_ns": time.monotonic_ns(),
                  "hooks": [choice.as_record() for choice in choices]}
        result = self.result = SessionResult(header=header, startup=startup)
        if writer:
            writer.write(header)
        decoder = Decoder(catalog.ALL_STEP_NAMES, {c.step: c.hook for c in choices}, layout.refcount_bias)

        pending: list[bytes] = []

        def decode_pending() -> None:
            """Decoded between polls: the ring buffer callback only copies the bytes out, and
            the ring is drained again every DRAIN_EVERY events, so that a burst waits in
            user memory rather than overflowing the kernel's ring."""
            batch = pending[:]
            pending.clear()
            for count, data in enumerate(batch, start=1):
                if count % DRAIN_EVERY == 0:
                    program.poll(0)
                event = decoder.decode(data)
                result.events.append(event)
                if writer:
                    writer.write_event(event)
                self.observer.event(event)
            if writer:
                writer.flush()              # killed at any moment: the recording holds what was seen

        program.on_event(lambda data, size: pending.append(ctypes.string_at(data, size)))
        self.decode_pending = decode_pending
        self.observer.started(result)
        exit_code = self._drive(program, result)
        self._finish(program, result, writer, exit_code)
        return result

    def _drive(self, program: LoadedProgram, result: SessionResult) -> int:
        command = scenario_command(self.scenario) if self.scenario else self.command
        step_read, self.step_write = os.pipe() if self.pacing else (None, None)
        try:
            process, gate = _spawn_gated(command, step_read)
        finally:
            if step_read is not None:
                os.close(step_read)
        lines: queue.Queue[OutputLine] = queue.Queue()
        pumps = [threading.Thread(target=_pump, args=(stream, name, lines), daemon=True)
                 for stream, name in ((process.stdout, "stdout"), (process.stderr, "stderr"))]
        for pump in pumps:
            pump.start()
        try:
            program.track(process.pid)
            os.write(gate, b"go\n")
            os.close(gate)
            while process.poll() is None or any(p.is_alive() for p in pumps):
                self._collect(program, 50)
                self._drain_output(lines, result, program)
                self.observer.tick()
        except BaseException:
            _kill_group(process)
            raise
        finally:
            if self.step_write is not None:
                os.close(self.step_write)
                self.step_write = None
        self._collect(program, 0)
        self._drain_output(lines, result, program)
        # killed by a signal: report it the way a shell does, 128 + the signal number
        return process.returncode if process.returncode >= 0 else 128 - process.returncode

    def _collect(self, program: LoadedProgram, timeout_ms: int) -> None:
        """Take what the kernel queued, and decode it."""
        program.poll(timeout_ms)
        self.decode_pending()

    def _drain_output(self, lines: queue.Queue[OutputLine], result: SessionResult,
                      program: LoadedProgram) -> None:
        while not lines.empty():
            line = lines.get_nowait()
            result.output.append(line)
            self.observer.output(line)
            if line.report and "pause" in line.report and self.step_write is not None:
                self._pause(line.report, program)

    def _pause(self, report: dict[str, Any], program: LoadedProgram) -> None:
        """The scenario waits before its next step: show it, then let it go on."""
        assert self.pacing is not None and self.step_write is not None
        self._collect(program, 0)       # the events of the step just done, before the pause is shown
        self.observer.paused(str(report.get("role", "?")), str(report["pause"]), self.pacing.how)

        def keep_polling() -> None:
            self._collect(program, 20)
            self.observer.tick()

        self.pacing.wait(keep_polling)
        os.write(self.step_write, b"g")

def _kill_group(process: subprocess.Popen[str]) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait()
