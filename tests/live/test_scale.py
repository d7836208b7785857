"""Scale: memory flat in the number of events; a killed tracer leaves a replayable recording
and no traced program behind."""
from __future__ import annotations

import itertools
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from tests.live.conftest import REPO, run_syspath
from tests.live.test_reliability import programs_of, wait_for_probes, workload  # noqa: F401 (fixture)

MEMFDS = 1_000_000          # two events each (memfd_create, shmem_file_setup): 2M events
EARLY = 20_000
FIRST_REPLAYED = 100_000
FLAT_MB = 50
INSTANT = b'"ph":"i"'     # an instant in the Chrome trace (orjson writes it compact)


def rss_mb(pid: int) -> float:
    return status_mb(pid, "VmRSS:")


def status_mb(pid: int, field: str) -> float:
    """A memory field of /proc/PID/status (0 once the process is gone)."""
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return 0.0
    return next((int(line.split()[1]) / 1024 for line in lines if line.startswith(field)), 0.0)


class RowCounter(threading.Thread):
    """Counts the event rows syspath --no-live writes as it decodes, and samples its RSS
    when the count passes EARLY and just before the closing lines."""

    def __init__(self, process: subprocess.Popen[bytes]) -> None:
        super().__init__(daemon=True)
        self.process = process
        self.rows = 0
        self.early_mb = 0.0
        self.late_mb = 0.0
        self.counts = b""           # the closing line: N events, M lost

    def run(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            if line.count(b"\t") < 8:
                self.counts = line if line.endswith(b" lost\n") else self.counts
                continue
            self.rows += 1
            if self.rows == EARLY:
                self.early_mb = rss_mb(self.process.pid)
            elif self.rows % 100_000 == 0:
                self.late_mb = rss_mb(self.process.pid)


def test_memory_is_flat_in_the_number_of_events(workload: Path) -> None:  # noqa: F811
    process = subprocess.Popen([sys.executable, "-m", "tracer", "trace", "--no-live", "--", str(workload),
                                "memfd", str(MEMFDS), "0"], cwd=REPO, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE)
    counter = RowCounter(process)          # the only reader of stdout
    counter.start()
    counter.join(timeout=600)
    assert process.stderr is not None
    err = process.stderr.read()
    assert process.wait(timeout=60) == 0, err.decode()[-2000:]
    counts = re.fullmatch(rb"(\d+) events, (\d+) lost\n", counter.counts)
    assert counts, counter.counts
    events, lost = int(counts[1]), int(counts[2])
    # every memfd's two events are shown or counted lost (the program's loading of its code
    # is counted, not shown); losses are test_reliability's subject, not this test's
    assert events + lost >= 2 * MEMFDS and events >= counter.rows >= 2 * MEMFDS * 0.9, (counter.rows, events, lost)
    assert counter.early_mb and counter.late_mb
    assert counter.late_mb - counter.early_mb < FLAT_MB, \
        f"RSS {counter.early_mb:.0f} MB after {EARLY} events, {counter.late_mb:.0f} MB after {counter.rows}"
    # the loop outruns decoding by far: when it ends, syspath says how many events are left
    tail = re.search(r"the program has ended; ([\d,]+) of its events are still to decode", err.decode())
    assert tail and 20_000 <= int(tail[1].replace(",", "")) <= 2 * MEMFDS + 1_000, err.decode()[-2000:]


def test_sigkill_leaves_a_replayable_recording_and_no_traced_program(workload: Path,  # noqa: F811
                                                                      tmp_path: Path) -> None:
    recording = tmp_path / "killed.jsonl"
    process = subprocess.Popen([sys.executable, "-m", "tracer", "trace", "--no-live", "--record", str(recording),
                                "--", str(workload), "memfd", "100000000", "20000"], cwd=REPO,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wait_for_probes(process)            # type: ignore[arg-type]
    target = int(subprocess.run(["pgrep", "-P", str(process.pid)], capture_output=True, text=True).stdout.split()[0])
    time.sleep(1.0)                     # some thousands of events written
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    deadline = time.monotonic() + 10
    while Path(f"/proc/{target}").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not Path(f"/proc/{target}").exists(), "the traced program outlived syspath"
    assert recording.exists(), f"no recording at {recording}: {sorted(os.listdir(tmp_path))}"
    replayed = run_syspath("replay", str(recording), "--no-live")
    assert replayed.returncode == 0, replayed.stderr
    assert "stopped early" in replayed.stderr
    assert "\tmemfd_create\t" in replayed.stdout


def peak_rss_mb(*args: str) -> tuple[float, str]:
    """syspath's peak RSS, VmHWM sampled while it runs (not wait4's: a child's maximum there
    includes the memory of the parent it was forked from, kernel/fork.c and fs/exec.c), and
    its stdout."""
    process = subprocess.Popen([sys.executable, "-m", "tracer", *args], cwd=REPO, stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL)
    out: list[bytes] = []
    reader = threading.Thread(target=lambda: out.append(process.stdout.read()))     # type: ignore[union-attr]
    reader.start()
    peak = 0.0
    while process.poll() is None:
        peak = max(peak, status_mb(process.pid, "VmHWM:"))
        time.sleep(0.05)
    reader.join()
    assert process.returncode == 0
    return peak, b"".join(out).decode()


def exported_instants(trace: Path) -> int:
    """The instants in a Chrome trace too big to parse here, once its head and tail are checked."""
    with trace.open("rb") as exported:
        head, instants, carried = exported.read(64), 0, b""
        exported.seek(0)
        for chunk in iter(lambda: exported.read(1 << 24), b""):
            instants += (carried + chunk).count(INSTANT)
            carried = chunk[-(len(INSTANT) - 1):]      # a mark cut in two by the chunks is counted once
        exported.seek(-200, os.SEEK_END)
        tail = exported.read()
    assert head.startswith(b'{"traceEvents": [{"name": "process_name"') and b'"displayTimeUnit": "ms"' in tail
    return instants


def test_a_long_chrome_trace_costs_disk_not_memory(workload: Path, tmp_path: Path) -> None:  # noqa: F811
    """600k events exported: their instants go to a spool as they come, none is kept."""
    plain_mb, _ = peak_rss_mb("trace", "--no-live", "--", str(workload), "memfd", "300000", "0")
    trace = tmp_path / "c.json"
    traced_mb, out = peak_rss_mb("trace", "--no-live", "--chrome-trace", str(trace), "--", str(workload),
                                 "memfd", "300000", "0")
    assert traced_mb - plain_mb < FLAT_MB, f"peak RSS {plain_mb:.0f} MB, {traced_mb:.0f} MB with the Chrome trace"
    counts = re.search(r"(\d+) events, (\d+) lost", out)
    assert counts, out[-2000:]
    events, lost = int(counts[1]), int(counts[2])
    # every memfd's two events are exported or counted lost (losses are test_reliability's
    # subject; a loaded CI machine may lose some here, which says nothing about memory)
    assert exported_instants(trace) == events and events + lost >= 2 * 300_000 and events >= 2 * 300_000 * 0.9


def test_a_replay_holds_its_views_not_its_events(workload: Path, tmp_path: Path) -> None:  # noqa: F811
    """A recording of 600k events replays, Chrome trace included, in the memory that its first
    100k take (by then the rows' and the trace's call-order windows, 40k events each, are
    full): the events are read as they are shown. Held whole, 600k took 1.9 GB."""
    recording = tmp_path / "long.jsonl"
    traced = subprocess.run([sys.executable, "-m", "tracer", "trace", "--no-live", "--record", str(recording), "--",
                             str(workload), "memfd", "300000", "0"], cwd=REPO, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, timeout=300)
    assert traced.returncode == 0, traced.stderr[-2000:]
    short = tmp_path / "short.jsonl"
    with recording.open("rb") as lines, short.open("wb") as cut:
        cut.writelines(itertools.islice(lines, 1 + FIRST_REPLAYED))     # the session line, the first events
    short_mb, _ = peak_rss_mb("replay", "--no-live", str(short))
    trace = tmp_path / "c.json"
    long_mb, out = peak_rss_mb("replay", "--no-live", "--chrome-trace", str(trace), str(recording))
    assert long_mb - short_mb < FLAT_MB, \
        f"replay peak RSS {short_mb:.0f} MB for {FIRST_REPLAYED} events, {long_mb:.0f} MB for all"
    events = int(re.search(r"(\d+) events, \d+ lost", out)[1])          # type: ignore[index]
    assert events >= 2 * 300_000 * 0.9 and exported_instants(trace) == events
