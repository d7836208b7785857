"""fork-vs-thread: what a new task shares with its parent, and what follows.

1. a thread (pthread_create: CLONE_VM|CLONE_FS|CLONE_FILES|CLONE_SIGHAND|CLONE_THREAD...)
   chdir()s, open()s a file, sets SIGUSR2 to be ignored and lowers RLIMIT_NOFILE: the
   main thread sees all four (one fs_struct, files_struct, sighand_struct, signal_struct).
   A signal sent to the process while the main thread blocks it is taken by the thread.
2. a LinuxThreads-style task: clone(CLONE_VM|CLONE_FS|CLONE_FILES|CLONE_SIGHAND) and no
   CLONE_THREAD, as Linux threads were made before 2.6. Its body is the libc function
   pause(), so no Python runs on its stack. It shares four structures but is a
   thread group of its own: another pid, its own rlimits (the parent lowers the task's with
   prlimit() and looks at its own), and a signal sent to its pid is for that task alone ("the
   pid problem" POSIX threads could not live with).
3. a fork()ed child does what the thread did: the parent sees none of it (copies). It then
   stops the parent process with SIGSTOP and resumes it with SIGCONT, and reads each thread's
   state after each.
4. posix_spawn (glibc: clone with CLONE_VM|CLONE_VFORK) starts /bin/sleep, for contrast: it
   shares only the address space, and the parent waits until the child has exec'd.
5. what a thread library does that the kernel leaves to it: setuid() in one thread (glibc sends
   signal 33 to the others, each changes its own credentials), then the raw system call (one
   thread alone); nice set on one thread, read back per thread; a thread joined (a futex wait
   on its tid word); and, under a low RLIMIT_NPROC, threads started until the kernel refuses one.
The worker thread's stack pointer and the mappings around it are read from /proc at step 1.
Each step reports on stdout as a JSON line {"role", "say", ...facts}: what the program saw itself
("checks": a change made in one task, looked for in the other; "getpid"; thread states; whether
a signal was handled), and its "say" states a result only when it saw it.
"""
from __future__ import annotations

import ctypes
import os
import platform
import resource
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))     # stepping.py, shared by the lessons
from stepping import pause, report

LIBC = ctypes.CDLL(None, use_errno=True)
LIBC.signal.restype = ctypes.c_void_p
LIBC.signal.argtypes = (ctypes.c_int, ctypes.c_void_p)
LIBC.clone.restype = ctypes.c_int
LIBC.clone.argtypes = (ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p)
SIG_DFL, SIG_IGN = 0, 1
# include/uapi/linux/sched.h
CLONE_VM, CLONE_FS, CLONE_FILES, CLONE_SIGHAND = 0x100, 0x200, 0x400, 0x800
LINUXTHREADS_FLAGS = CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND
# The syscall libc's pause() waits in: pause on x86-64 (arch/x86/entry/syscalls/syscall_64.tbl);
# arm64's table (include/uapi/asm-generic/unistd.h) has no pause, and glibc makes
# ppoll(NULL, 0, NULL, NULL) there (sysdeps/unix/sysv/linux/pause.c)
PAUSE_SYSCALL = {"x86_64": 34, "aarch64": 73}.get(platform.machine())
# setuid's number per machine (arch/x86/entry/syscalls/syscall_64.tbl, include/uapi/asm-generic/unistd.h)
SYS_SETUID = {"x86_64": 105, "aarch64": 146}.get(platform.machine())
JOIN_SLEEP_US = 100_000             # the joined thread's body: usleep(), so the join waits
NPROC_TRIES = 8
TASK_STACK = 256 * 1024             # the LinuxThreads task's stack: a signal handler runs on it
SIGNAL_WAIT_S = 5.0


