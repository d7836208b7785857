"""The kernel-function tiers, live, in VMs booted from Debian's distro kernels.

This machine's kernel has no kprobes and refuses fentry, so tests/vm/vmrun.py boots
Debian 12's stock 6.1 and its backported 6.12 (/boot/vmlinuz-*-amd64) over the
host's filesystem and runs syspath there, once per tier, one boot per kernel. Each
test then reads what the guest recorded. When qemu cannot run here, every test says
why and skips.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import vmrun

from tests import cow_checks
from tests.clone_checks import (
    check_counts_and_entries,
    check_fork,
    check_linuxthreads,
    check_nproc_refusal,
    check_setxid_broadcast,
    check_signal_taken_by_another_thread,
    check_spawn,
    check_thread,
    check_thread_stack,
    clones,
)
from tests.file_life import life_events

pytestmark = pytest.mark.vm
TIERS = ("kprobe", "fentry")
STORY = ("memfd_create", "shmem_file_setup", "do_mmap", "unix_stream_sendmsg", "scm_fp_copy", "receive_fd")
PROGRAMS = vmrun.REPO / "tests" / "live" / "programs"
FUNCTION_HOOK = {"kprobe": ("kprobe:", "kretprobe:"), "fentry": ("fentry:", "fexit:")}

KERNELS = ("6.12", "6.1")
GUEST_SCRIPT = """
cd {repo}
out={out}
.venv/bin/python -m tracer.facts $out/facts.json > $out/facts.out 2>&1
# the article's C sender and receiver (built on the host), their socket in the guest's own /tmp
# (the shared directory is a 9p mount, where a Unix socket cannot be bound); either failing fails
.venv/bin/python -m tracer trace --no-live --record $out/article.jsonl -- \\
  sh -c '"$0" "$2" & r=$!; "$1" "$2"; s=$?; wait $r; exit $((s | $?))' \\
  $out/article_receiver $out/article_sender /tmp/syspath-article.sock > $out/article.out 2>&1
echo $? > $out/article.rc
for mode in kprobe fentry; do
  .venv/bin/python -m tracer probes memfd-share --mode $mode --json > $out/probes-$mode.json 2> $out/probes-$mode.err
  for scenario in memfd-share fork-vs-thread; do
    .venv/bin/python -m tracer run $scenario --mode $mode --no-live --record $out/$scenario-$mode.jsonl \
      > $out/$scenario-$mode.out 2>&1
    echo $? > $out/$scenario-$mode.rc
  done
  .venv/bin/python -m tests.cow_checks $mode $out/fork-cow-$mode.jsonl > $out/fork-cow-$mode.out 2>&1
  echo $? > $out/fork-cow-$mode.rc
done
grep -w _text /proc/kallsyms > $out/text
uname -r > $out/release
for tp in mmap/vm_unmapped_area sock/sk_data_ready skb/skb_copy_datagram_iovec sock/sock_recv_length \
    task/task_newtask filemap/mm_filemap_map_pages; do
  if [ -d /sys/kernel/tracing/events/$tp ]; then echo $tp; fi
