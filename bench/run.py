"""syspath benchmark (`sudo make bench`): startup, overhead, throughput and memory,
side by side with strace and bpftrace, in one run (ratios, never absolute times across runs).

  workload  bench/workload.c, built here: a loop of memfd_create + mmap(MAP_SHARED) +
            SCM_RIGHTS pass to a child, which maps, reads and acks; or a dense memfd loop.
  startup   launch -> probes attached: the workload starts only once the tracer is ready
            (syspath opens its gate after attaching; bpftrace -c likewise), so the
            workload's first CLOCK_MONOTONIC reading minus the launch time measures it.
  overhead  the workload's own loop time, traced / untraced, interleaved repetitions, median.
  throughput the dense loop at rising rates, one producer process per CPU (the tracer's
            consumer competes with them for every CPU): events/s taken, lost events, and
            the rate at which they were decoded, recorded and shown (end to end).
  memory    peak RSS of the tracer process (wait4), which includes clang compiling the probes.

  loops     two: a two-process ping-pong (roundtrip) and a one-process loop (selfloop) that
            has no idle time to hide the per-event cost in.
  floor     bench/floor.py in the same loops: syspath's hooks and filter alone, then with as
            many records as syspath sends, through the probes' own event path, but nothing
            read and no stacks: what any design that sends those records costs.
  probes    the time spent in BPF programs a selfloop round (kernel.bpf_stats_enabled), syspath's
            against the floor's with records, in alternate runs: the overhead above the floor
            without the wall clock's noise (a VM's runs can differ by a third); and each of
            syspath's programs' ns per run.

Writes bench/results.json and prints a table.
"""
from __future__ import annotations

import compileall
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results.json"
ROUNDS = 7                       # interleaved repetitions of the overhead comparison
LOOP = 20_000                    # round trips per overhead run
STRACE_LOOP = 1_000              # strace is ~10-80x slower: a shorter loop, its own untraced twin
RATES = (25_000, 50_000, 100_000, 200_000, 400_000, 0)   # memfds/s for throughput; 0 = flat out
PRODUCERS = os.cpu_count() or 1  # throughput: memfd loops in parallel, one per CPU
RATE_SECONDS = 1.5
WORKLOAD_LINE = re.compile(r"start (?P<start>\d+) loop_s (?P<loop>[\d.]+)(?: cpu_s (?P<cpu>[\d.]+))?")
BPF_ROUNDS = 3                   # syspath and the floor alternately under bpf_stats (bpf_time)
STATS_POLL_S = 0.02
FLOOR_TARGET = 0.05              # (syspath - floor with records) / untraced, wall and CPU
EVENTS_LINE = re.compile(r"(?P<events>\d+) events, (?P<lost>\d+) lost")
STARTUP_LINE = re.compile(r"probes attached (?P<total>[\d.]+) s after start \(BTF offsets (?P<btf>[\d.]+) s, "
                          r"(?:compile\+load|loaded from the compile cache) (?P<compile>[\d.]+) s, "
                          r"attach (?P<attach>[\d.]+) s\)")
BPFTRACE_PROBES = " ".join(
    f'tracepoint:syscalls:{point} /comm == "workload"/ {{ printf("{point} %d\\n", {field}); }}'
    for point, field in (("sys_exit_memfd_create", "args->ret"), ("sys_exit_mmap", "args->ret"),
                         ("sys_enter_sendmsg", "args->fd"), ("sys_exit_recvmsg", "args->ret")))


@dataclass
class Run:
    loop_s: float
    start_ns: int
    launched_ns: int
    rss_mb: float
    ended_ns: int = 0            # the tracer's exit: its events are all decoded and shown by then
    events: int = 0
    lost: int = 0
    stderr: str = ""
    cpu_s: float = 0.0           # the workload's own CPU time in the loop (probes run in its tasks)

    @property
    def ready_s(self) -> float:
        return (self.start_ns - self.launched_ns) / 1e9


