"""What a clone event must show, on any tier: shared for the thread, copied for the fork."""
from __future__ import annotations

STRUCTS = ("mm", "fs", "files", "sighand", "signal")
PTHREAD_FLAGS = {"CLONE_VM", "CLONE_FS", "CLONE_FILES", "CLONE_SIGHAND", "CLONE_THREAD", "CLONE_SYSVSEM",
                 "CLONE_SETTLS", "CLONE_PARENT_SETTID", "CLONE_CHILD_CLEARTID"}
SHARING_FLAGS = {"CLONE_VM", "CLONE_FS", "CLONE_FILES", "CLONE_SIGHAND", "CLONE_THREAD"}


# program.py's first four new tasks compare structures: the pthread, the LinuxThreads-style task,
# the fork child, posix_spawn's child; the later ones (a joined thread, a child process under a
# low RLIMIT_NPROC and its threads) show what the thread library does
COMPARED = 4


def all_clones(records: list[dict]) -> list[dict]:
    return [r for r in records if r["type"] == "event" and r["step"] == "clone"]


def clones(records: list[dict]) -> list[dict]:
    """The four new tasks whose structures the lesson compares, in order."""
    return all_clones(records)[:COMPARED]


def check_thread(thread: dict) -> None:
    detail = thread["detail"]
    assert detail["kind"] == "thread"
    assert set(detail["flags"]) == PTHREAD_FLAGS          # what glibc's pthread_create passes
    assert detail["child_tgid"] == thread["tgid"] and detail["child_tid"] != thread["pid"]
    assert all(detail["shared"][name] for name in STRUCTS)
    assert all(detail["parent"][n] == detail["child"][n] and detail["parent"][n].startswith("0xff")
               for n in STRUCTS)


def check_fork(fork: dict) -> None:
    detail = fork["detail"]
    assert detail["kind"] == "process"
    assert not SHARING_FLAGS & set(detail["flags"])
    assert detail["child_tgid"] == detail["child_tid"] != fork["tgid"]
    assert not any(detail["shared"].values())
    assert all(detail["child"][n] and detail["child"][n] != detail["parent"][n] for n in STRUCTS)


def check_spawn(spawn: dict) -> None:
    detail = spawn["detail"]
    assert {"CLONE_VM", "CLONE_VFORK"} <= set(detail["flags"])
    assert detail["shared"] == {"mm": True, "fs": False, "files": False, "sighand": False, "signal": False}


LINUXTHREADS_FLAGS = {"CLONE_VM", "CLONE_FS", "CLONE_FILES", "CLONE_SIGHAND"}


def check_linuxthreads(task: dict) -> None:
    """clone(CLONE_VM|CLONE_FS|CLONE_FILES|CLONE_SIGHAND), no CLONE_THREAD: four structures
    shared, its own signal_struct, and a thread group (a pid) of its own."""
    detail = task["detail"]
    assert detail["kind"] == "process"
    assert set(detail["flags"]) >= LINUXTHREADS_FLAGS and "CLONE_THREAD" not in detail["flags"]
    assert detail["shared"] == {"mm": True, "fs": True, "files": True, "sighand": True, "signal": False}
    assert detail["child_tgid"] == detail["child_tid"] != task["tgid"]


def check_counts_and_entries(records: list[dict]) -> None:
    """Sharing is a reference count: each structure the pthread shares counts at least 2 right
    after the clone; each new task says which system call led to kernel_clone."""
    thread = clones(records)[0]
    assert all(thread["detail"]["users"][name] >= 2 for name in STRUCTS), thread["detail"]["users"]
    assert all(c["detail"]["entry"] in ("clone", "clone3", "fork", "vfork") for c in all_clones(records))


def check_signal_taken_by_another_thread(records: list[dict]) -> None:
    """kill(getpid(), SIGUSR1) with the main thread blocking it: a group signal_generate, then a
    signal_deliver in a thread whose pid is not its tgid."""
    events = [r for r in records if r["type"] == "event"]
    sent = [e for e in events if e["step"] == "signal_generate" and e["detail"]["sig"] == 10 and e["detail"]["group"]]
    assert sent, "no process-directed SIGUSR1"
    later = [e for e in events if e["step"] == "signal_deliver" and e["detail"]["sig"] == 10
             and e["ts_ns"] > sent[0]["ts_ns"] and e["tgid"] == sent[0]["detail"]["target_tid"]]
    assert later and later[0]["pid"] != later[0]["tgid"], "SIGUSR1 was not taken by the worker thread"
    linuxthreads = clones(records)[1]["detail"]["child_tid"]
    taken_alone = [e for e in events if e["step"] == "signal_deliver" and e["detail"]["sig"] == 10
                   and e["pid"] == linuxthreads]
    assert taken_alone and taken_alone[0]["tgid"] == linuxthreads