done > $out/path-tracepoints
"""


@dataclass
class GuestRun:
    series: str
    out: Path
    boot_s: float

    def records(self, scenario: str, mode: str) -> list[dict]:
        rc = (self.out / f"{scenario}-{mode}.rc").read_text().strip()
        output = (self.out / f"{scenario}-{mode}.out").read_text()
        assert rc == "0", f"syspath run {scenario} --mode {mode} exited {rc} in the VM:\n{output[-3000:]}"
        return read_records(self.out / f"{scenario}-{mode}.jsonl")

    def maps_files(self, mode: str) -> bool:
        """do_mmap takes 8 arguments on 6.1, beyond the 6 its BPF trampolines save (12 from 6.4):
        --mode fentry leaves the step out there, and says why."""
        return not (self.series == "6.1" and mode == "fentry")

    @property
    def receive_hook(self) -> str:
        """fs/file.c: __receive_fd until 6.8 renamed it receive_fd."""
        return "__receive_fd" if self.series == "6.1" else "receive_fd"


def read_records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def build_programs(out: Path) -> None:
    for name in ("article_sender", "article_receiver"):
        subprocess.run(["gcc", "-O2", "-Wall", "-Werror", "-o", str(out / name), str(PROGRAMS / f"{name}.c")],
                       check=True)


@pytest.fixture(scope="module", params=KERNELS, ids=lambda series: f"linux-{series}")
def guest(request: pytest.FixtureRequest) -> Iterator[GuestRun]:
    series = request.param
    reason = vmrun.vm_unavailable_reason(series)
    if reason:
        pytest.skip(f"VM tier cannot run here: {reason}")
    # in /tmp itself, not pytest's root-only tree: traced programs run as nobody and must reach it
    out = Path(tempfile.mkdtemp(prefix=f"syspath-vm-{series}-"))
    try:
        out.chmod(0o777)
        build_programs(out)
        result = vmrun.run_in_vm(GUEST_SCRIPT.format(repo=vmrun.REPO, out=out), timeout_s=1200, rwdir=out,
                                 series=series)
        assert result.returncode == 0, result.stderr[-3000:]
        print(f"VM {series} ({result.accel}) booted in {result.boot_s:.1f} s")
        yield GuestRun(series, out, result.boot_s)
    finally:
        keep = os.environ.get("SYSPATH_VM_KEEP")       # a directory to keep the guest's recordings in
        if keep:
            shutil.copytree(out, Path(keep) / out.name, dirs_exist_ok=True)
        shutil.rmtree(out, ignore_errors=True)


def passing(records: list[dict]) -> list[dict]:
    """The sender's sendmsg that carries the fd (its other sends are one-byte acks)."""
    return [e for e in events(records, "unix_stream_sendmsg", "sender") if e["detail"]["scm_rights"]]


def events(records: list[dict], step: str, comm: str | None = None) -> list[dict]:
    return [r for r in records if r["type"] == "event" and r["step"] == step and comm in (None, r["comm"])]


@pytest.mark.parametrize("mode", TIERS)
def test_memfd_share_records_every_step_through_kernel_functions(guest: GuestRun, mode: str) -> None:
    records = guest.records("memfd-share", mode)
    session, summary = records[0], records[-1]
    assert session["mode"] == mode and session["kernel"] == (guest.out / "release").read_text().strip()
    hooks = {h["step"]: h for h in session["hooks"]}
    for step in STORY:
        if step == "do_mmap" and not guest.maps_files(mode):
            assert hooks[step]["status"] == "unavailable" and "takes 8 arguments" in hooks[step]["reason"]
            continue
        assert hooks[step]["hook"].startswith(FUNCTION_HOOK[mode]), hooks[step]
        assert events(records, step), f"no {step} event in --mode {mode}"
    # Debian's 6.1 and 6.12 inline scm_fp_copy: the step is observed at its caller, and says so.
    assert hooks["scm_fp_copy"]["status"] == "fallback"
    assert "scm_fp_copy is not in kallsyms" in hooks["scm_fp_copy"]["reason"]
    assert summary["exit_code"] == 0 and summary["lost"] == 0


@pytest.mark.parametrize("mode", TIERS)
def test_sender_and_receiver_hold_one_struct_file(guest: GuestRun, mode: str) -> None:
    records = guest.records("memfd-share", mode)
    [created] = events(records, "shmem_file_setup", "sender")
    [memfd] = events(records, "memfd_create", "sender")
    [passed] = events(records, "scm_fp_copy", "sender")
    [received] = events(records, "receive_fd", "receiver")
    assert created["file"] == memfd["file"] == passed["file"] == received["file"]
    assert created["file"].startswith("0xff") and created["inode"] == received["inode"]
    assert memfd["fd"] != received["fd"] and memfd["tgid"] != received["tgid"]
    installs = {e["comm"]: e["fd"] for e in life_events(records, created, "fd_install")}
    assert installs == {"sender": memfd["fd"], "receiver": received["fd"]}
    # in flight, the skb's scm_fp_list holds a reference of its own (fget_raw)
    assert passed["refcount"] > memfd["refcount"] and received["refcount"] > memfd["refcount"]