def build_workload(directory: Path) -> Path:
    """Built where the unprivileged user syspath runs commands as can execute it."""
    directory.chmod(0o755)
    binary = directory / "workload"
    subprocess.run(["gcc", "-O2", "-Wall", "-o", str(binary), str(REPO / "bench" / "workload.c")], check=True)
    return binary


def run(command: list[str]) -> Run:
    """Run a command, wait4() it for its peak RSS, and read the workload's line."""
    launched = time.monotonic_ns()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)
    streams: dict[str, str] = {}
    readers = [threading.Thread(target=lambda name=name, pipe=pipe: streams.__setitem__(name, pipe.read()))
               for name, pipe in (("out", process.stdout), ("err", process.stderr))]
    for reader in readers:
        reader.start()
    _, status, usage = os.wait4(process.pid, 0)       # not communicate(): wait4 gives the peak RSS
    ended = time.monotonic_ns()
    process.returncode = os.waitstatus_to_exitcode(status)
    for reader in readers:
        reader.join()
    stdout, stderr = streams["out"], streams["err"]
    rss = usage.ru_maxrss / 1024
    found = WORKLOAD_LINE.search(stdout)
    if not found:
        raise SystemExit(f"bench: {' '.join(command[:6])}... printed no workload line:\n"
                         f"{stdout[-800:]}\n{stderr[-800:]}")
    counts = EVENTS_LINE.search(stdout)
    return Run(float(found["loop"]), int(found["start"]), launched, rss, ended,
               int(counts["events"]) if counts else 0, int(counts["lost"]) if counts else 0, stderr,
               float(found["cpu"] or 0))


def syspath(mode: str, *workload: str, stacks: bool = True, cache: bool = True, typed: bool = True) -> list[str]:
    """SYSPATH_NO_STACKS=1: the same probes without kernel stack capture (its cost, measured);
    SYSPATH_NO_CACHE=1: compiled by bcc, not loaded from the compile cache;
    SYSPATH_NO_TYPED_LOADS=1: every kernel field read by a helper call (what typed loads buy)."""
    switches = ([] if stacks else ["SYSPATH_NO_STACKS=1"]) + ([] if cache else ["SYSPATH_NO_CACHE=1"])
    switches += [] if typed else ["SYSPATH_NO_TYPED_LOADS=1"]
    return [*(["env", *switches] if switches else []), sys.executable, "-m", "tracer", "trace", "--mode", mode,
            "--no-live", "--", *workload]


def floor(mode: str, *workload: str) -> list[str]:
    return [sys.executable, str(REPO / "bench" / "floor.py"), mode, "--", *workload]


def bpftrace(*workload: str) -> list[str]:
    return ["bpftrace", "-o", "/dev/null", "-e", BPFTRACE_PROBES, "-c", " ".join(workload)]


def usable_tiers() -> list[str]:
    from tracer import kernel

    kernel.use_headers()
    found = kernel.probe_capabilities()
    return [tier for tier, cap in (("kprobe", found["kprobe"]), ("fentry", found["fentry"]),
                                   ("syscall", found["tracepoint"])) if cap.available]


def startup(workload: Path) -> dict[str, object]:
    for cached in Path("/var/cache/syspath").glob("*.json"):
        if cached.name.startswith(("offsets-", "capabilities-", "program-")):
            cached.unlink()
    cold = run(syspath("auto", str(workload), "memfd", "0", "0"))       # it fills the caches
    warm = [run(syspath("auto", str(workload), "memfd", "0", "0")) for _ in range(5)]
    compiled = [run(syspath("auto", str(workload), "memfd", "0", "0", cache=False)) for _ in range(3)]
    bpf = [run(bpftrace(str(workload), "memfd", "0", "0")) for _ in range(3)]

    def split(found: Run) -> dict[str, float]:
        parts = STARTUP_LINE.search(found.stderr)
        return {k: float(v) for k, v in parts.groupdict().items()} if parts else {}

    return {"cold_s": cold.ready_s, "warm_s": statistics.median(r.ready_s for r in warm),
            "warm_spread_s": [round(min(r.ready_s for r in warm), 3), round(max(r.ready_s for r in warm), 3)],
            "compiled_s": statistics.median(r.ready_s for r in compiled),
            "bpftrace_s": statistics.median(r.ready_s for r in bpf),
            "split_s": split(warm[-1]), "compiled_split_s": split(compiled[-1])}


