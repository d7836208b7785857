"""memfd-share on this kernel: the recording must prove one struct file in two processes."""
from __future__ import annotations

import os
import pwd
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.file_life import life_events
from tests.live.conftest import REPO, read_jsonl, run_syspath

MEMFD_STEPS = {"memfd_create", "shmem_file_setup", "do_mmap", "unix_stream_sendmsg", "scm_fp_copy",
               "in_flight", "receive_fd"}


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, list[dict], Path]:
    path = tmp_path_factory.mktemp("rec") / "memfd.jsonl"
    done = run_syspath("run", "memfd-share", "--no-live", "--record", str(path))
    assert done.returncode == 0, done.stderr
    return done, read_jsonl(path), path


def events(records: list[dict], step: str, comm: str | None = None) -> list[dict]:
    return [r for r in records if r["type"] == "event" and r["step"] == step
            and (comm is None or r["comm"] == comm)]


def test_recording_has_session_events_summary(recorded: tuple[Any, list[dict], Path]) -> None:
    _, records, _ = recorded
    session, summary = records[0], records[-1]
    assert session["type"] == "session" and session["version"] == 2
    assert session["scenario"] == "memfd-share" and session["command"] is None
    hooks = {h["step"]: h for h in session["hooks"]}
    assert set(hooks) == MEMFD_STEPS | {"fd_install", "alloc_file_pseudo", "fput", "memfd_page"}
    assert all(hooks[step]["status"] in ("attached", "fallback") and hooks[step]["reason"] for step in MEMFD_STEPS)
    # the first-touch frame: tracepoints on every tier (exceptions:page_fault_user is x86's)
    assert hooks["memfd_page"]["hook"] == "tracepoint:kmem:mm_page_alloc" or os.uname().machine != "x86_64"
    if hooks["memfd_create"]["hook"].startswith("tracepoint:"):
        # no function tier here: the extra steps, which exist only as kernel functions, say why
        assert hooks["fd_install"]["status"] == "unavailable" and "kprobe tier" in hooks["fd_install"]["reason"]
    assert summary["type"] == "summary" and summary["exit_code"] == 0 and summary["lost"] == 0
    assert summary["events"] == sum(1 for r in records if r["type"] == "event")
    assert summary["duration_ns"] > 0


def test_sender_and_receiver_hold_the_same_struct_file(recorded: tuple[Any, list[dict], Path]) -> None:
    _, records, _ = recorded
    [created] = events(records, "memfd_create", "sender")
    [received] = events(records, "receive_fd", "receiver")
    assert created["file"].startswith("0xffff") and created["file"] == received["file"]
    assert created["inode"] == received["inode"] and created["inode"] > 0
    assert created["fd"] != received["fd"]
    assert created["tgid"] != received["tgid"]
    [setup] = events(records, "shmem_file_setup", "sender")
    assert setup["file"] == created["file"] and setup["detail"]["s_magic"] == "0x1021994"
    [passed] = events(records, "scm_fp_copy", "sender")
    assert passed["file"] == created["file"] and passed["fd"] == created["fd"]


def test_sender_maps_it_shared_receiver_privately_as_the_article(recorded: tuple[Any, list[dict], Path]) -> None:
    _, records, _ = recorded
    [created] = events(records, "memfd_create", "sender")
    mapped = {}
    for comm in ("sender", "receiver"):
        [mapped[comm]] = [e["detail"] for e in life_events(records, created, "do_mmap") if e["comm"] == comm]
        # read by the probe from the vma in the file's i_mmap tree, not derived from flags
        assert mapped[comm]["vm_file"] == created["file"] and mapped[comm]["vma"].startswith("0xffff")
    assert "MAP_SHARED" in mapped["sender"]["flags"]
    assert {"VM_SHARED", "VM_MAYSHARE"} <= set(mapped["sender"]["vm_flags"])
    assert "MAP_PRIVATE" in mapped["receiver"]["flags"] and mapped["receiver"]["prot"] == ["PROT_READ"]
    assert "VM_SHARED" not in mapped["receiver"]["vm_flags"]