@pytest.mark.parametrize("mode", TIERS)
def test_steps_nest_inside_the_calls_that_ran_them(guest: GuestRun, mode: str) -> None:
    records = guest.records("memfd-share", mode)
    [memfd] = events(records, "memfd_create", "sender")
    [shmem] = events(records, "shmem_file_setup", "sender")
    [pseudo] = events(records, "alloc_file_pseudo", "sender")
    assert memfd["ts_ns"] < shmem["ts_ns"] < pseudo["ts_ns"]
    assert (memfd["detail"].get("depth", 0), shmem["detail"]["depth"], pseudo["detail"]["depth"]) == (0, 1, 2)
    assert memfd["detail"]["name"] == "syspath-demo"
    [passed] = events(records, "scm_fp_copy", "sender")
    assert passed["detail"]["depth"] == 1                 # inside unix_stream_sendmsg
    [sent] = passing(records)
    assert passed["detail"]["sock"] == sent["detail"]["sock"]


@pytest.mark.parametrize("mode", TIERS)
def test_probes_prints_the_resolution_table(guest: GuestRun, mode: str) -> None:
    table = json.loads((guest.out / f"probes-{mode}.json").read_text())
    by_step = {row["step"]: row for row in table}
    assert set(STORY) <= set(by_step)
    assert by_step["receive_fd"]["hook"] == f"{'kretprobe' if mode == 'kprobe' else 'fexit'}:{guest.receive_hook}"


@pytest.mark.parametrize("mode", TIERS)
def test_fork_vs_thread_through_copy_process(guest: GuestRun, mode: str) -> None:
    records = guest.records("fork-vs-thread", mode)
    hooks = {h["step"]: h for h in records[0]["hooks"]}
    assert hooks["clone"]["hook"] == f"{'kretprobe' if mode == 'kprobe' else 'fexit'}:copy_process"
    thread, linuxthreads, fork, spawn = clones(records)
    check_thread(thread)
    check_linuxthreads(linuxthreads)
    check_counts_and_entries(records)
    check_signal_taken_by_another_thread(records)
    check_fork(fork)
    check_spawn(spawn)
    assert records[-1]["exit_code"] == 0 and records[-1]["lost"] == 0


@pytest.mark.parametrize("mode", TIERS)
def test_the_thread_librarys_claims_through_kernel_functions(guest: GuestRun, mode: str) -> None:
    """Seed 2's claims on the function tiers as on tracepoints: the thread stack and its guard,
    glibc's setuid broadcast (signal 33 to one thread), the RLIMIT_NPROC refusal (EAGAIN)."""
    records = guest.records("fork-vs-thread", mode)
    check_thread_stack(records)
    check_setxid_broadcast(records)
    check_nproc_refusal(records)


@pytest.mark.parametrize("mode", TIERS)
def test_dup_fd_copies_the_fd_table_for_the_fork_only(guest: GuestRun, mode: str) -> None:
    records = guest.records("fork-vs-thread", mode)
    thread, _, fork, spawn = clones(records)
    copies = [e for e in records if e["type"] == "event" and e["step"] == "dup_fd"]
    assert [c["detail"]["copy"] for c in copies] == [fork["detail"]["child"]["files"],
                                                     spawn["detail"]["child"]["files"]]
    assert all(c["detail"]["from"] == thread["detail"]["parent"]["files"] for c in copies)
    assert all(c["detail"]["depth"] == 1 for c in copies)          # inside copy_process