LOOPS = ("roundtrip", "selfloop")   # two processes ping-ponging; one process, no idle time to hide in


def overhead(workload: Path, tiers: list[str], loop: str) -> dict[str, object]:
    contenders: dict[str, list[str]] = {"untraced": [str(workload), loop, str(LOOP)]}
    contenders |= {f"syspath {tier}": syspath(tier, str(workload), loop, str(LOOP)) for tier in tiers}
    contenders |= {f"syspath {tier} no stacks": syspath(tier, str(workload), loop, str(LOOP), stacks=False)
                   for tier in tiers}
    contenders |= {f"syspath {tier} helper reads": syspath(tier, str(workload), loop, str(LOOP), typed=False)
                   for tier in tiers}
    contenders["floor: hooks"] = floor("hooks", str(workload), loop, str(LOOP))
    contenders["floor: records"] = floor("records", str(workload), loop, str(LOOP))
    contenders["bpftrace"] = bpftrace(str(workload), loop, str(LOOP))
    contenders["untraced (short)"] = [str(workload), loop, str(STRACE_LOOP)]
    contenders["strace -f"] = ["strace", "-f", "-o", "/dev/null", str(workload), loop, str(STRACE_LOOP)]
    times: dict[str, list[float]] = {name: [] for name in contenders}
    cpu: dict[str, list[float]] = {name: [] for name in contenders}
    runs: dict[str, list[Run]] = {name: [] for name in contenders}
    names = list(contenders)
    for round_number in range(ROUNDS):
        order = names[round_number % len(names):] + names[:round_number % len(names)]   # rotate
        for name in order:
            result = run(contenders[name])
            times[name].append(result.loop_s)
            cpu[name].append(result.cpu_s)
            runs[name].append(result)

    def ratios(name: str, baseline: str) -> list[float]:
        return sorted(t / b for t, b in zip(times[name], times[baseline], strict=True))

    def ratio(name: str, baseline: str) -> float:
        return statistics.median(ratios(name, baseline))

    def spread(name: str, baseline: str) -> list[float]:
        found = ratios(name, baseline)
        return [round(found[0], 3), round(found[-1], 3)]

    def above_floor(name: str, measured: dict[str, list[float]]) -> list[float]:
        """(syspath - floor with records) / untraced, round by round: the runs of one round
        were made next to each other, under the same load."""
        return sorted((run - floor) / base for run, floor, base
                      in zip(measured[name], measured["floor: records"], measured["untraced"], strict=True))

    def fastest(name: str, baseline: str) -> float:
        """The fastest traced run over the fastest untraced one: the least disturbed by the VM."""
        return min(times[name]) / min(times[baseline])

    return {
        "ratios": {tier: ratio(f"syspath {tier}", "untraced") for tier in tiers},
        "ratios_no_stacks": {tier: ratio(f"syspath {tier} no stacks", "untraced") for tier in tiers},
        "ratios_helper_reads": {tier: ratio(f"syspath {tier} helper reads", "untraced") for tier in tiers},
        "ratios_fastest": {tier: fastest(f"syspath {tier}", "untraced") for tier in tiers},
        "above_floor": {tier: {clock: above_floor(f"syspath {tier}", measured)
                               for clock, measured in (("wall", times), ("cpu", cpu))} for tier in tiers},
        "floor": {name: ratio(name, "untraced") for name in names if name.startswith("floor")},
        "floor_fastest": {name: fastest(name, "untraced") for name in names if name.startswith("floor")},
        "spread": {name: spread(name, "untraced") for name in names if name.startswith(("syspath", "floor"))},
        "bpftrace": ratio("bpftrace", "untraced"), "strace": ratio("strace -f", "untraced (short)"),
        "untraced_s": statistics.median(times["untraced"]),
        "events": {tier: runs[f"syspath {tier}"][-1].events for tier in tiers},
        "lost": {tier: max(r.lost for r in runs[f"syspath {tier}"]) for tier in tiers},
        "rss_mb": max(r.rss_mb for tier in tiers for r in runs[f"syspath {tier}"]),
    }