# ---- what the thread library does around clone (fork-vs-thread's program, any tier) ----

def events(records: list[dict], step: str, **detail: object) -> list[dict]:
    return [r for r in records if r["type"] == "event" and r["step"] == step
            and all(r["detail"].get(key) == value for key, value in detail.items())]


def report(records: list[dict], role: str, key: str) -> dict:
    """The program's own report line (an output record) of `role` that holds `key`."""
    return next(r["report"] for r in records if r["type"] == "output" and r.get("report")
                and r["report"].get("role") == role and key in r["report"])


def check_thread_stack(records: list[dict]) -> None:
    """The first thread's stack: an mmap with a PROT_NONE guard before clone3, which got its
    start as the stack and struct pthread near its top; the program's /proc/PID/maps agrees."""
    thread = clones(records)[0]["detail"]["child_tid"]
    [made] = events(records, "thread_stack", child_tid=thread)
    detail = made["detail"]
    addr, length, guard = int(detail["addr"], 16), detail["len"], detail["guard"]
    assert detail["mmap_prot"] == ["PROT_NONE"] and "MAP_STACK" in detail["mmap_flags"]
    assert guard == 4096 and detail["opened_prot"] == ["PROT_READ", "PROT_WRITE"]
    seen = report(records, "stack", "stack_seen")["stack_seen"]         # /proc/PID/maps, read by the program
    assert int(seen["below"]["start"], 16) == addr and seen["below"]["perms"] == "---p"
    assert int(seen["below"]["end"], 16) == int(seen["mapping"]["start"], 16) == addr + guard
    assert addr <= int(seen["sp"], 16) < addr + length <= int(seen["mapping"]["end"], 16)
    # clone3 was given the mapping's start as its stack, and a tls (struct pthread) near its top
    assert int(detail["stack"], 16) == addr and detail["tls_in_mapping"] and 0 < detail["tls_below_top"] < 65536
    assert made["pid"] == clones(records)[0]["pid"] and made["ts_ns"] > clones(records)[0]["ts_ns"]


def check_setxid_broadcast(records: list[dict]) -> None:
    """glibc's setuid(): signal 33 to the other thread, each thread changing its own cred."""
    main = clones(records)[0]["pid"]
    worker = clones(records)[0]["detail"]["child_tid"]
    [sent] = events(records, "signal_generate", sig=33)
    assert sent["pid"] == main and sent["detail"]["group"] is False and sent["detail"]["target_tid"] == worker
    assert [e["pid"] for e in events(records, "signal_deliver", sig=33)] == [worker]
    creds = events(records, "cred_change")
    assert [e["pid"] for e in creds] == [worker, main, main]          # glibc's broadcast, then the raw call
    assert all(e["detail"]["ret"] == 0 and e["detail"]["old_cred"] != e["detail"]["new_cred"] for e in creds)
    assert creds[0]["detail"]["new_cred"] != creds[1]["detail"]["new_cred"]      # one struct cred each
    assert creds[0]["ts_ns"] > sent["ts_ns"] and creds[2]["detail"]["old_cred"] == creds[1]["detail"]["new_cred"]
    assert report(records, "setxid", "raw_tid")["raw_tid"] == main


def check_nproc_refusal(records: list[dict]) -> None:
    """RLIMIT_NPROC counts threads: the main thread's clone refused with EAGAIN."""
    seen = report(records, "limits", "nproc_limit")
    [refused] = events(records, "clone_failed")
    detail = refused["detail"]
    assert detail["errno"] == "EAGAIN" and detail["kind"] == "thread" and "CLONE_THREAD" in detail["flags"]
    assert detail["nproc_limit"] == seen["nproc_limit"] and seen["refused"]
    assert detail["limit"] == "RLIMIT_NPROC" and detail["nproc_count"] >= detail["nproc_limit"]
    assert seen["threads_max"] > detail["nproc_limit"] and seen["pid_max"] > detail["nproc_limit"]
    assert refused["tgid"] == refused["pid"] == clones(records)[0]["tgid"]     # the main thread, refused
