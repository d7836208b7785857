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