def programs_of(pid: int) -> dict[int, str]:
    """BPF programs held by a process: prog_id -> name, from its fds' fdinfo."""
    found: dict[int, str] = {}
    for info in Path(f"/proc/{pid}/fdinfo").glob("*"):
        try:
            text = info.read_text()
        except OSError:
            continue
        prog = re.search(r"^prog_id:\s*(\d+)", text, re.MULTILINE)
        if prog:
            found[int(prog.group(1))] = ""
    return found


@dataclass
class ProgramStats:
    name: str
    runs: int
    ns: int


def stats_of(pid: int) -> dict[int, ProgramStats]:
    """bpf_stats of the programs a process holds, now."""
    ids = programs_of(pid)
    if not ids:
        return {}
    shown = subprocess.run(["bpftool", "prog", "show", "-j"], capture_output=True, text=True).stdout
    return {prog["id"]: ProgramStats(prog.get("name", "?"), prog["run_cnt"], prog["run_time_ns"])
            for prog in json.loads(shown or "[]") if prog.get("id") in ids and prog.get("run_cnt")}


def stats_at_loop_end(tracer: Callable[..., list[str]], workload: Path, loop: str,
                      flag: Path) -> dict[int, ProgramStats]:
    """The tracer's programs' bpf_stats (kernel.bpf_stats_enabled) the moment the traced loop
    ends: the loop touches `flag` and keeps the tracer attached a second more, so a tracer that
    exits with its program (the floor) is read as late as one that decodes a tail (syspath)."""
    flag.unlink(missing_ok=True)
    lingering = ["sh", "-c", f'"$0" "$@" && touch {flag} && sleep 1', str(workload), loop, str(LOOP)]
    process = subprocess.Popen(tracer(*lingering), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=REPO)
    found: dict[int, ProgramStats] = {}
    try:
        while process.poll() is None and not flag.exists():
            time.sleep(STATS_POLL_S)
        found = stats_of(process.pid) if flag.exists() else {}
    finally:
        process.wait()
    if not found:
        raise SystemExit(f"bench: {' '.join(tracer()[:4])}... ended before the traced loop did (exit "
                         f"{process.returncode}), or held no BPF program at its end")
    return found


def bpf_time(workload: Path, loop: str, directory: Path) -> dict[str, Any]:
    """The probes' own work a round, syspath's programs against the floor's with records, read
    from bpf_stats in alternate runs: the part of the overhead that wall time measures only
    through the VM's noise. It leaves out what runs outside the programs (the tracepoints'
    glue, the same for both, and syspath's consumer on another CPU), and counts the runs the
    tracers' own allocations cause at the hooks every task passes (kmem, mm_page_alloc).
    Also each of syspath's programs' ns per run, from its last run."""
    stats = Path("/proc/sys/kernel/bpf_stats_enabled")
    previous = stats.read_text().strip()
    flags = directory / "flags"
    flags.mkdir(exist_ok=True)
    flags.chmod(0o777)              # syspath runs the command as an unprivileged user
    tracers: dict[str, Callable[..., list[str]]] = {
        "syspath": lambda *command: syspath("syscall", *command),
        "floor: records": lambda *command: floor("records", *command)}
    per_round: dict[str, list[float]] = {name: [] for name in tracers}
    syspath_programs: dict[int, ProgramStats] = {}
    stats.write_text("1")
    try:
        for _ in range(BPF_ROUNDS):
            for name, tracer in tracers.items():
                found = stats_at_loop_end(tracer, workload, loop, flags / "loop-done")
                per_round[name].append(sum(p.ns for p in found.values()) / LOOP)
                if name == "syspath":
                    syspath_programs = found
    finally:
        stats.write_text(previous)
    costs: dict[str, dict[str, float]] = {}
    for prog_id, p in sorted(syspath_programs.items()):
        name = p.name if p.name not in costs else f"{p.name}#{prog_id}"   # 15-character names can clash
        costs[name] = {"runs": p.runs, "ns_per_run": round(p.ns / p.runs, 1)}
    return {"ns_per_round": per_round, "programs": costs}