def fd_is_open(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True


def ignore_sigusr2() -> None:
    """libc signal(): Python's signal module only lets the main thread change a disposition."""
    LIBC.signal(signal.SIGUSR2, SIG_IGN)


def status_field(pid: int, name: str, task: int | None = None) -> str:
    """A field of /proc/PID[/task/TID]/status: the kernel's own view of that task."""
    path = Path(f"/proc/{pid}") / (f"task/{task}" if task else "") / "status"
    for line in path.read_text().splitlines():
        if line.startswith(f"{name}:"):
            return line.split(":", 1)[1].strip()
    return ""


def sigusr2_ignored(pid: int | None = None) -> bool:
    """The kernel's view (sighand_struct), not Python's: SigIgn in /proc/PID/status."""
    ignored = status_field(pid or os.getpid(), "SigIgn")
    return bool(int(ignored or "0", 16) >> (signal.SIGUSR2 - 1) & 1)


def open_files_limit() -> int:
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def lower_open_files_limit() -> None:
    """setrlimit(): the limits live in signal_struct, one per thread group."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft - 1, hard))


def restore(limit: int) -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (limit, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
    os.chdir("/")
    LIBC.signal(signal.SIGUSR2, SIG_DFL)


def ids() -> dict[str, int]:
    return {"pid": os.getpid(), "ppid": os.getppid(), "tid": threading.get_native_id()}


def check(structure: str, action: str, changed: str, looked_in: str, seen: bool) -> dict[str, object]:
    """One observation for the report: `action` changed the `changed` task's structure; was the
    change `seen` from `looked_in`? (syspath compares it with the pointers the kernel recorded.)"""
    return {"structure": structure, "action": action, "changed": changed, "looked_in": looked_in, "seen": seen}


def pids(task: int, parent: int, source: str) -> dict[str, object]:
    return {"getpid": {"new task": task, "parent": parent}, "pid_source": source}


def blocking_threads(sig: int) -> tuple[list[int], list[int]]:
    """(threads that block `sig`, threads that do not), from each thread's SigBlk in /proc."""
    blocking, not_blocking = [], []
    for task in sorted(Path("/proc/self/task").iterdir(), key=lambda path: int(path.name)):
        mask = int(status_field(os.getpid(), "SigBlk", int(task.name)) or "0", 16)
        (blocking if mask >> (sig - 1) & 1 else not_blocking).append(int(task.name))
    return blocking, not_blocking


def stack_pointer(pid: int, tid: int) -> int | None:
    """A blocked thread's user stack pointer: /proc/PID/task/TID/syscall ("nr args... sp pc"),
    which says only "running" until the thread sleeps in a system call: wait for that."""
    deadline = time.monotonic() + SIGNAL_WAIT_S
    while time.monotonic() < deadline:
        try:
            fields = Path(f"/proc/{pid}/task/{tid}/syscall").read_text().split()
        except OSError:
            return None
        if len(fields) >= 9:
            return int(fields[-2], 16)
        time.sleep(0.001)
    return None


def mappings(pid: int) -> list[tuple[int, int, str]]:
    found = []
    for line in Path(f"/proc/{pid}/maps").read_text().splitlines():
        span, perms = line.split()[:2]
        start, end = (int(part, 16) for part in span.split("-"))
        found.append((start, end, perms))
    return found


def stack_seen(tid: int) -> dict[str, object]:
    """The mapping a thread's stack pointer lies in and the one just below it (the guard), from
    /proc/PID/maps: what the kernel says of the thread's stack, beside what syspath recorded."""
    sp = stack_pointer(os.getpid(), tid)
    maps = mappings(os.getpid())
    where = next((i for i, (start, end, _) in enumerate(maps) if sp is not None and start <= sp < end), None)
    if sp is None or where is None:
        return {"sp": None}
    start, end, perms = maps[where]
    seen: dict[str, object] = {"sp": hex(sp), "mapping": {"start": hex(start), "end": hex(end), "perms": perms}}
    if where > 0 and maps[where - 1][1] == start:
        below = maps[where - 1]
        seen["below"] = {"start": hex(below[0]), "end": hex(below[1]), "perms": below[2]}
    return seen


class Worker:
    """A pthread that does the four things, then waits (SIGUSR1 unblocked) until released."""

    def __init__(self, workdir: str) -> None:
        self.workdir = workdir
        self.ready = threading.Event()
        self.release = threading.Event()
        self.opened = -1
        self.ids: dict[str, int] = {}
        self.thread = threading.Thread(target=self.body, name="worker")

    def body(self) -> None:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGUSR1})
        self.ids = ids()
        os.chdir(self.workdir)
        self.opened = os.open("/dev/null", os.O_RDONLY)
        ignore_sigusr2()
        lower_open_files_limit()
        self.ready.set()
        self.release.wait(30)


