"""fork-vs-thread: what a new task shares with its parent (CLONE_* flags, reference counts).

A LinuxThreads-style clone, a pthread and a fork side by side, and the signals sent
to them. Its steps, their candidate hooks on each tier, what their records carry,
and the kernel fields its probes read.
"""
from __future__ import annotations

import errno
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
                                            ("target_tid", "I"), ("blocked", "I"), ("handler", "Q")))
THREAD_STACK_PAYLOAD = CStruct("thread_stack_payload", (
    ("addr", "Q"), ("len", "Q"), ("prot", "Q"), ("flags", "Q"), ("opened", "Q"), ("opened_len", "Q"),
    ("opened_prot", "Q"), ("stack", "Q"), ("stack_size", "Q"), ("tls", "Q"), ("child_tid_addr", "Q"),
    ("child_tid", "I"), ("args_read", "I")))
CLONE_FAILED_PAYLOAD = CStruct("clone_failed_payload", (
    ("err", "q"), ("flags", "Q"), ("nproc_cur", "Q"), ("nproc_max", "Q"), ("nproc_count", "q"), ("entry", "I"),
    ("threads", "I")))
CRED_PAYLOAD = CStruct("cred_payload", (("old_cred", "Q"), ("new_cred", "Q"), ("ret", "q"), ("arg", "I"),
                                        ("uid", "I"), ("euid", "I"), ("reserved", "I")))
NICE_PAYLOAD = CStruct("nice_payload", (("ret", "q"), ("call", "i"), ("which", "i"), ("who", "i"),
                                        ("value", "i")))
TID_FUTEX_PAYLOAD = CStruct("tid_futex_payload", (("uaddr", "Q"), ("waited_ns", "Q"), ("ret", "q"), ("op", "I"),
                                                  ("val", "I"), ("owner_tid", "I"), ("reserved", "I")))
WAKEUP_PAYLOAD = CStruct("wakeup_payload", (("child_tid", "I"), ("target_cpu", "i"), ("parent_cpu", "i"),
                                            ("prio", "i")))
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


# include/uapi/linux/signal.h; 32 and 33 are real-time signals to the kernel, which glibc keeps
# for itself (nptl/pthreadP.h SIGCANCEL, SIGSETXID)
SIGNAL_NAMES = {1: "SIGHUP", 2: "SIGINT", 3: "SIGQUIT", 6: "SIGABRT", 9: "SIGKILL", 10: "SIGUSR1", 11: "SIGSEGV",
                12: "SIGUSR2", 13: "SIGPIPE", 14: "SIGALRM", 15: "SIGTERM", 17: "SIGCHLD", 18: "SIGCONT",
                19: "SIGSTOP", 20: "SIGTSTP", 32: "signal 32 (glibc's SIGCANCEL)", 33: "signal 33 (glibc's SIGSETXID)"}
BLOCKED = {0: False, 1: True}
# include/trace/events/signal.h enum trace_signal_result
SIGNAL_RESULTS = {0: "delivered", 1: "ignored", 2: "already pending", 3: "overflow", 4: "lost info"}


def signal_generate_detail(sig: int, code: int, group: int, result: int, target_tid: int, blocked: int,
                            handler: int) -> dict[str, Any]:
    return {"sig": sig, "name": SIGNAL_NAMES.get(sig, f"signal {sig}"), "group": bool(group),
            "target_tid": target_tid, "result": SIGNAL_RESULTS.get(result, str(result)), "code": code,
            "target_blocks": BLOCKED.get(blocked)}


def signal_deliver_detail(sig: int, code: int, group: int, result: int, target_tid: int, blocked: int,
                           handler: int) -> dict[str, Any]:
    return {"sig": sig, "name": SIGNAL_NAMES.get(sig, f"signal {sig}"), "code": code,
            "handler": {0: "default", 1: "ignore"}.get(handler, hex(handler)), "blocks": BLOCKED.get(blocked)}


# include/uapi/asm-generic/mman-common.h, mman.h
PROT_BITS = {0x1: "PROT_READ", 0x2: "PROT_WRITE", 0x4: "PROT_EXEC"}
MAP_BITS = {0x01: "MAP_SHARED", 0x02: "MAP_PRIVATE", 0x10: "MAP_FIXED", 0x20: "MAP_ANONYMOUS",
            0x4000: "MAP_NORESERVE", 0x20000: "MAP_STACK"}