def throughput(workload: Path) -> list[dict[str, float]]:
    rows = []
    for rate in RATES:
        count = int((rate or 300_000) * RATE_SECONDS)
        result = run(syspath("auto", str(workload), "memfd", str(count), str(rate), str(PRODUCERS)))
        end_to_end_s = (result.ended_ns - result.start_ns) / 1e9
        rows.append({"asked_memfds_per_s": rate, "events": result.events, "lost": result.lost,
                     "events_per_s": result.events / result.loop_s if result.loop_s else 0.0,
                     "decoded_per_s": result.events / end_to_end_s if end_to_end_s > 0 else 0.0})
    return rows


def rates_without_loss(rows: list[dict[str, float]]) -> list[float]:
    """The rates reached before the first one that lost events, in the order asked (slowest
    first, flat out last): a loss at 400k/s is not made up for by none at 800k/s."""
    reached = []
    for row in rows:
        if row["lost"] or not row["events"]:
            break
        reached.append(row["events_per_s"])
    return reached


def compile_bytecode() -> None:
    """What `make setup` installs is a wheel, whose modules pip compiles; this checkout's venv is
    editable, and with PYTHONDONTWRITEBYTECODE set every start would compile them from source
    (some 70 ms of the start here). Compiled once, as an installed syspath has them: the core and
    the lessons (scenarios/, imported as tracer.scenarios; uncompiled they cost the start 30 ms)."""
    for package in ("tracer", "scenarios"):
        compileall.compile_dir(REPO / package, quiet=1)


def guest_note(cmdline: str | None = None) -> str | None:
    """One line when this runs in a syspath VM guest (virtme-ng puts virtme_* on the kernel's
    command line): its timings are QEMU's emulation, not overhead figures."""
    if cmdline is None:
        try:
            cmdline = Path("/proc/cmdline").read_text()
        except OSError:
            return None
    if "virtme" not in cmdline:
        return None
    return (f"bench: running in a VM guest ({os.uname().machine}, booted by virtme-ng under QEMU): these timings "
            "are emulated and are not overhead figures; run make bench on the machine itself")