def test_every_file_event_says_what_the_file_is(recorded: tuple[Any, list[dict], Path]) -> None:
    _, records, _ = recorded
    [created] = events(records, "memfd_create", "sender")
    on_memfd = [r for r in records if r["type"] == "event" and r["file"] == created["file"]
                and r["ts_ns"] >= created["ts_ns"]]   # a slab object names other files before it
    assert on_memfd and all(r["detail"]["file_kind"] == "memfd" for r in on_memfd)
    assert all(r["detail"]["file_name"] == "syspath-demo" for r in on_memfd)
    # f_op is shmem_file_operations where kallsyms lists data symbols; this kernel lists only
    # functions, so the table shows by its address and the function in its read slot
    f_op = created["detail"]["f_op"]
    assert f_op == "shmem_file_operations" or (f_op.startswith("0xffff")
                                               and created["detail"]["f_op_read"] == "shmem_file_read_iter")
    [send] = events(records, "unix_stream_sendmsg", "sender")
    assert send["detail"]["file_kind"] == "socket"


def test_private_mapping_sees_the_senders_write_until_it_writes(recorded: tuple[Any, list[dict], Path]) -> None:
    done, records, _ = recorded
    # the program says what it read, and says so differently when it read something else
    assert "program: receiver: the private mapping reads the sender's new text: " in done.stdout
    assert "program: sender: after the receiver's private write, the sender still reads its own text: " in done.stdout
    # the kernel's side: the receiver's write put a frame of its own behind its mapping (pagemap)
    frames = {(r["detail"]["pfn"], bool(r["detail"].get("file_page"))) for r in events(records, "page", "receiver")}
    assert any(file_page for _, file_page in frames) and any(not file_page for _, file_page in frames)
    assert "copy on write: receiver's write gave it PFN" in done.stdout


def test_refcount_rises_as_the_file_is_shared(recorded: tuple[Any, list[dict], Path]) -> None:
    _, records, _ = recorded
    [created] = events(records, "memfd_create", "sender")
    [received] = events(records, "receive_fd", "receiver")
    assert created["refcount"] == 1
    assert received["refcount"] > created["refcount"]


def test_socket_is_one_connected_unix_stream_pair(recorded: tuple[Any, list[dict], Path]) -> None:
    _, records, _ = recorded
    [send] = events(records, "unix_stream_sendmsg", "sender")
    [received] = events(records, "receive_fd", "receiver")
    assert send["detail"]["scm_rights"] == 1
    assert send["detail"]["peer"] == received["detail"]["sock"]


def test_the_file_rides_in_an_skb_on_the_receivers_queue(recorded: tuple[Any, list[dict], Path]) -> None:
    _, records, _ = recorded
    [created] = events(records, "memfd_create", "sender")
    [send] = events(records, "unix_stream_sendmsg", "sender")
    [flight] = events(records, "in_flight", "sender")
    [received] = events(records, "receive_fd", "receiver")
    # the scm_fp_list in UNIXCB(skb) holds the sender's own struct file, on the receiving sock's queue
    assert flight["file"] == created["file"] and flight["detail"]["skb"].startswith("0xffff")
    assert flight["detail"]["sock"] == send["detail"]["peer"] == received["detail"]["sock"]
    assert send["ts_ns"] <= flight["ts_ns"] <= received["ts_ns"]
    assert flight["refcount"] > created["refcount"]          # the skb's reference (fget_raw)


def test_both_processes_map_one_physical_page_until_the_receiver_writes(
        recorded: tuple[Any, list[dict], Path]) -> None:
    _, records, _ = recorded
    [created] = events(records, "memfd_create", "sender")
    pages = life_events(records, created, "page")
    sender = [e["detail"] for e in pages if e["comm"] == "sender"]
    receiver = [e["detail"] for e in pages if e["comm"] == "receiver"]
    assert sender and receiver and {page["pfn"] for page in sender} == {sender[0]["pfn"]}
    # a private mapping that only read maps the page-cache page itself: the sender's frame
    assert receiver[0]["file_page"] and receiver[0]["pfn"] == sender[0]["pfn"] > 0
    # its write made a copy: an anonymous frame of its own, the sender's unchanged
    assert not receiver[-1]["file_page"] and receiver[-1]["pfn"] != sender[0]["pfn"]
    done, _, _ = recorded
    assert f"map PFN {sender[0]['pfn']:#x}" in done.stdout