def prot_names(prot: int) -> list[str]:
    return flag_names(prot, PROT_BITS) or ["PROT_NONE"]


def thread_stack_detail(addr: int, len: int, prot: int, flags: int, opened: int, opened_len: int,
                        opened_prot: int, stack: int, stack_size: int, tls: int, child_tid_addr: int,
                        child_tid: int, args_read: int) -> dict[str, Any]:
    """The guard: the bytes at the mapping's low end that the mprotect left as mmap made them
    (PROT_NONE), when that mprotect reached the mapping's end."""
    end = addr + len
    guard = opened - addr if opened and opened + opened_len == end and not prot else None
    if guard is None and args_read and prot and not opened:
        guard = 0                           # mapped accessible at once: no guard
    detail: dict[str, Any] = {
        "addr": hex(addr), "len": len, "guard": guard, "child_tid": child_tid,
        "opened": hex(opened) if opened else None, "opened_len": opened_len if opened else None,
        "stack": hex(stack), "stack_size": stack_size, "tls": hex(tls) if tls else None,
        "tls_in_mapping": addr <= tls < end if tls else None, "tls_below_top": end - tls if tls else None,
        "child_tid_addr": hex(child_tid_addr) if child_tid_addr else None}
    if args_read:                           # the lists only when known
        detail.update(mmap_prot=prot_names(prot), mmap_flags=flag_names(flags, MAP_BITS))
    if opened:
        detail["opened_prot"] = prot_names(opened_prot)
    return detail


RLIM_INFINITY = 2**64 - 1


def clone_failed_detail(err: int, flags: int, nproc_cur: int, nproc_max: int, nproc_count: int, entry: int,
                        threads: int) -> dict[str, Any]:
    """`limit` names RLIMIT_NPROC when the kernel's own count of the user's tasks had reached it
    (kernel/fork.c copy_process: the new task would have been one more than it allows)."""
    number = -err
    counted = nproc_count if nproc_count >= 0 else None
    reached = counted is not None and nproc_cur != RLIM_INFINITY and counted >= nproc_cur
    return {"errno": errno.errorcode.get(number, str(number)), "limit": "RLIMIT_NPROC" if reached else None,
            "flags": flag_names(flags, CLONE_BITS), "kind": "thread" if flags & 0x10000 else "process",
            "entry": CLONE_ENTRIES.get(entry),
            "nproc_limit": None if nproc_cur == RLIM_INFINITY else nproc_cur,
            "nproc_count": counted, "threads": threads}


def cred_detail(old_cred: int, new_cred: int, ret: int, arg: int, uid: int, euid: int,
                reserved: int) -> dict[str, Any]:
    return {"syscall": "setuid", "arg": arg, "ret": ret, "old_cred": hex_pointer(old_cred),
            "new_cred": hex_pointer(new_cred), "uid": uid, "euid": euid}


# include/uapi/linux/resource.h PRIO_*; kernel/sys.c getpriority returns 20 - nice
PRIO_WHICH = {0: "PRIO_PROCESS", 1: "PRIO_PGRP", 2: "PRIO_USER"}


def nice_detail(ret: int, call: int, which: int, who: int, value: int) -> dict[str, Any]:
    getting = call == 2
    return {"call": "getpriority" if getting else "setpriority", "which": PRIO_WHICH.get(which, str(which)),
            "who": who, "ret": ret, "nice": (20 - ret if ret > 0 else None) if getting else value}


# include/uapi/linux/futex.h
FUTEX_OPS = {0: "FUTEX_WAIT", 1: "FUTEX_WAKE", 9: "FUTEX_WAIT_BITSET", 10: "FUTEX_WAKE_BITSET"}
FUTEX_PRIVATE, FUTEX_CLOCK_REALTIME = 128, 256


def tid_futex_detail(uaddr: int, waited_ns: int, ret: int, op: int, val: int, owner_tid: int,
                     reserved: int) -> dict[str, Any]:
    name = FUTEX_OPS.get(op & ~(FUTEX_PRIVATE | FUTEX_CLOCK_REALTIME), str(op))
    return {"uaddr": hex(uaddr), "op": name + ("|FUTEX_PRIVATE_FLAG" if op & FUTEX_PRIVATE else ""),
            "val": val, "owner_tid": owner_tid, "ret": ret, "waited_ns": waited_ns}