def main() -> int:
    if (note := guest_note()) is not None:
        print(note, file=sys.stderr)
    if os.geteuid() != 0:
        print("bench: run as root (sudo make bench)", file=sys.stderr)
        return 2
    missing = [tool for tool in ("gcc", "strace", "bpftrace") if not shutil.which(tool)]
    if missing:
        print(f"bench: {', '.join(missing)} missing: run sudo make setup", file=sys.stderr)
        return 2
    console = Console()
    began = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="syspath-bench-") as directory:
        workload = build_workload(Path(directory))
        tiers = usable_tiers()
        console.print(f"bench: tiers usable here: {', '.join(tiers)}; {ROUNDS} interleaved rounds of "
                      f"{LOOP} round trips (strace: {STRACE_LOOP})")
        compile_bytecode()
        started = startup(workload)
        compared = {loop: overhead(workload, tiers, loop) for loop in LOOPS}
        probes = bpf_time(workload, "selfloop", Path(directory)) if shutil.which("bpftool") else None
        rates = throughput(workload)
    no_loss = rates_without_loss(rates)
    results = {
        "machine": {"kernel": platform.release(), "cpus": os.cpu_count(), "python": platform.python_version()},
        "startup_s": round(float(started["warm_s"]), 3),
        "startup": started,
        "overhead": {loop: {"ratio": {tier: round(r, 3) for tier, r in found["ratios"].items()},
                            "ratio_no_stacks": {tier: round(r, 3) for tier, r in found["ratios_no_stacks"].items()},
                            "ratio_helper_reads": {tier: round(r, 3)
                                                   for tier, r in found["ratios_helper_reads"].items()},
                            "ratio_fastest": {tier: round(r, 3) for tier, r in found["ratios_fastest"].items()},
                            "above_floor": {tier: {clock: summary(values) for clock, values in by_clock.items()}
                                            for tier, by_clock in found["above_floor"].items()},
                            "floor": {name: round(r, 3) for name, r in found["floor"].items()},
                            "floor_fastest": {name: round(r, 3) for name, r in found["floor_fastest"].items()},
                            "spread": found["spread"], "strace_ratio": round(found["strace"], 2),
                            "bpftrace_ratio": round(found["bpftrace"], 3),
                            "untraced_loop_s": round(found["untraced_s"], 3), "events": found["events"],
                            "lost": found["lost"]} for loop, found in compared.items()},
        "bpf_time": bpf_summary(probes, compared["selfloop"]["untraced_s"]) if probes else None,
        "program_ns_per_run": probes["programs"] if probes else {},
        "max_events_per_s_no_loss": round(max(no_loss)) if no_loss else 0,
        "throughput_producers": PRODUCERS,
        "throughput": rates,
        "rss_mb": round(max(found["rss_mb"] for found in compared.values()), 1),
        "bench_s": round(time.monotonic() - began, 1),
    }
    RESULTS.write_text(json.dumps(results, indent=1) + "\n")
    console.print(results_table(results))
    console.print(f"bench: {RESULTS.relative_to(REPO)} written in {results['bench_s']} s")
    return 0


def bpf_summary(probes: dict[str, Any], untraced_loop_s: float) -> dict[str, Any]:
    """ns of BPF a round for each tracer, and syspath's above the floor's over an untraced round,
    run by run (the runs of a pair were made next to each other)."""
    runs = probes["ns_per_round"]
    untraced_round_ns = untraced_loop_s / LOOP * 1e9
    above = sorted((mine - floor) / untraced_round_ns
                   for mine, floor in zip(runs["syspath"], runs["floor: records"], strict=True))
    return {"ns_per_round": {name: summary(values) for name, values in runs.items()},
            "above_floor": summary(above)}


def summary(values: list[float]) -> dict[str, float]:
    """A median and its spread, rounded for results.json."""
    return {"median": round(statistics.median(values), 3), "min": round(min(values), 3),
            "max": round(max(values), 3)}


