"""fork-vs-thread: what a new task shares with its parent, and what follows.

1. a thread (pthread_create: CLONE_VM|CLONE_FS|CLONE_FILES|CLONE_SIGHAND|CLONE_THREAD...)
   chdir()s, open()s a file and sets SIGUSR2 to be ignored: the main thread sees all
   three (one fs_struct, one files_struct, one sighand_struct);
2. a fork()ed child does the same: the parent sees none of it (copies);
3. posix_spawn (glibc: clone with CLONE_VM|CLONE_VFORK) starts /bin/true, for contrast.
Each step reports on stdout as a JSON line {"role", "say", ...}.
"""
from __future__ import annotations

import ctypes
import os
import signal
import sys
import tempfile
import threading
from pathlib import Path

from stepping import pause, report


def fd_is_open(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True


LIBC = ctypes.CDLL(None, use_errno=True)
LIBC.signal.restype = ctypes.c_void_p
LIBC.signal.argtypes = (ctypes.c_int, ctypes.c_void_p)
SIG_DFL, SIG_IGN = 0, 1


def ignore_sigusr2() -> None:
    """libc signal(): Python's signal module only lets the main thread change a disposition."""
    LIBC.signal(signal.SIGUSR2, SIG_IGN)


def sigusr2_ignored() -> bool:
    """The kernel's view (sighand_struct), not Python's: SigIgn in /proc/self/status."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("SigIgn:"):
            return bool(int(line.split()[1], 16) >> (signal.SIGUSR2 - 1) & 1)
    return False


def thread_step(workdir: str) -> None:
    opened: list[int] = []
    tids: list[int] = []

    def body() -> None:
        tids.append(threading.get_native_id())
        os.chdir(workdir)
        opened.append(os.open("/dev/null", os.O_RDONLY))
        ignore_sigusr2()

    worker = threading.Thread(target=body, name="worker")
    worker.start()
    worker.join()
    sees_cwd = os.getcwd() == workdir
    sees_fd = fd_is_open(opened[0])
    sees_signal = sigusr2_ignored()
    report("thread", f"thread chdir -> main sees cwd {os.getcwd()} ({'shared' if sees_cwd else 'not shared'}); "
           f"thread's fd {opened[0]} {'open' if sees_fd else 'closed'} in main; thread set SIGUSR2 to "
           f"ignore -> {'main ignores it too' if sees_signal else 'main does not'}",
           cwd_shared=sees_cwd, fd_shared=sees_fd, signal_shared=sees_signal, fd=opened[0], child=tids[0])
    os.close(opened[0])
    os.chdir("/")
    LIBC.signal(signal.SIGUSR2, SIG_DFL)


def fork_step(workdir: str) -> None:
    channel_read, channel_write = os.pipe()
    child = os.fork()
    if child == 0:
        os.chdir(workdir)
        ignore_sigusr2()
        fd = os.open("/dev/null", os.O_RDONLY)
        os.write(channel_write, str(fd).encode())
        os._exit(0)
    os.waitpid(child, 0)
    fd = int(os.read(channel_read, 16))
    sees_cwd = os.getcwd() == workdir
    sees_fd = fd_is_open(fd) and fd not in (channel_read, channel_write)
    sees_signal = sigusr2_ignored()
    report("fork", f"child chdir -> parent still in {os.getcwd()} ({'shared' if sees_cwd else 'not shared'}); "
           f"child's fd {fd} {'open' if sees_fd else 'not open'} in parent; child set SIGUSR2 to ignore -> "
           f"{'parent ignores it too' if sees_signal else 'parent does not'}",
           cwd_shared=sees_cwd, fd_shared=sees_fd, signal_shared=sees_signal, child=child)
    os.close(channel_read)
    os.close(channel_write)


def spawn_step() -> None:
    pid = os.posix_spawn("/bin/true", ["true"], os.environ)
    _, status = os.waitpid(pid, 0)
    report("spawn", f"posix_spawn /bin/true: pid {pid}, exit {os.waitstatus_to_exitcode(status)}", child=pid)


def main() -> int:
    Path("/proc/self/comm").write_text("fork-vs-thread")
    os.chdir("/")
    with tempfile.TemporaryDirectory(prefix="syspath-") as workdir:
        workdir = os.path.realpath(workdir)
        pause("main", "pthread_create: a thread, which then chdir()s, open()s and ignores SIGUSR2")
        thread_step(workdir)
        pause("main", "fork(): a child process, which then does the same")
        fork_step(workdir)
        pause("main", "posix_spawn(/bin/true): clone with CLONE_VM|CLONE_VFORK")
        spawn_step()
    return 0


if __name__ == "__main__":
    sys.exit(main())
