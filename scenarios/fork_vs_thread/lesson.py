"""fork-vs-thread: what a new task shares with its parent (CLONE_* flags, reference counts).

A LinuxThreads-style clone, a pthread and a fork side by side, and the signals sent
to them. Its steps, their candidate hooks on each tier, what their records carry,
and the kernel fields its probes read.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tracer.catalog import Hook, HookChoice, PathPoint, Payload, Step, function_hooks, tracepoint_hook
from tracer.events import CStruct, flag_names, hex_pointer
from tracer.lesson import Lesson


def _task_shared(owner: str) -> tuple[tuple[str, str], ...]:
    return tuple((f"{owner}.{name}", "Q") for name in ("mm", "fs", "files", "sighand", "signal"))


def _task_counts(owner: str) -> tuple[tuple[str, str], ...]:
    return tuple((f"{owner}.{name}", "I") for name in ("mm", "fs", "files", "sighand", "signal"))


CLONE_PAYLOAD = CStruct("clone_payload", (("flags", "Q"), ("child_tid", "I"), ("child_tgid", "I"),
                                          *_task_shared("parent"), *_task_shared("child"),
                                          *_task_counts("users"), ("entry", "I")))
SIGNAL_PAYLOAD = CStruct("signal_payload", (("sig", "i"), ("code", "i"), ("group", "i"), ("result", "i"),
                                            ("target_tid", "I"), ("reserved", "I"), ("handler", "Q")))
COPY_PAYLOAD = CStruct("copy_payload", (("from", "Q"), ("copy", "Q")))

# include/uapi/linux/sched.h (task_newtask reports kernel_clone_args.flags: no exit signal in it)
CLONE_BITS = {0x100: "CLONE_VM", 0x200: "CLONE_FS", 0x400: "CLONE_FILES", 0x800: "CLONE_SIGHAND",
              0x1000: "CLONE_PIDFD", 0x2000: "CLONE_PTRACE", 0x4000: "CLONE_VFORK", 0x8000: "CLONE_PARENT",
              0x10000: "CLONE_THREAD", 0x20000: "CLONE_NEWNS", 0x40000: "CLONE_SYSVSEM", 0x80000: "CLONE_SETTLS",
              0x100000: "CLONE_PARENT_SETTID", 0x200000: "CLONE_CHILD_CLEARTID", 0x800000: "CLONE_UNTRACED",
              0x1000000: "CLONE_CHILD_SETTID", 0x80000000: "CLONE_IO"}
TASK_SHARED = ("mm", "fs", "files", "sighand", "signal")


# probes/clone.h CLONE_ENTRY_*: the system call that led to kernel_clone
CLONE_ENTRIES = {1: "clone", 2: "clone3", 3: "fork", 4: "vfork"}


def clone_detail(flags: int, child_tid: int, child_tgid: int, parent_mm: int, parent_fs: int, parent_files: int,
                  parent_sighand: int, parent_signal: int, child_mm: int, child_fs: int, child_files: int,
                  child_sighand: int, child_signal: int, users_mm: int, users_fs: int, users_files: int,
                  users_sighand: int, users_signal: int, entry: int) -> dict[str, Any]:
    names = flag_names(flags, CLONE_BITS)
    parent = dict(zip(TASK_SHARED, map(hex_pointer, (parent_mm, parent_fs, parent_files, parent_sighand,
                                                     parent_signal)), strict=True))
    child = dict(zip(TASK_SHARED, map(hex_pointer, (child_mm, child_fs, child_files, child_sighand,
                                                    child_signal)), strict=True))
    return {"kind": "thread" if "CLONE_THREAD" in names else "process", "flags": names,
            "child_tid": child_tid, "child_tgid": child_tgid,
            "shared": {name: parent[name] is not None and parent[name] == child[name] for name in TASK_SHARED},
            "parent": parent, "child": child,
            "users": dict(zip(TASK_SHARED, (users_mm, users_fs, users_files, users_sighand, users_signal),
                              strict=True)),
            "entry": CLONE_ENTRIES.get(entry)}


# include/uapi/linux/signal.h
SIGNAL_NAMES = {1: "SIGHUP", 2: "SIGINT", 3: "SIGQUIT", 6: "SIGABRT", 9: "SIGKILL", 10: "SIGUSR1", 11: "SIGSEGV",
                12: "SIGUSR2", 13: "SIGPIPE", 14: "SIGALRM", 15: "SIGTERM", 17: "SIGCHLD", 18: "SIGCONT",
                19: "SIGSTOP", 20: "SIGTSTP"}
# include/trace/events/signal.h enum trace_signal_result
SIGNAL_RESULTS = {0: "delivered", 1: "ignored", 2: "already pending", 3: "overflow", 4: "lost info"}


def signal_generate_detail(sig: int, code: int, group: int, result: int, target_tid: int, reserved: int,
                            handler: int) -> dict[str, Any]:
    return {"sig": sig, "name": SIGNAL_NAMES.get(sig, f"signal {sig}"), "group": bool(group),
            "target_tid": target_tid, "result": SIGNAL_RESULTS.get(result, str(result)), "code": code}


def signal_deliver_detail(sig: int, code: int, group: int, result: int, target_tid: int, reserved: int,
                           handler: int) -> dict[str, Any]:
    return {"sig": sig, "name": SIGNAL_NAMES.get(sig, f"signal {sig}"), "code": code,
            "handler": {0: "default", 1: "ignore"}.get(handler, hex(handler))}


def copy_detail(from_: int, copy: int) -> dict[str, Any]:
    return {"from": hex_pointer(from_), "copy": hex_pointer(copy)}


CLONE = Payload("clone", CLONE_PAYLOAD, clone_detail)
COPY = Payload("copy", COPY_PAYLOAD, copy_detail)
SIGNAL_GENERATE = Payload("signal", SIGNAL_PAYLOAD, signal_generate_detail)
SIGNAL_DELIVER = Payload("signal", SIGNAL_PAYLOAD, signal_deliver_detail)

STEPS: tuple[Step, ...] = (
    Step("clone", "copy_process makes a new task; the CLONE_* flags decide what it shares", payload=CLONE,
         path_points=("task/task_newtask",), one_event_per_call=True, hooks=(
        *function_hooks("copy_process", "the CLONE_* flags in kernel_clone_args, then the new task_struct: "
                   "its mm/fs/files/sighand/signal pointers beside the parent's", ("args",)),
        Hook("syscall", "raw_tracepoint:sched_process_fork", "clone flags from task:task_newtask, then "
             "parent's and child's mm/fs/files/sighand/signal pointers read from both task_structs",
             False, ("task/task_newtask", "sched/sched_process_fork")),
    )),
    Step("dup_fd", "fs/file.c dup_fd copies the fd table (a fork without CLONE_FILES)", payload=COPY, hooks=(
        *function_hooks("dup_fd", "the parent's files_struct and the copy it returns", ("oldf",)),
    ), optional=True),
    Step("dup_mm", "kernel/fork.c dup_mm copies the address space (a fork without CLONE_VM)", payload=COPY, hooks=(
        *function_hooks("dup_mm", "the parent's mm_struct and the copy it returns", ("oldmm",)),
    ), optional=True),
)

STEPS += (
    Step("signal_generate", "kernel/signal.c queues a signal: on one thread, or on the thread group",
         payload=SIGNAL_GENERATE, hooks=(
        tracepoint_hook("signal", "signal_generate", "the signal, the task it was queued on and whether it was "
                        "sent to the whole thread group (kill) or to one thread (tgkill)"),
    )),
    Step("signal_deliver", "a thread takes a signal: get_signal() in the thread the kernel picked",
         payload=SIGNAL_DELIVER, hooks=(
        tracepoint_hook("signal", "signal_deliver",
                        "the signal and the thread that took it (the one the event runs in)"),
    )),
)

# The kernel fields its probes read (offsets from BTF, tracer/offsets.py)
FIELDS = {
    "TASK_FILES": ("task_struct", ("files",), 8),
    "TASK_MM": ("task_struct", ("mm",), 8),
    "TASK_FS": ("task_struct", ("fs",), 8),
    "TASK_SIGHAND": ("task_struct", ("sighand",), 8),
    "TASK_SIGNAL": ("task_struct", ("signal",), 8),
    "TASK_PID": ("task_struct", ("pid",), 4),
    "TASK_TGID": ("task_struct", ("tgid",), 4),
    "CLONE_ARGS_FLAGS": ("kernel_clone_args", ("flags",), 8),
    # the counts that sharing is made of (kernel/fork.c copy_mm, copy_fs, copy_files, copy_sighand, copy_signal)
    "MM_USERS": ("mm_struct", ("mm_users",), 4),
    "FS_USERS": ("fs_struct", ("users",), 4),
    "FILES_COUNT": ("files_struct", ("count",), 4),
    "SIGHAND_COUNT": ("sighand_struct", ("count",), 4),
    "SIGNAL_SIGCNT": ("signal_struct", ("sigcnt",), 4),
}
_TEXT = (str, type(None))
_NUMBER = (int, type(None))
DETAIL_SHAPES = {
    **dict.fromkeys(("flags",), ("list", (str,))),
    **dict.fromkeys(("child_tid", "child_tgid", "sig", "target_tid"), _NUMBER),
    **dict.fromkeys(("kind", "entry", "copy"), _TEXT),
    "shared": ("dict", (bool,)), "parent": ("dict", _TEXT), "child": ("dict", _TEXT), "users": ("dict", _NUMBER),
}


def fork_syscall_defines(_choices: Sequence[HookChoice]) -> list[str]:
    """arm64 has no fork/vfork syscalls (clone and clone3 only: glibc's fork() is clone there),
    so their tracepoints are missing and syscall.bpf.c leaves them out (-DNO_FORK_SYSCALLS).
    Called at build time only: replay never imports the kernel side."""
    from tracer import kernel

    return [] if kernel.has_tracepoint("syscalls", "sys_enter_fork") else ["-DNO_FORK_SYSCALLS"]


LESSON = Lesson(
    name="fork-vs-thread",
    summary="what a new task shares with its parent: a pthread, a fork and a LinuxThreads-style clone",
    package="fork_vs_thread",
    steps=STEPS,
    payload_header="payloads.h",
    files=("syscall.bpf.c",),
    syscall_files=("signal.bpf.c",),
    function_files=("kernel.bpf.c",),
    path_file="paths.bpf.c",
    fork_hook="clone_at_fork",
    fields=FIELDS,
    path_points=(PathPoint("task/task_newtask", "copy_process", "before"),),
    detail_shapes=DETAIL_SHAPES,
    renamed={"_do_fork": "kernel_clone", "do_fork": "kernel_clone"},
    defines=fork_syscall_defines,
)