def thread_step(worker: Worker, limit: int) -> None:
    worker.thread.start()
    worker.ready.wait(10)
    sees_cwd = os.getcwd() == worker.workdir
    sees_fd = fd_is_open(worker.opened)
    sees_signal = sigusr2_ignored()
    sees_rlimit = open_files_limit() == limit - 1
    main = ids()
    report("thread", f"thread chdir -> main sees cwd {os.getcwd()} ({'shared' if sees_cwd else 'not shared'}); "
           f"thread's fd {worker.opened} {'open' if sees_fd else 'closed'} in main; thread set SIGUSR2 to "
           f"ignore -> {'main ignores it too' if sees_signal else 'main does not'}; thread lowered "
           f"RLIMIT_NOFILE -> main's limit is {open_files_limit()}",
           child=worker.ids["tid"], fd=worker.opened, checks=[
               check("fs", "chdir() in the new task", "new task", "parent", sees_cwd),
               check("files", "open() in the new task", "new task", "parent", sees_fd),
               check("sighand", "SIGUSR2 -> ignore in the new task", "new task", "parent", sees_signal),
               check("signal", "setrlimit(RLIMIT_NOFILE) in the new task", "new task", "parent", sees_rlimit)])
    same = "same process" if worker.ids["pid"] == main["pid"] else "two processes"
    report("thread", f"getpid() in the thread: {worker.ids['pid']}, in main: {main['pid']} ({same}); "
           f"gettid(): {worker.ids['tid']} vs {main['tid']}", child=worker.ids["tid"],
           gettid={"new task": worker.ids["tid"], "parent": main["tid"]},
           **pids(worker.ids["pid"], main["pid"], "getpid()"))
    os.close(worker.opened)
    restore(limit)
    seen = stack_seen(worker.ids["tid"])
    below = seen.get("below")
    guard = f"; below it {below['start']}-{below['end']} {below['perms']}" if isinstance(below, dict) else ""
    mapping = seen.get("mapping")
    where = f"{mapping['start']}-{mapping['end']} {mapping['perms']}" if isinstance(mapping, dict) else "?"
    report("stack", f"the thread's stack pointer {seen.get('sp')} lies in {where} (/proc/PID/maps){guard}",
           child=worker.ids["tid"], stack_seen=seen)


def signal_to_the_process(worker: Worker) -> None:
    """kill(getpid()) while the main thread blocks the signal: the kernel lets a thread that
    does not block it take it (kernel/signal.c complete_signal)."""
    taken = threading.Event()
    signal.signal(signal.SIGUSR1, lambda *_: taken.set())
    blocking, not_blocking = blocking_threads(signal.SIGUSR1)
    os.kill(os.getpid(), signal.SIGUSR1)
    deadline = time.monotonic() + SIGNAL_WAIT_S
    while not taken.is_set() and time.monotonic() < deadline:
        time.sleep(0.01)            # Python runs its handler in the main thread, between bytecodes
    if not taken.is_set():
        result = "not handled in time"
    elif not_blocking == [worker.ids["tid"]]:
        result = f"handled; only the worker thread (tid {worker.ids['tid']}) did not block it, so it took it"
    else:
        result = f"handled; threads not blocking it: {not_blocking}"
    report("signals", f"kill({os.getpid()}, SIGUSR1) with SIGUSR1 blocked in threads {blocking}: {result}",
           sig=int(signal.SIGUSR1), process=os.getpid(), blocking=blocking, not_blocking=not_blocking,
           handled=taken.is_set())


