"""What the events prove: the conclusions the summary states.

Pure functions over events, so a live session and a replayed recording reach
the same conclusion.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from tracer.events import Event, in_call_order


@dataclass(frozen=True)
class Holder:
    """One process's hold on the shared file: its fd and where it mapped it."""

    comm: str
    pid: int
    tgid: int
    fd: int | None
    address: str | None = None
    vm_flags: tuple[str, ...] = ()


@dataclass
class SharedFile:
    file: str
    inode: int | None
    creator: Holder
    receivers: list[Holder] = field(default_factory=list)
    refcounts: list[tuple[str, str, int]] = field(default_factory=list)   # (step, comm, count)

    @property
    def shared(self) -> bool:
        return any(r.tgid != self.creator.tgid for r in self.receivers)


def _mapping(events: Sequence[Event], file: str, tgid: int) -> tuple[str | None, tuple[str, ...]]:
    for event in events:
        if event.step == "do_mmap" and event.file == file and event.tgid == tgid:
            return event.detail.get("address"), tuple(event.detail.get("vm_flags", ()))
    return None, ()


def _installed_fd(events: Sequence[Event], file: str, tgid: int) -> int | None:
    """Where the file landed in a process's fd table, when the hook that saw it
    arrive could not tell (receive_fd observed through security_file_receive)."""
    return next((e.fd for e in events if e.step == "fd_install" and e.file == file and e.tgid == tgid), None)


def _holder(events: Sequence[Event], event: Event) -> Holder:
    address, vm_flags = _mapping(events, event.file or "", event.tgid)
    fd = event.fd if event.fd is not None else _installed_fd(events, event.file or "", event.tgid)
    return Holder(event.comm, event.pid, event.tgid, fd, address, vm_flags)


def shared_files(events: Sequence[Event]) -> list[SharedFile]:
    """Every memfd whose struct file was received by another process."""
    events = in_call_order(events)
    found: list[SharedFile] = []
    for created in (e for e in events if e.step == "memfd_create" and e.file):
        story = SharedFile(created.file or "", created.inode, _holder(events, created))
        for event in events:
            if event.file != created.file:
                continue
            if event.step == "receive_fd" and event.tgid != created.tgid:
                story.receivers.append(_holder(events, event))
            if event.refcount is not None and event.step != "unix_stream_sendmsg":
                story.refcounts.append((event.step, event.comm, event.refcount))
        if story.shared:
            found.append(story)
    return found
