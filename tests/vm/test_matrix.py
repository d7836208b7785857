"""Every lesson on Debian kernels of several series and architectures, every tier each allows.

One boot per (arch, kernel) through vmrun.run_target; inside, for each tier, `syspath run`
of each lesson with a recording, `syspath doctor --json` and the kernel's facts. The tests
then check the kernel facts the live tests check: one struct file in two processes; a
thread shares mm/fs/files/sighand/signal and fork copies them; fork-cow's child writes and
gets a frame of its own. A tier the kernel refuses, or a lesson the machine cannot run
(fork-cow off x86-64), must say why in one line (exit 2), never pass silently.

Which boots: SYSPATH_MATRIX=all (make test-matrix) or a list like "arm64-6.12,amd64-5.10"
(`make test` asks for arm64-6.12). Without SYSPATH_MATRIX the module is skipped, saying so.
The guest's files stay in SYSPATH_MATRIX_OUT (default .vm-out/matrix), where
tests/vm/matrix_table.py reads them.
"""
from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import vmrun

from tests.clone_checks import check_fork, check_thread, clones

pytestmark = pytest.mark.vm
MATRIX_OFF = "the kernel matrix runs with make test-matrix (or SYSPATH_MATRIX=all / arm64-6.12,...)"
if not os.environ.get("SYSPATH_MATRIX", "").strip():
    pytest.skip(MATRIX_OFF, allow_module_level=True)
ALL = ("amd64-5.10", "amd64-6.1", "amd64-6.12", "amd64-7", "arm64-6.1", "arm64-6.12")
TIERS = ("kprobe", "fentry", "syscall")
LESSONS = ("memfd-share", "fork-vs-thread", "fork-cow")


def selected() -> tuple[str, ...]:
    asked = os.environ.get("SYSPATH_MATRIX", "")
    return ALL if asked == "all" else tuple(t.strip() for t in asked.split(",") if t.strip())


def out_root() -> Path:
    return Path(os.environ.get("SYSPATH_MATRIX_OUT", vmrun.REPO / ".vm-out" / "matrix"))


# Runs in the guest (vmrun's prelude has cd'ed into the checkout and put syspath on PATH).
GUEST_SCRIPT = """
out={out}
uname -r > $out/release; uname -m > $out/machine
$SYSPATH_PY -m tracer.facts $out/facts.json > $out/facts.out 2>&1
syspath doctor --json > $out/doctor.json 2> $out/doctor.err
# the trampoline's argument limit, asked of the kernel itself: fexit on do_mmap (8 or 9 arguments)
$SYSPATH_PY - > $out/fexit-do_mmap.txt 2>&1 <<'PY'
from bcc import BPF
from tracer.kernel import use_headers
use_headers()
try:
    BPF(text="KRETFUNC_PROBE(do_mmap) {{ return 0; }}")
    print("attached")
except Exception as error:
    print("refused:", error)
PY
for mode in {tiers}; do
  for lesson in {lessons}; do
    start=$(date +%s)
    syspath run $lesson --mode $mode --no-live --record $out/$lesson-$mode.jsonl > $out/$lesson-$mode.out 2>&1
    echo $? > $out/$lesson-$mode.rc
    echo $(( $(date +%s) - start )) > $out/$lesson-$mode.seconds
  done
done
"""


@dataclass
class Target:
    name: str
    out: Path
    boot_s: float
    total_s: float

    @property
    def arch(self) -> str:
        return self.name.split("-")[0]

    def release(self) -> str:
        return (self.out / "release").read_text().strip()

    def tiers(self) -> dict[str, str]:
        return json.loads((self.out / "facts.json").read_text())["tiers"]

    def rc(self, lesson: str, mode: str) -> int:
        return int((self.out / f"{lesson}-{mode}.rc").read_text())

    def output(self, lesson: str, mode: str) -> str:
        return (self.out / f"{lesson}-{mode}.out").read_text()

    def tier_refused(self, lesson: str, mode: str) -> bool:
        """The kernel refuses the tier: the run said so in one line."""
        if not self.tiers()[mode]:
            return False
        self.refused(lesson, mode, "not available on this kernel")
        return True

    def refused(self, lesson: str, mode: str, because: str) -> None:
        """The run said in one line why it could not, and exited 2."""
        said = [line for line in self.output(lesson, mode).splitlines() if line.strip()]
        assert self.rc(lesson, mode) == 2 and len(said) == 1 and because in said[0], said

    def records(self, lesson: str, mode: str) -> list[dict]:
        assert self.rc(lesson, mode) == 0, f"{self.name} {lesson} --mode {mode}:\n{self.output(lesson, mode)[-3000:]}"
        text = (self.out / f"{lesson}-{mode}.jsonl").read_text()
        return [json.loads(line) for line in text.splitlines() if line.strip()]


@pytest.fixture(scope="module", params=selected())
def target(request: pytest.FixtureRequest) -> Iterator[Target]:
    name: str = request.param
    arch, series = name.split("-", 1)
    reason = vmrun.target_unavailable_reason(arch)
    if reason:
        pytest.skip(f"VM tier cannot boot {name} here: {reason}")
    out = out_root() / name
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    out.chmod(0o777)      # the lessons' programs run as nobody
    script = GUEST_SCRIPT.format(out=out.resolve(), tiers=" ".join(TIERS), lessons=" ".join(LESSONS))
    start = time.monotonic()
    result = vmrun.run_target(arch, series, script, [out], timeout_s=3000)
    total = time.monotonic() - start
    (out / "vm.json").write_text(json.dumps({"boot_s": result.boot_s, "total_s": total, "accel": result.accel,
                                             "rc": result.returncode}) + "\n")
    (out / "vm.stderr").write_text(result.stderr[-20000:])
    print(f"VM {name} ({result.accel}) booted in {result.boot_s:.1f} s, whole run {total:.0f} s")
    assert result.returncode == 0, result.stderr[-3000:]
    yield Target(name, out, result.boot_s, total)


