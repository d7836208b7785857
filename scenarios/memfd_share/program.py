"""memfd-share: one memory file, two processes.

The sender creates a memfd, maps it MAP_SHARED, writes a text into the mapping
and passes the fd to the receiver over a Unix stream socket with SCM_RIGHTS.
The receiver maps the fd it got PROT_READ, MAP_PRIVATE (as the article does) and
reads the text back. Then the sender writes again and the receiver sees it (a
private mapping reads the file's page-cache page until it writes); then the
receiver adds PROT_WRITE and writes: copy on write gives it a page of its own,
and the sender does not see that write. Two separate
processes, each with its own comm; the socket lives in a private directory.

Run by syspath (`syspath run memfd-share`); by hand: python3 memfd_share.py
Each process reports on stdout as JSON lines: {"role", "say", ...facts}.
"""
from __future__ import annotations

import ctypes
import mmap
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))     # stepping.py, shared by the lessons
from stepping import pause, report, step_fds

SIZE = 4096
LIBC = ctypes.CDLL(None, use_errno=True)
LIBC.mmap.restype = ctypes.c_void_p
LIBC.mmap.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long)
LIBC.mprotect.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)
MEMFD_NAME = "syspath-demo"
TEXT = "hello from the sender: one struct file, two processes"
SECOND_TEXT = "the sender wrote again: the receiver's private mapping sees it"
RECEIVER_TEXT = "the receiver's own copy"
PAGE_LOOK_S = 0.1            # five of syspath's polls


def set_comm(name: str) -> None:
    Path("/proc/self/comm").write_text(name)


def sender(socket_path: str) -> int:
    set_comm("sender")
    pause("sender", "memfd_create(\"syspath-demo\"): a memory-only file and an fd for it")
    fd = os.memfd_create(MEMFD_NAME, os.MFD_CLOEXEC)
    os.ftruncate(fd, SIZE)
    pause("sender", f"mmap(fd {fd}, MAP_SHARED) and write a text into the mapping")
    address = map_file(fd, mmap.PROT_READ | mmap.PROT_WRITE, mmap.MAP_SHARED)
    write_text(address, TEXT)
    let_pages_be_seen()
    report("sender", f"uid {os.getuid()}: memfd fd={fd}, mapped at {address:#x}, wrote {len(TEXT)} bytes",
           fd=fd, address=hex(address), text=TEXT, pid=os.getpid(), uid=os.getuid())
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as channel:
        channel.connect(socket_path)
        pause("sender", f"sendmsg() with fd {fd} in an SCM_RIGHTS control message")
        socket.send_fds(channel, [b"memfd"], [fd])
        report("sender", f"sent fd {fd} with SCM_RIGHTS", fd=fd)
        channel.recv(1)          # the receiver has mapped the file and read the text
        pause("sender", "write again into the shared mapping, after the receiver mapped it")
        write_text(address, SECOND_TEXT)
        report("sender", f"wrote again at {address:#x}: {SECOND_TEXT!r}", address=hex(address), text=SECOND_TEXT)
        channel.send(b"w")
        channel.recv(1)          # the receiver wrote into its private copy
        seen = read_text(address, len(SECOND_TEXT))
        kept = "still reads its own text" if seen == SECOND_TEXT else "reads something else"
        report("sender", f"after the receiver's private write, the sender {kept}: {seen!r}",
               cow_isolated=seen == SECOND_TEXT, text=seen)
        channel.send(b"k")       # keep the mapping alive until the receiver is done
    unmap(address)
    os.close(fd)
    return 0 if seen == SECOND_TEXT else 1


def receiver(listen_fd: int) -> int:
    set_comm("receiver")
    with socket.socket(fileno=listen_fd) as listener:
        channel, _ = listener.accept()
        with channel:
            return receive_and_read(channel)


def receive_and_read(channel: socket.socket) -> int:
    _, fds, _, _ = socket.recv_fds(channel, 16, 1)
    if not fds:
        report("receiver", "no fd arrived", error=True)
        return 1
    fd = fds[0]
    pause("receiver", f"mmap(fd {fd}, PROT_READ, MAP_PRIVATE) in the receiver, as the article does, and read")
    address = map_file(fd, mmap.PROT_READ, mmap.MAP_PRIVATE)
    text = read_text(address, len(TEXT))
    let_pages_be_seen()
    report("receiver", f"uid {os.getuid()}: received fd={fd}, mapped at {address:#x}, read: {text!r}",
           fd=fd, address=hex(address), text=text, pid=os.getpid(), uid=os.getuid())
    channel.send(b"m")
    channel.recv(1)              # the sender wrote again
    again = read_text(address, len(SECOND_TEXT))
    sees = again == SECOND_TEXT
    report("receiver", f"the private mapping reads the sender's new text: {again!r}" if sees
           else f"the private mapping does not read the sender's new text: {again!r}",
           sees_sender_write=sees, text=again)
    pause("receiver", "mprotect(PROT_READ|PROT_WRITE) and write into the private mapping: copy on write")
    if LIBC.mprotect(ctypes.c_void_p(address), SIZE, mmap.PROT_READ | mmap.PROT_WRITE) != 0:
        raise OSError(ctypes.get_errno(), "mprotect failed")
    write_text(address, RECEIVER_TEXT)
    let_pages_be_seen()
    report("receiver", f"wrote {RECEIVER_TEXT!r} into its private page at {address:#x}",
           address=hex(address), text=RECEIVER_TEXT)
    channel.send(b"p")
    channel.recv(1)
    unmap(address)
    os.close(fd)
    return 0 if (text, again) == (TEXT, SECOND_TEXT) else 1


def let_pages_be_seen() -> None:
    """Hold still after touching the mapping: syspath reads the page frame behind it from
    /proc/PID/pagemap on its next poll (tracer/pages.py), while the page is still there."""
    time.sleep(PAGE_LOOK_S)


def map_file(fd: int, prot: int, flags: int) -> int:
    """mmap(NULL, SIZE, prot, flags, fd, 0) straight from libc: Python's mmap
    module would dup() the fd first and add a reference of its own to the file."""
    address = LIBC.mmap(None, SIZE, prot, flags, fd, 0)
    if address in (None, ctypes.c_void_p(-1).value):
        raise OSError(ctypes.get_errno(), "mmap failed")
    return int(address)


def write_text(address: int, text: str) -> None:
    data = text.encode()
    ctypes.memmove(address, data + b"\0", len(data) + 1)


def read_text(address: int, length: int) -> str:
    return ctypes.string_at(address, length).decode(errors="replace")


def unmap(address: int) -> None:
    LIBC.munmap(ctypes.c_void_p(address), SIZE)


def run_pair() -> int:
    """Start receiver and sender as two processes, connected by a private socket."""
    set_comm("memfd-share")
    with tempfile.TemporaryDirectory(prefix="syspath-") as private_dir:
        socket_path = os.path.join(private_dir, "channel.sock")
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(socket_path)
        listener.listen(1)
        me = [sys.executable, __file__]
        receiving = subprocess.Popen([*me, "receiver", str(listener.fileno())],
                                     pass_fds=[listener.fileno(), *step_fds()])
        listener.close()
        sending = subprocess.Popen([*me, "sender", socket_path], pass_fds=step_fds())
        codes = (sending.wait(), receiving.wait())
    return max(codes)


def main(argv: list[str]) -> int:
    if argv[:1] == ["sender"]:
        return sender(argv[1])
    if argv[:1] == ["receiver"]:
        return receiver(int(argv[1]))
    return run_pair()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