def wakeup_detail(child_tid: int, target_cpu: int, parent_cpu: int, prio: int) -> dict[str, Any]:
    return {"child_tid": child_tid, "target_cpu": target_cpu, "parent_cpu": parent_cpu, "prio": prio}


def copy_detail(from_: int, copy: int) -> dict[str, Any]:
    return {"from": hex_pointer(from_), "copy": hex_pointer(copy)}


CLONE = Payload("clone", CLONE_PAYLOAD, clone_detail)
COPY = Payload("copy", COPY_PAYLOAD, copy_detail)
SIGNAL_GENERATE = Payload("signal", SIGNAL_PAYLOAD, signal_generate_detail)
SIGNAL_DELIVER = Payload("signal", SIGNAL_PAYLOAD, signal_deliver_detail)
THREAD_STACK = Payload("thread_stack", THREAD_STACK_PAYLOAD, thread_stack_detail)
CLONE_FAILED = Payload("clone_failed", CLONE_FAILED_PAYLOAD, clone_failed_detail)
CRED = Payload("cred", CRED_PAYLOAD, cred_detail)
NICE = Payload("nice", NICE_PAYLOAD, nice_detail)
TID_FUTEX = Payload("tid_futex", TID_FUTEX_PAYLOAD, tid_futex_detail)
WAKEUP = Payload("wakeup", WAKEUP_PAYLOAD, wakeup_detail)

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


def _syscalls(*names: str) -> tuple[str, ...]:
    return tuple(f"syscalls/{name}" for name in names)


def _seen_at(point: str, needs: tuple[str, ...], reads: str) -> Hook:
    """Tracepoints that are the step on every tier (no kernel function stands for it)."""
    return Hook("syscall", point, reads, True, needs, any_mode=True)