def linuxthreads_step(workdir: str, limit: int) -> None:
    stack = ctypes.create_string_buffer(TASK_STACK)
    top = (ctypes.addressof(stack) + TASK_STACK) & ~0xF
    body = ctypes.cast(LIBC.pause, ctypes.c_void_p)
    # the new task inherits the caller's signal mask: let it take SIGUSR1, which main blocks
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGUSR1})
    task = LIBC.clone(body, top, LINUXTHREADS_FLAGS | signal.SIGCHLD, None)
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1})
    if task < 0:
        report("linuxthreads", f"clone() failed: {os.strerror(ctypes.get_errno())}", error=True)
        return
    try:
        in_pause = wait_until_paused(task)
        observe_linuxthreads_task(task, workdir, limit)
        stop_one_task(task)
    finally:
        os.kill(task, signal.SIGUSR1)       # its pid names that task alone: it returns from pause()
        status, killed = reap(task)
    code = os.waitstatus_to_exitcode(status)
    ended = "it did not leave pause() in time and was killed" if killed else f"it left pause() and exited ({code})"
    report("linuxthreads", f"kill({task}, SIGUSR1): {ended}", sig=int(signal.SIGUSR1), target=task, child=task,
           was_paused=in_pause, left_pause=not killed, exit_code=code)
    del stack


def wait_until_paused(task: int) -> bool:
    """A signal that arrives before the task reaches pause() would be handled and forgotten,
    and pause() would then wait for ever: wait until /proc says it sleeps in pause."""
    deadline = time.monotonic() + SIGNAL_WAIT_S
    while time.monotonic() < deadline:
        try:
            if Path(f"/proc/{task}/syscall").read_text().split()[0] == str(PAUSE_SYSCALL):
                return True
        except (OSError, IndexError):
            pass
        time.sleep(0.001)
    return False


def reap(task: int) -> tuple[int, bool]:
    """The task's wait status, and whether it had to be killed: SIGKILL if it did not leave
    pause() (it must not outlive us)."""
    deadline = time.monotonic() + SIGNAL_WAIT_S
    while time.monotonic() < deadline:
        found, status = os.waitpid(task, os.WNOHANG)
        if found:
            return status, False
        time.sleep(0.01)
    os.kill(task, signal.SIGKILL)
    return os.waitpid(task, 0)[1], True


