"""Builds the bcc program from probes/*.bpf.c, loads it, and talks to its maps."""
from __future__ import annotations

import ctypes
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tracer.catalog import MEMFD_STEPS
from tracer.errors import SyspathError
from tracer.fdcapture import captured_stderr

PROBES_DIR = Path(__file__).resolve().parent.parent / "probes"
RINGBUF_PAGES = 256       # 1 MiB: ~6500 events between two polls
# The process-tree file always; the others when one of their steps is traced.
TREE_FILE = "tree_syscall.bpf.c"
STEP_FILES = {"memfd_syscall.bpf.c": tuple(step.name for step in MEMFD_STEPS)}


def program_files(steps: set[str]) -> list[str]:
    return [TREE_FILE, *(name for name, owned in STEP_FILES.items() if steps & set(owned))]


def program_text(files: list[str]) -> str:
    """common.h once, then each probe file without its own include of it."""
    parts = [(PROBES_DIR / "common.h").read_text()]
    for name in files:
        source = (PROBES_DIR / name).read_text()
        parts.append(source.replace('#include "common.h"', f"/* {name} */"))
    return "\n".join(parts)


@dataclass
class Timings:
    compile_s: float = 0.0
    attach_s: float = 0.0


@dataclass
class LoadedProgram:
    bpf: Any
    perf_buffer: bool = False
    timings: Timings = field(default_factory=Timings)
    perf_lost: int = 0

    def track(self, pid: int) -> None:
        self.bpf["tracked"][ctypes.c_uint32(pid)] = ctypes.c_uint8(1)

    def lost(self) -> int:
        """Events the kernel side could not queue, plus those the perf buffer dropped."""
        return int(self.bpf["lost_events"][ctypes.c_int(0)].value) + self.perf_lost

    def on_event(self, callback: Callable[[int, int], None]) -> None:
        if self.perf_buffer:
            self.bpf["events"].open_perf_buffer(lambda _cpu, data, size: callback(data, size),
                                                page_cnt=RINGBUF_PAGES // 4, lost_cb=self._count_lost)
        else:
            self.bpf["events"].open_ring_buffer(lambda _ctx, data, size: callback(data, size))

    def _count_lost(self, count: int) -> None:
        self.perf_lost += count

    def poll(self, timeout_ms: int) -> None:
        if self.perf_buffer:
            self.bpf.perf_buffer_poll(timeout_ms)
        else:
            self.bpf.ring_buffer_poll(timeout_ms)

    def close(self) -> None:
        self.bpf.cleanup()


def load(files: list[str], cflags: list[str], perf_buffer: bool = False) -> LoadedProgram:
    from bcc import BPF

    flags = [*cflags, f"-DRINGBUF_PAGES={RINGBUF_PAGES}", "-Wno-ignored-attributes"]
    if perf_buffer:
        flags.append("-DSYSPATH_PERF_BUFFER")
    started = time.perf_counter()
    with captured_stderr() as err:
        try:
            bpf = BPF(text=program_text(files), cflags=flags)
        except Exception as error:  # bcc raises bare Exception
            bpf = None
            failure = str(error)
    if bpf is None:
        detail = _first_error_line(err.text) or failure
        raise SyspathError(f"the probe program ({', '.join(files)}) failed to load: {detail}")
    loaded = LoadedProgram(bpf, perf_buffer)
    loaded.timings.compile_s = time.perf_counter() - started
    return loaded


def _first_error_line(text: str) -> str:
    lines = [ln.strip() for ln in text.splitlines() if "error:" in ln or "invalid" in ln.lower()]
    return lines[0] if lines else ""