def test_the_guest_is_the_kernel_and_machine_asked_for(target: Target) -> None:
    release, machine = target.release(), (target.out / "machine").read_text().strip()
    assert machine == {"amd64": "x86_64", "arm64": "aarch64"}[target.arch]
    series = target.name.split("-", 1)[1]
    assert release.startswith(series + ".") and release.endswith(target.arch), release
    facts = json.loads((target.out / "facts.json").read_text())
    assert facts["release"] == release and facts["machine"] == machine and facts["symbols"]


@pytest.mark.parametrize("mode", TIERS)
def test_memfd_share_one_struct_file_in_two_processes(target: Target, mode: str) -> None:
    if target.tier_refused("memfd-share", mode):
        return
    records = target.records("memfd-share", mode)
    session = records[0]
    assert session["mode"] == mode and session["kernel"] == target.release()
    events = [r for r in records if r["type"] == "event"]
    [created] = [e for e in events if e["step"] == "memfd_create" and e["comm"] == "sender"]
    received = [e for e in events if e["step"] == "receive_fd" and e["comm"] == "receiver"]
    assert received, "no receive_fd event in the receiver"
    assert created["file"].startswith("0xff") and received[0]["file"] == created["file"]
    assert created["tgid"] != received[0]["tgid"] and created["fd"] != received[0]["fd"]
    assert received[0]["inode"] == created["inode"]
    hooks = {h["step"]: h["hook"] for h in session["hooks"]}
    if mode != "syscall":
        prefix = {"kprobe": ("kprobe:", "kretprobe:"), "fentry": ("fentry:", "fexit:")}[mode]
        assert hooks["receive_fd"].startswith(prefix) and hooks["shmem_file_setup"].startswith(prefix), hooks
    if target.arch == "arm64" and mode != "syscall":
        assert "x64" not in hooks["memfd_create"], hooks["memfd_create"]
    assert records[-1]["exit_code"] == 0


@pytest.mark.parametrize("mode", TIERS)
def test_fork_vs_thread_thread_shares_fork_copies(target: Target, mode: str) -> None:
    if target.tier_refused("fork-vs-thread", mode):
        return
    records = target.records("fork-vs-thread", mode)
    thread, _linuxthreads, fork, _spawn = clones(records)[:4]
    check_thread(thread)
    check_fork(fork)
    assert records[-1]["exit_code"] == 0


def cow_events(records: list[dict], step: str) -> list[dict]:
    return [r for r in records if r["type"] == "event" and r["step"] == step]


@pytest.mark.parametrize("mode", TIERS)
def test_fork_cow_one_frame_until_the_child_writes(target: Target, mode: str) -> None:
    """x86-64 only (x86 page tables and fault error codes): elsewhere one line says so."""
    if target.arch != "amd64":          # said before any tier is tried
        target.refused("fork-cow", mode, "fork-cow cannot run here: it reads x86-64 page tables")
        return
    if target.tier_refused("fork-cow", mode):
        return
    records = target.records("fork-cow", mode)
    [cow] = cow_events(records, "cow_fault")
    parent = cow_events(records, "first_touch")[0]["tgid"]
    page = cow["detail"]["addr"]
    before = [p["detail"] for p in cow_events(records, "pte")
              if p["tgid"] == parent and p["detail"]["addr"] == page and p["ts_ns"] < cow["ts_ns"]]
    # the child wrote a present, write-protected page and got a new frame
    assert cow["tgid"] != parent and cow["detail"]["write"] and cow["detail"]["was_present"]
    assert before and cow["detail"]["pfn"]
    if before[-1]["walked"]:     # the page tables are read where the direct map did not move (no KASLR)
        assert before[-1]["pfn"] == cow["detail"]["old_pfn"] != cow["detail"]["pfn"]
        assert before[-1]["writable"] is False and cow["detail"]["old_writable"] is False
    # fork's new mm_struct, where the kernel lets it be seen (5.10's kmem_cache_alloc passes no cache: said)
    if {h["step"]: h["status"] for h in records[0]["hooks"]}["mm_copy"] != "unavailable":
        copies = cow_events(records, "mm_copy")
        assert copies and all(c["detail"]["mm"] != c["detail"]["parent_mm"] for c in copies), copies
    assert records[-1]["exit_code"] == 0


def test_fentry_on_arm64_is_decided_by_the_kernel(target: Target) -> None:
    """arm64 6.1 has no ftrace direct calls: said in one line; 6.12 has them: fentry must work."""
    if target.arch != "arm64":
        pytest.skip("an arm64 fact")
    why_not = target.tiers()["fentry"]
    if target.release().startswith("6.1."):
        assert "no ftrace direct calls" in why_not, why_not
    else:
        assert why_not == "", why_not


def test_the_catalogs_trampoline_limit_is_the_kernels(target: Target) -> None:
    """Resolution says fentry cannot take do_mmap where trampolines save too few arguments:
    the guest asked the kernel (fexit on do_mmap), and the two must agree."""
    if target.tiers()["fentry"]:
        pytest.skip("no fentry on this kernel")
    asked = (target.out / "fexit-do_mmap.txt").read_text()
    header = json.loads((target.out / "memfd-share-fentry.jsonl").read_text().splitlines()[0])
    [do_mmap] = [h for h in header["hooks"] if h["step"] == "do_mmap"]
    if asked.strip().endswith("attached"):
        assert do_mmap["hook"] == "fexit:do_mmap", do_mmap
    else:
        assert do_mmap["status"] == "unavailable" and "trampolines take at most" in do_mmap["reason"], (asked, do_mmap)