def test_receiver_read_the_senders_text(recorded: tuple[Any, list[dict], Path]) -> None:
    done, _, _ = recorded
    assert "read: 'hello from the sender: one struct file, two processes'" in done.stdout
    assert "One struct file 0xffff" in done.stdout and "different fd numbers" in done.stdout


def test_replay_reaches_the_same_finding(recorded: tuple[Any, list[dict], Path]) -> None:
    done, _, path = recorded
    replayed = run_syspath("replay", str(path), "--no-live")
    assert replayed.returncode == 0, replayed.stderr
    finding = [line for line in done.stdout.splitlines() if line.startswith(("One struct", "  sender", "  receiver"))]
    assert finding and all(line in replayed.stdout for line in finding)


def test_scenario_runs_as_the_invoking_user_not_root(shared_dir: Path) -> None:
    nobody = pwd.getpwnam("nobody")
    path = shared_dir / "rec.jsonl"                 # the recording is written as nobody: somewhere nobody may
    env = {**os.environ, "SUDO_UID": str(nobody.pw_uid), "SUDO_GID": str(nobody.pw_gid)}
    done = subprocess.run([sys.executable, "-m", "tracer", "run", "memfd-share", "--no-live", "--record",
                           str(path)], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert path.stat().st_uid == nobody.pw_uid
    assert f"sender: uid {nobody.pw_uid}:" in done.stdout
    assert f"receiver: uid {nobody.pw_uid}:" in done.stdout


def test_perf_buffer_fallback_carries_the_same_story(tmp_path: Path) -> None:
    path = tmp_path / "perf.jsonl"
    env = {**os.environ, "SYSPATH_FORCE_PERF_BUFFER": "1"}
    done = subprocess.run([sys.executable, "-m", "tracer", "run", "memfd-share", "--no-live", "--record", str(path)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    records = read_jsonl(path)
    [created] = events(records, "memfd_create", "sender")
    [received] = events(records, "receive_fd", "receiver")
    assert created["file"] == received["file"] and records[-1]["lost"] == 0


def test_only_the_scenarios_process_tree_is_traced(tmp_path: Path) -> None:
    outsider = subprocess.Popen([sys.executable, "-c",
                                 "import os, time\n"
                                 "end = time.time() + 30\n"
                                 "while time.time() < end:\n"
                                 "    os.close(os.memfd_create('outsider')); time.sleep(0.002)\n"])
    try:
        path = tmp_path / "tree.jsonl"
        done = run_syspath("run", "memfd-share", "--no-live", "--record", str(path))
    finally:
        outsider.kill()
        outsider.wait()
    assert done.returncode == 0, done.stderr
    records = read_jsonl(path)
    names = {r["detail"].get("name") for r in events(records, "memfd_create")}
    assert names == {"syspath-demo"}
    assert outsider.pid not in {r["tgid"] for r in records if r["type"] == "event"}


def test_the_programs_lines_are_recorded_on_the_events_clock_and_replayed(
        recorded: tuple[Any, list[dict], Path]) -> None:
    """Each line the scenario printed is an output record, stamped when syspath read it on the
    probes' clock: the receiver's report of the fd it got comes after the kernel's receive_fd,
    within the session. A replay prints the program's lines the live run printed."""
    done, records, path = recorded
    outputs = [r for r in records if r["type"] == "output"]
    [received] = events(records, "receive_fd", "receiver")
    [told] = [r for r in outputs if r["role"] == "receiver" and "received fd=" in r["text"]]
    session, summary = records[0], records[-1]
    assert received["ts_ns"] < told["ts_ns"] < session["started_ns"] + summary["duration_ns"]
    assert told["report"]["say"].startswith("uid ") and told["pid"] > 0
    live_lines = [line for line in done.stdout.splitlines() if line.startswith("program: ")]
    replayed = run_syspath("replay", str(path), "--no-live")
    assert replayed.returncode == 0, replayed.stderr
    assert len(live_lines) >= 4 and live_lines == [line for line in replayed.stdout.splitlines()
                                                    if line.startswith("program: ")]


# ---- inside the steps: kmem:kmem_cache_alloc and kmem:mm_page_alloc ----------------------------

def test_the_struct_file_and_inode_are_seen_at_their_allocation(recorded: tuple[Any, list[dict], Path]) -> None:
    _, records, _ = recorded
    [created] = events(records, "memfd_create", "sender")
    detail = created["detail"]
    # the struct file the filp cache handed out inside memfd_create is the one behind the returned fd,
    # and the one the receiver got (its receive_fd event looked it up in its own fd table)
    [received] = [e for e in events(records, "receive_fd", "receiver") if e["file"] == created["file"]]
    assert detail["filp_alloc"] == created["file"] == received["file"]
    stack = created["stack"]
    assert created["stack_from"] == "tracepoint:kmem:kmem_cache_alloc" and "kmem_cache_alloc_noprof" in stack[:2]
    chain = stack[stack.index("alloc_file_pseudo"):]
    assert chain[:3] == ["alloc_file_pseudo", "__shmem_file_setup", "__do_sys_memfd_create"]
    # the shmem_inode_info from shmem_inode_cache holds the file's own inode (file->f_inode)
    assert detail["inode_alloc"] == detail["inode_ptr"] != "0x0"


def test_each_mmap_of_the_memfd_names_the_vma_allocated_inside_it(recorded: tuple[Any, list[dict], Path]) -> None:
    _, records, _ = recorded
    [created] = events(records, "memfd_create", "sender")
    mapped = [e for e in events(records, "do_mmap") if e["file"] == created["file"]]
    assert {e["comm"] for e in mapped} == {"sender", "receiver"}
    for event in mapped:
        detail = event["detail"]
        assert detail["vma_alloc"] == detail["vma"] and detail["vm_file"] == event["file"]


def test_the_first_touch_frame_is_the_one_pagemap_shows(recorded: tuple[Any, list[dict], Path]) -> None:
    _, records, _ = recorded
    [created] = events(records, "memfd_create", "sender")
    [mapping] = [e for e in events(records, "do_mmap", "sender") if e["file"] == created["file"]]
    faults = [e for e in events(records, "memfd_page") if e["file"] == created["file"]]
    [first] = [e for e in faults if e["comm"] == "sender"]
    assert not first["detail"]["was_present"] and first["detail"]["write"]
    assert first["detail"]["addr"] == mapping["detail"]["address"] and first["ts_ns"] > mapping["ts_ns"]
    assert "shmem_alloc_folio" in first["stack"] and "shmem_fault" in first["stack"]
    # /proc/PID/pagemap, read as root by syspath (tracer/pages.py): the same frame at that address
    pages = [e for e in events(records, "page", "sender") if e["detail"]["addr"] == first["detail"]["addr"]]
    assert pages and {page["detail"]["pfn"] for page in pages} == {first["detail"]["pfn"]}
    # the receiver's write to its private mapping: the copy's frame, the one pagemap shows it got
    [copied] = [e for e in faults if e["comm"] == "receiver"]
    assert copied["detail"]["was_present"] and "do_wp_page" in copied["stack"]
    own = [e for e in events(records, "page", "receiver") if not e["detail"]["file_page"]]
    assert own and own[-1]["detail"]["pfn"] == copied["detail"]["pfn"] != first["detail"]["pfn"]


def test_a_read_only_file_mapped_shared_has_no_vm_shared(recorded: tuple[Any, list[dict], Path]) -> None:
    done, records, _ = recorded
    gconv = [e["detail"] for e in events(records, "do_mmap") if e["detail"].get("file_name") == "gconv-modules.cache"]
    if not gconv:
        pytest.skip("this Python mapped no gconv-modules.cache")
    for detail in gconv:
        assert "MAP_SHARED" in detail["flags"] and "FMODE_WRITE" not in detail["f_mode"]
        assert "VM_MAYSHARE" in detail["vm_flags"] and "VM_SHARED" not in detail["vm_flags"]
    assert "has no VM_SHARED" in done.stdout