def results_table(results: dict) -> Table:
    table = Table(title=f"syspath bench on {results['machine']['kernel']} ({results['machine']['cpus']} CPUs)",
                  title_justify="left")
    for column in ("measure", "value", "target"):
        table.add_column(column)
    startup_split = results["startup"].get("split_s", {})
    low, high = results["startup"]["warm_spread_s"]
    table.add_row("launch -> probes attached, warm", f"{results['startup_s']:.2f} s [{low:.2f}-{high:.2f}]", "<= 0.5 s")
    table.add_row("  split (warm, in-process)",
                  ", ".join(f"{k} {v:.3f} s" for k, v in startup_split.items()), "")
    table.add_row("  compiled by bcc (SYSPATH_NO_CACHE=1)", f"{results['startup']['compiled_s']:.2f} s", "")
    table.add_row("  cold (no caches)", f"{results['startup']['cold_s']:.2f} s", "")
    table.add_row("  bpftrace, same tracepoints", f"{results['startup']['bpftrace_s']:.2f} s", "")
    for loop, found in results["overhead"].items():
        for tier, ratio in found["ratio"].items():
            low, high = found["spread"][f"syspath {tier}"]
            table.add_row(f"overhead {loop}, syspath {tier}", f"{ratio:.2f}x [{low:.2f}-{high:.2f}] "
                          f"({found['events'][tier]} events, {found['lost'][tier]} lost)", "<= 1.15x")
            table.add_row("  fastest run over fastest untraced", f"{found['ratio_fastest'][tier]:.2f}x", "")
            for clock, above in found.get("above_floor", {}).get(tier, {}).items():
                table.add_row(f"  (syspath - floor with records)/untraced, {clock}",
                              f"{above['median']:+.3f}x [{above['min']:+.3f}..{above['max']:+.3f}]",
                              f"<= +{FLOOR_TARGET:.2f}x")
            low, high = found["spread"][f"syspath {tier} no stacks"]
            table.add_row("  without kernel stacks",
                          f"{found['ratio_no_stacks'][tier]:.2f}x [{low:.2f}-{high:.2f}]", "")
            low, high = found["spread"][f"syspath {tier} helper reads"]
            table.add_row("  fields read by helper calls (SYSPATH_NO_TYPED_LOADS=1)",
                          f"{found['ratio_helper_reads'][tier]:.2f}x [{low:.2f}-{high:.2f}]", "")
        for name, what in (("floor: hooks", "syspath's hooks and filter, nothing sent"),
                           ("floor: records", "+ syspath's records, nothing read, no stacks")):
            low, high = found["spread"][name]
            table.add_row(f"  floor: {what}", f"{found['floor'][name]:.2f}x [{low:.2f}-{high:.2f}], "
                          f"fastest {found['floor_fastest'][name]:.2f}x", "")
        table.add_row(f"overhead {loop}, bpftrace (4 printf tracepoints)", f"{found['bpftrace_ratio']:.2f}x", "")
        table.add_row(f"overhead {loop}, strace -f", f"{found['strace_ratio']:.1f}x", "")
    if results.get("bpf_time"):
        spent = results["bpf_time"]["ns_per_round"]
        table.add_row("probes' BPF time a selfloop round (bpf_stats)",
                      ", ".join(f"{name} {found['median'] / 1000:.2f} us [{found['min'] / 1000:.2f}-"
                                f"{found['max'] / 1000:.2f}]" for name, found in spent.items()), "")
        above = results["bpf_time"]["above_floor"]
        table.add_row("  (syspath - floor with records)/untraced, BPF time",
                      f"{above['median']:+.3f}x [{above['min']:+.3f}..{above['max']:+.3f}]",
                      f"<= +{FLOOR_TARGET:.2f}x")
    for name, cost in sorted(results["program_ns_per_run"].items(), key=lambda item: -item[1]["ns_per_run"]):
        table.add_row(f"  probe {name}", f"{cost['ns_per_run']:.0f} ns/run ({cost['runs']} runs)", "")
    for row in results["throughput"]:
        asked = f"{row['asked_memfds_per_s']} memfds/s" if row["asked_memfds_per_s"] else "flat out"
        table.add_row(f"throughput, {asked}", f"{row['events_per_s']:,.0f} events/s, {row['lost']} lost; "
                      f"decoded at {row.get('decoded_per_s', 0):,.0f}/s", "")
    table.add_row(f"max events/s with zero loss there and at every slower rate "
                  f"({results.get('throughput_producers', 1)} producers)",
                  f"{results['max_events_per_s_no_loss']:,}", ">= 400,000")
    table.add_row("tracer peak RSS", f"{results['rss_mb']:.0f} MB",
                  "flat in events (tests/live/test_scale.py: 2M within 50 MB of 20k)")
    return table


if __name__ == "__main__":
    sys.exit(main())