@pytest.mark.parametrize("mode", TIERS)
def test_the_stack_at_each_hooked_function_is_the_whole_chain(guest: GuestRun, mode: str) -> None:
    records = guest.records("memfd-share", mode)
    assert records[0]["version"] == 2
    [sent] = passing(records)
    assert sent["stack_from"] == sent["hook"]
    assert sent["stack"][0] == "unix_stream_sendmsg" and "____sys_sendmsg" in sent["stack"], sent["stack"]
    [received] = events(records, "receive_fd", "receiver")
    assert received["hook"].endswith(f":{guest.receive_hook}") and received["stack"][0] == guest.receive_hook
    # scm_detach_fds calls it (receive_fd_user is an inline there)
    assert "scm_detach_fds" in received["stack"] and "____sys_recvmsg" in received["stack"], received["stack"]
    if guest.maps_files(mode):
        [mapped] = [e for e in events(records, "do_mmap", "sender") if e["file"] == received["file"]]
        assert {"do_mmap", "vm_mmap_pgoff", "ksys_mmap_pgoff"} <= set(mapped["stack"]), mapped["stack"]
    clone_records = guest.records("fork-vs-thread", mode)
    for clone in events(clone_records, "clone"):
        assert clone["stack"][0] == "copy_process" and "kernel_clone" in clone["stack"], clone["stack"]


@pytest.mark.parametrize("mode", TIERS)
def test_memfd_share_tells_the_whole_story(guest: GuestRun, mode: str) -> None:
    """The skb in flight, the same physical page, what the file is: issue 14 on a distro kernel."""
    records = guest.records("memfd-share", mode)
    [created] = events(records, "memfd_create", "sender")
    [sent] = passing(records)
    [flight] = events(records, "in_flight", "sender")
    [received] = events(records, "receive_fd", "receiver")
    assert flight["file"] == created["file"] == received["file"]
    assert flight["detail"]["sock"] == sent["detail"]["peer"] and flight["detail"]["skb"].startswith("0xff")
    hooks = {h["step"]: h["hook"] for h in records[0]["hooks"]}
    # 6.1 has no sock:sk_data_ready tracepoint: sock_def_readable is hooked there
    hooked_function = "kprobe:sock_def_readable" if mode == "kprobe" else "fentry:sock_def_readable"
    assert hooks["in_flight"] == (hooked_function if guest.series == "6.1" else "tracepoint:sock:sk_data_ready")
    # Debian lists data symbols in kallsyms (CONFIG_KALLSYMS_ALL): f_op is named
    assert created["detail"]["f_op"] == "shmem_file_operations" and created["detail"]["file_kind"] == "memfd"
    if not guest.maps_files(mode):
        return
    pages = [e for e in life_events(records, created, "page") if e["detail"]["file_page"]]
    frames = {e["tgid"]: e["detail"]["pfn"] for e in pages}
    assert len(frames) == 2 and len(set(frames.values())) == 1, pages
    [mapped] = life_events(records, created, "do_mmap", received["tgid"])
    assert "VM_SHARED" not in mapped["detail"]["vm_flags"]


def test_the_articles_c_programs_traced(guest: GuestRun) -> None:
    rc = (guest.out / "article.rc").read_text().strip()
    assert rc == "0", (guest.out / "article.out").read_text()[-3000:]
    records = read_records(guest.out / "article.jsonl")
    [created] = events(records, "memfd_create")
    assert created["detail"]["name"] == "article_memfd"
    [received] = events(records, "receive_fd")
    # the receiver may have mapped ld.so.cache from this very address before: the file's life only
    [mapped] = life_events(records, created, "do_mmap", received["tgid"])
    assert "MAP_PRIVATE" in mapped["detail"]["flags"] and mapped["detail"]["vm_file"] == created["file"]
    frames = {e["tgid"]: e["detail"]["pfn"] for e in life_events(records, created, "page") if e["detail"]["file_page"]}
    assert set(frames) == {created["tgid"], received["tgid"]} and len(set(frames.values())) == 1
    # no page of another file that had this address (ld-linux, libc) is taken for the memfd's
    mapped_at = {e["tgid"]: e["detail"]["address"] for e in life_events(records, created, "do_mmap")}
    assert all(e["detail"]["addr"] == mapped_at[e["tgid"]] for e in life_events(records, created, "page"))