def observe_linuxthreads_task(task: int, workdir: str, limit: int) -> None:
    """The task runs no Python: its side of each structure is read from /proc while it waits
    in pause(), after the parent changed its own (the same structure, or a copy?)."""
    main = ids()
    task_ids = {"pid": int(status_field(task, "Tgid")), "tid": int(status_field(task, "Pid")),
                "ppid": int(status_field(task, "PPid"))}
    os.chdir(workdir)
    opened = os.open("/dev/null", os.O_RDONLY)
    ignore_sigusr2()
    sees_cwd = os.readlink(f"/proc/{task}/cwd") == workdir
    sees_fd = os.path.exists(f"/proc/{task}/fd/{opened}")
    sees_signal = sigusr2_ignored(task)
    resource.prlimit(task, resource.RLIMIT_NOFILE, (limit - 1, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
    sees_rlimit = open_files_limit() == limit - 1
    report("linuxthreads", f"clone(CLONE_VM|CLONE_FS|CLONE_FILES|CLONE_SIGHAND) without CLONE_THREAD: "
           f"parent chdir -> task's cwd {'follows' if sees_cwd else 'stays'}; parent's fd {opened} "
           f"{'open' if sees_fd else 'not open'} in the task; parent ignores SIGUSR2 -> task "
           f"{'too' if sees_signal else 'does not'}", child=task, checks=[
               check("fs", "chdir() in the parent", "parent", "new task", sees_cwd),
               check("files", "open() in the parent", "parent", "new task", sees_fd),
               check("sighand", "SIGUSR2 -> ignore in the parent", "parent", "new task", sees_signal)])
    report("linuxthreads", f"the task's RLIMIT_NOFILE lowered by the parent with prlimit() -> the parent's "
           f"{'follows' if sees_rlimit else 'stays'} {open_files_limit()}", child=task, checks=[
               check("signal", "prlimit(RLIMIT_NOFILE) by the parent on the new task", "new task", "parent",
                     sees_rlimit)])
    problem = ("the pid problem, each LinuxThreads thread was a process of its own"
               if task_ids["pid"] != main["pid"] else "one process")
    report("linuxthreads", f"getpid() in the task (its Tgid in /proc): {task_ids['pid']}, in the parent: "
           f"{main['pid']}: {problem}", child=task, **pids(task_ids["pid"], main["pid"], "/proc/PID/status Tgid"))
    os.close(opened)
    restore(limit)


def task_state(task: int) -> str:
    try:
        return Path(f"/proc/{task}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return "?"


def wait_for_state(task: int, stopped: bool) -> str:
    deadline = time.monotonic() + SIGNAL_WAIT_S
    while (task_state(task) == "T") != stopped and time.monotonic() < deadline:
        time.sleep(0.001)
    return task_state(task)


def stop_one_task(task: int) -> None:
    """SIGSTOP to the LinuxThreads-style task: its thread group is itself, so it alone stops;
    the parent's threads are read while it is stopped."""
    os.kill(task, signal.SIGSTOP)
    stopped = wait_for_state(task, stopped=True)
    others = {str(tid): state for tid, state in thread_states(os.getpid()).items()}
    os.kill(task, signal.SIGCONT)
    resumed = wait_for_state(task, stopped=False)
    alone = stopped == "T" and all(state != "T" for state in others.values())
    report("linuxthreads", f"SIGSTOP to task {task}: its state {stopped}; the parent's threads "
           f"{others} ({'it alone stopped' if alone else 'not it alone'}); SIGCONT: {resumed}", child=task,
           sole_stop={"target": task, "state": stopped, "others": others, "resumed": resumed})


def thread_states(pid: int) -> dict[int, str]:
    """State letter of each thread of a process (R, S, T stopped, ...), from /proc."""
    states = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        stat = (task / "stat").read_text()
        states[int(task.name)] = stat.rsplit(")", 1)[1].split()[0]
    return states


def wait_for_states(pid: int, stopped: bool) -> dict[int, str]:
    deadline = time.monotonic() + SIGNAL_WAIT_S
    while True:
        states = thread_states(pid)
        if all((state == "T") == stopped for state in states.values()) or time.monotonic() > deadline:
            return states


def stop_and_continue(parent: int) -> dict[str, dict[int, str]]:
    """In the fork child: SIGSTOP then SIGCONT to the parent process, each thread's state seen."""
    before = thread_states(parent)
    os.kill(parent, signal.SIGSTOP)
    stopped = wait_for_states(parent, stopped=True)
    os.kill(parent, signal.SIGCONT)
    resumed = wait_for_states(parent, stopped=False)
    return {"before": before, "stopped": stopped, "resumed": resumed}


def fork_step(workdir: str, limit: int) -> None:
    channel_read, channel_write = os.pipe()
    parent = os.getpid()
    child = os.fork()
    if child == 0:
        os.chdir(workdir)
        ignore_sigusr2()
        lower_open_files_limit()
        fd = os.open("/dev/null", os.O_RDONLY)
        states = stop_and_continue(parent)
        every = all(state == "T" for state in states["stopped"].values())
        stopped = "every thread stopped" if every else "not every thread stopped"
        report("stop", f"SIGSTOP to process {parent}: {stopped}, "
               f"threads {states['stopped']} (T = stopped); SIGCONT: {states['resumed']}", process=parent,
               **{key: {str(tid): state for tid, state in value.items()} for key, value in states.items()})
        os.write(channel_write, str(fd).encode())
        os._exit(0)
    os.waitpid(child, 0)
    fd = int(os.read(channel_read, 16))
    sees_cwd = os.getcwd() == workdir
    sees_fd = fd_is_open(fd) and fd not in (channel_read, channel_write)
    sees_signal = sigusr2_ignored()
    sees_rlimit = open_files_limit() == limit - 1
    report("fork", f"child chdir -> parent still in {os.getcwd()} ({'shared' if sees_cwd else 'not shared'}); "
           f"child's fd {fd} {'open' if sees_fd else 'not open'} in parent; child set SIGUSR2 to ignore -> "
           f"{'parent ignores it too' if sees_signal else 'parent does not'}; child lowered RLIMIT_NOFILE -> "
           f"parent's is {open_files_limit()}",
           child=child, checks=[
               check("fs", "chdir() in the new task", "new task", "parent", sees_cwd),
               check("files", "open() in the new task", "new task", "parent", sees_fd),
               check("sighand", "SIGUSR2 -> ignore in the new task", "new task", "parent", sees_signal),
               check("signal", "setrlimit(RLIMIT_NOFILE) in the new task", "new task", "parent", sees_rlimit)])
    os.close(channel_read)
    os.close(channel_write)


def spawn_step() -> None:
    """posix_spawn: glibc clones with CLONE_VM|CLONE_VFORK, so the parent sleeps in the kernel
    until the child has exec'd: when posix_spawn returns, /proc shows the new program."""
    pid = os.posix_spawn("/bin/sleep", ["sleep", "0.2"], os.environ)
    try:
        running = os.path.basename(os.readlink(f"/proc/{pid}/exe"))
    except OSError:
        running = "?"
    _, status = os.waitpid(pid, 0)
    execed = ("the child was already running sleep: the parent waited for the exec (CLONE_VFORK)"
              if running == "sleep" else f"the child was running {running}: not exec'd yet")
    report("spawn", f"posix_spawn /bin/sleep: pid {pid}; when it returned {execed}; "
           f"exit {os.waitstatus_to_exitcode(status)}", child=pid, running_at_return=running)


def thread_ids() -> list[int]:
    return sorted(int(task.name) for task in Path("/proc/self/task").iterdir())


def setxid_step() -> None:
    """glibc's setuid() in a process with threads: the kernel changes the calling thread's
    credentials only, so glibc sends signal 33 (SIGSETXID) to every other thread and each makes
    the same call (nptl/nptl_setxid.c). The raw system call then changes the caller's alone."""
    uid = os.getuid()
    threads = thread_ids()
    os.setuid(uid)                       # the same uid: allowed unprivileged, and still a new cred
    raw = LIBC.syscall(SYS_SETUID, uid) if SYS_SETUID is not None else None
    report("setxid", f"setuid({uid}) through glibc with threads {threads}, then syscall(SYS_setuid, {uid}) "
           f"in thread {threading.get_native_id()} alone (returned {raw})", uid=uid, threads=threads,
           raw_tid=threading.get_native_id(), raw_ret=raw)


def nice_step(worker: Worker) -> None:
    """setpriority(PRIO_PROCESS, tid): on Linux a nice value is one task's, not the process's."""
    tid, main_tid = worker.ids["tid"], threading.get_native_id()
    before = {str(t): os.getpriority(os.PRIO_PROCESS, t) for t in (main_tid, tid)}
    os.setpriority(os.PRIO_PROCESS, tid, before[str(tid)] + 5)
    after = {str(t): os.getpriority(os.PRIO_PROCESS, t) for t in (main_tid, tid)}
    report("nice", f"setpriority(PRIO_PROCESS, {tid}, {before[str(tid)] + 5}) on the worker thread: "
           f"nice before {before}, after {after}", set_tid=tid, nice_before=before, nice_after=after)


def join_step() -> None:
    """A thread made by pthread_create() whose body is libc's usleep(), joined by pthread_join():
    glibc waits on the thread's tid word with futex, the kernel clears it when the thread exits."""
    LIBC.pthread_create.argtypes = (ctypes.POINTER(ctypes.c_ulong), ctypes.c_void_p, ctypes.c_void_p,
                                    ctypes.c_void_p)
    thread = ctypes.c_ulong()
    body = ctypes.cast(LIBC.usleep, ctypes.c_void_p)
    started = time.monotonic()
    made = LIBC.pthread_create(ctypes.byref(thread), None, body, ctypes.c_void_p(JOIN_SLEEP_US))
    joined = LIBC.pthread_join(thread, None) if made == 0 else made
    waited_ms = round((time.monotonic() - started) * 1000)
    report("join", f"pthread_create(usleep, {JOIN_SLEEP_US}) then pthread_join: returned {joined} after "
           f"{waited_ms} ms", joined=joined == 0, waited_ms=waited_ms)


def user_tasks(uid: int) -> int:
    """The tasks (threads included) whose real uid is `uid`, as /proc lists them."""
    count = 0
    for status in Path("/proc").glob("[0-9]*/task/*/status"):
        try:
            uids = next(line for line in status.read_text().splitlines() if line.startswith("Uid:"))
        except (OSError, StopIteration):
            continue
        count += int(uids.split()[1]) == uid
    return count


def start_threads_until_refused(hold: threading.Event) -> tuple[list[threading.Thread], str | None]:
    started: list[threading.Thread] = []
    for _ in range(NPROC_TRIES):
        thread = threading.Thread(target=hold.wait, args=(10,))
        try:
            thread.start()
        except RuntimeError as refused:
            return started, str(refused)
        started.append(thread)
    return started, None


def limits_step() -> None:
    """RLIMIT_NPROC (a limit of this process: signal_struct) set just above the tasks its user
    has, then threads until the kernel refuses one: the limit counts threads, as tasks of that
    user. The soft limit is put back after (an unprivileged process may raise it to the hard one)."""
    threads_max = int(Path("/proc/sys/kernel/threads-max").read_text())
    pid_max = int(Path("/proc/sys/kernel/pid_max").read_text())
    counted = user_tasks(os.getuid())
    soft, hard = resource.getrlimit(resource.RLIMIT_NPROC)
    limit = counted + 1 if hard == resource.RLIM_INFINITY else min(counted + 1, hard)
    resource.setrlimit(resource.RLIMIT_NPROC, (limit, hard))
    hold = threading.Event()
    try:
        started, refused = start_threads_until_refused(hold)
    finally:
        resource.setrlimit(resource.RLIMIT_NPROC, (soft, hard))
    hold.set()
    for thread in started:
        thread.join()
    report("limits", f"RLIMIT_NPROC {limit} with {counted} tasks of uid {os.getuid()} in /proc: "
           f"{len(started)} thread(s) started, then {refused or 'none refused'}; threads-max {threads_max}, "
           f"pid_max {pid_max}", nproc_limit=limit, user_tasks=counted, threads_started=len(started),
           refused=refused is not None, threads_max=threads_max, pid_max=pid_max)


def main() -> int:
    Path("/proc/self/comm").write_text("fork-vs-thread")
    os.chdir("/")
    limit = open_files_limit()
    # SIGUSR1 is blocked in the main thread from here on, and the worker thread unblocks it
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1})
    with tempfile.TemporaryDirectory(prefix="syspath-") as made:
        workdir = os.path.realpath(made)
        worker = Worker(workdir)
        pause("main", "pthread_create: a thread, which then chdir()s, open()s, ignores SIGUSR2, lowers a limit")
        thread_step(worker, limit)
        pause("main", "kill(getpid(), SIGUSR1) while the main thread blocks SIGUSR1")
        signal_to_the_process(worker)
        pause("main", "clone() as LinuxThreads did: CLONE_VM|CLONE_FS|CLONE_FILES|CLONE_SIGHAND, no CLONE_THREAD")
        linuxthreads_step(workdir, limit)
        pause("main", "fork(): a child process, which does what the thread did, then SIGSTOPs and SIGCONTs us")
        fork_step(workdir, limit)
        pause("main", "posix_spawn(/bin/sleep): clone with CLONE_VM|CLONE_VFORK")
        spawn_step()
        pause("main", "setuid() with two threads: glibc's signal 33, then the raw syscall in one thread")
        setxid_step()
        pause("main", "setpriority() on the worker thread's tid, read back per thread")
        nice_step(worker)
        pause("main", "pthread_create + pthread_join: the join waits on the thread's tid word (futex)")
        join_step()
        pause("main", "under a low RLIMIT_NPROC, threads until the kernel refuses one")
        limits_step()
        worker.release.set()
        worker.thread.join()
    return 0


if __name__ == "__main__":
    sys.exit(main())