# What a thread library does around clone: seen at tracepoints on every tier
STEPS += (
    Step("thread_stack", "the new thread's stack: glibc mmaps it (MAP_STACK), mprotects all but a guard, and "
         "passes it to clone3 with the thread pointer (CLONE_SETTLS)", payload=THREAD_STACK, hooks=(
        _seen_at("tracepoint:mmap:vm_unmapped_area", ("mmap/vm_unmapped_area", *_syscalls(
            "sys_enter_mprotect", "sys_exit_clone3", "sys_enter_clone3")),
            "the address do_mmap chose for a MAP_STACK mapping (mmap:vm_unmapped_area, the mmap's prot and flags "
            "from its saved registers), the mprotect inside it, and clone3's stack, stack_size and tls"),
    )),
    Step("clone_failed", "kernel/fork.c copy_process refused a new task (RLIMIT_NPROC, threads-max, pid_max)",
         payload=CLONE_FAILED, hooks=(
        _seen_at("tracepoint:syscalls:sys_exit_clone3", _syscalls("sys_exit_clone3", "sys_exit_clone"),
                 "the error clone or clone3 returned, the flags it asked for, the caller's RLIMIT_NPROC "
                 "(signal->rlim) and, where the kernel keeps it there, its user's task count (cred->ucounts)"),
    )),
    Step("join_futex", "a wait on a thread's tid word: CLONE_CHILD_CLEARTID makes the kernel clear it and wake "
         "its futex when the thread exits (kernel/fork.c mm_release)", payload=TID_FUTEX, hooks=(
        _seen_at("tracepoint:syscalls:sys_exit_futex", _syscalls("sys_enter_futex", "sys_exit_futex"),
                 "futex calls on a word that clone was given as child_tid, with how long they waited"),
    )),
    Step("cred_change", "setuid() in one thread: the kernel replaces that task's struct cred only "
         "(kernel/sys.c __sys_setuid -> commit_creds)", payload=CRED, hooks=(
        _seen_at("tracepoint:syscalls:sys_exit_setuid", _syscalls("sys_enter_setuid", "sys_exit_setuid"),
                 "the calling thread's struct cred before and after setuid(), and the new cred's uid and euid"),
    )),
    Step("nice", "setpriority()/getpriority() of one task: nice is a task's own (kernel/sys.c set_one_prio)",
         payload=NICE, hooks=(
        _seen_at("tracepoint:syscalls:sys_exit_setpriority", _syscalls(
            "sys_enter_setpriority", "sys_exit_setpriority", "sys_enter_getpriority", "sys_exit_getpriority"),
            "which task setpriority() and getpriority() named, the value set and the value read back"),
    )),
    Step("first_wakeup", "a new task's first wake-up: kernel/sched/core.c wake_up_new_task chooses its CPU then "
         "(select_task_rq)", payload=WAKEUP, hooks=(
        tracepoint_hook("sched", "sched_wakeup_new", "the new task and the CPU chosen for it, beside the CPU "
                        "its parent runs on"),
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
    "TASK_BLOCKED": ("task_struct", ("blocked",), 8),
    "TASK_REAL_CRED": ("task_struct", ("real_cred",), 8),
    "CRED_UID": ("cred", ("uid",), 4),
    "CRED_EUID": ("cred", ("euid",), 4),
    "SIGNAL_RLIM": ("signal_struct", ("rlim",), 0),
    "SIGNAL_NR_THREADS": ("signal_struct", ("nr_threads",), 4),
}
_TEXT = (str, type(None))
_NUMBER = (int, type(None))
DETAIL_SHAPES = {
    **dict.fromkeys(("flags",), ("list", (str,))),
    **dict.fromkeys(("child_tid", "child_tgid", "sig", "target_tid", "len", "guard", "stack_size", "opened_len",
                     "tls_below_top", "nproc_limit", "nproc_count", "threads", "arg", "ret", "uid", "euid", "who",
                     "nice", "val", "owner_tid", "waited_ns", "target_cpu", "parent_cpu", "prio"), _NUMBER),
    **dict.fromkeys(("kind", "entry", "copy", "addr", "stack", "tls", "opened", "child_tid_addr", "errno", "limit",
                     "old_cred", "new_cred", "syscall", "call", "which", "uaddr", "op"), _TEXT),
    **dict.fromkeys(("mmap_prot", "mmap_flags", "opened_prot"), ("list", (str,))),
    **dict.fromkeys(("target_blocks", "blocks", "tls_in_mapping"), (bool, type(None))),
    "shared": ("dict", (bool,)), "parent": ("dict", _TEXT), "child": ("dict", _TEXT), "users": ("dict", _NUMBER),
}


def fork_syscall_defines(_choices: Sequence[HookChoice]) -> list[str]:
    """arm64 has no fork/vfork syscalls (clone and clone3 only: glibc's fork() is clone there),
    so their tracepoints are missing and syscall.bpf.c leaves them out (-DNO_FORK_SYSCALLS).
    Called at build time only: replay never imports the kernel side."""
    from tracer import kernel

    return [] if kernel.has_tracepoint("syscalls", "sys_enter_fork") else ["-DNO_FORK_SYSCALLS"]


def ucounts_defines() -> list[str]:
    """Where the kernel counts a user's tasks for RLIMIT_NPROC: cred->ucounts->rlimit[UCOUNT_RLIMIT_NPROC]
    (the first of enum rlimit_type, include/linux/user_namespace.h) since the rlimit counts moved there;
    older kernels count in user_struct, which clone_failed does not read."""
    from tracer.btf import BtfError, resolve_offsets

    try:
        found = resolve_offsets({"FVT_CRED_UCOUNTS": ("cred", ("ucounts",)),
                                 "FVT_UCOUNTS_NPROC": ("ucounts", ("rlimit",))})
    except (BtfError, OSError):
        return []
    return [f"-D{name}={member.offset}" for name, member in found.items()]


def lesson_defines(choices: Sequence[HookChoice]) -> list[str]:
    return fork_syscall_defines(choices) + ucounts_defines()


LESSON = Lesson(
    name="fork-vs-thread",
    summary="what a new task shares with its parent: a pthread, a fork and a LinuxThreads-style clone",
    package="fork_vs_thread",
    steps=STEPS,
    payload_header="payloads.h",
    files=("syscall.bpf.c", "threads.bpf.c"),
    syscall_files=("signal.bpf.c",),
    function_files=("kernel.bpf.c",),
    path_file="paths.bpf.c",
    fork_hook="clone_at_fork",
    fields=FIELDS,
    path_points=(PathPoint("task/task_newtask", "copy_process", "before"),),
    detail_shapes=DETAIL_SHAPES,
    renamed={"_do_fork": "kernel_clone", "do_fork": "kernel_clone"},
    defines=lesson_defines,
)