def test_kernel_facts_were_saved(guest: GuestRun) -> None:
    """The facts unit tests resolve against (tests/unit/kernels/): this kernel's, fresh."""
    facts = json.loads((guest.out / "facts.json").read_text())
    assert facts["release"].startswith(guest.series + ".") and facts["symbols"]


@pytest.mark.parametrize("mode", TIERS)
def test_fields_are_read_the_way_this_kernel_allows(guest: GuestRun, mode: str) -> None:
    """6.12 has bpf_rdonly_cast, so every tier's program reads fields by typed loads (kprobe and
    fentry programs too: the kfunc call is made in bcc's bytecode before bcc loads it); 6.1
    has not, and the start line says why the helper reads stayed."""
    started = [line for line in (guest.out / f"memfd-share-{mode}.out").read_text().splitlines()
               if "probes attached" in line]
    assert len(started) == 1, started
    if guest.series == "6.1":
        assert started[0].endswith("fields read with bpf_probe_read_kernel: this kernel's BTF has no "
                                   "bpf_rdonly_cast (bpf_rdonly_cast came in 6.2)"), started
    else:
        assert started[0].endswith("; fields read by typed loads"), started


# mm/memory.c's copy-on-write function on each kernel: 6.1 keeps wp_page_copy out of line, 6.12 inlines it
COW_FUNCTION = {"6.1": "wp_page_copy", "6.12": "do_wp_page"}


@pytest.mark.parametrize("mode", TIERS)
def test_fork_cow_copies_on_write_in_do_wp_page(guest: GuestRun, mode: str) -> None:
    """tests/live/test_fork_cow.py's kernel facts, on the function tiers of a kernel KASLR moved."""
    records = guest.records("fork-cow", mode)
    hooks = {h["step"]: h for h in records[0]["hooks"]}
    exit_point, function = "kretprobe" if mode == "kprobe" else "fexit", COW_FUNCTION[guest.series]
    assert hooks["cow_fault"]["hook"] == f"{exit_point}:{function}", hooks["cow_fault"]
    if function == "do_wp_page":          # the best candidate inlined: the header says why it was not used
        assert "wp_page_copy is not in kallsyms" in hooks["cow_fault"]["reason"]
    assert hooks["mm_copy"]["hook"] == f"{exit_point}:dup_mm" or (
        hooks["mm_copy"]["hook"] == "tracepoint:kmem:kmem_cache_alloc"
        and "dup_mm is not in kallsyms" in hooks["mm_copy"]["reason"]), hooks["mm_copy"]
    cow, _ = cow_checks.the_copies(records)
    assert cow["hook"] == hooks["cow_fault"]["hook"] and cow["stack"][0] == function, cow
    assert "__handle_mm_fault" in cow["stack"], cow["stack"]
    seen = cow_checks.load_seen(guest.out / f"fork-cow-{mode}.jsonl.seen.json")
    cow_checks.check_mm_copy(records)
    cow_checks.check_first_touch(records)
    cow_checks.check_one_frame_until_write(records)
    cow_checks.check_memfd_page(records)
    cow_checks.check_frames_in_pagemap(records, seen)
    cow_checks.check_story(records, (guest.out / f"fork-cow-{mode}.out").read_text())
    # KASLR moved the guest's kernel; its page tables were read through page_offset_base's value
    assert not (guest.out / "text").read_text().startswith("ffffffff81000000 ")
    assert {p["detail"]["direct_map"] for p in cow_checks.events(records, "pte")} == {"page_offset_base"}
