"""What the events prove: the conclusions the summary states.

Pure functions over events, so a live session and a replayed recording reach
the same conclusion.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

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
    vma: str | None = None


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


def _mapping(events: Sequence[Event], file: str, tgid: int) -> tuple[str | None, tuple[str, ...], str | None]:
    for event in events:
        if event.step == "do_mmap" and event.file == file and event.tgid == tgid:
            detail = event.detail
            return detail.get("address"), tuple(detail.get("vm_flags", ())), detail.get("vma")
    return None, (), None


def _installed_fd(events: Sequence[Event], file: str, tgid: int) -> int | None:
    """Where the file landed in a process's fd table, when the hook that saw it
    arrive could not tell (receive_fd observed through security_file_receive)."""
    return next((e.fd for e in events if e.step == "fd_install" and e.file == file and e.tgid == tgid), None)


def _holder(events: Sequence[Event], event: Event) -> Holder:
    address, vm_flags, vma = _mapping(events, event.file or "", event.tgid)
    fd = event.fd if event.fd is not None else _installed_fd(events, event.file or "", event.tgid)
    return Holder(event.comm, event.pid, event.tgid, fd, address, vm_flags, vma)


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


# kernel/fork.c copy_process: the flag that makes the child share each structure instead of a copy
SHARING_FLAG = {"mm": "CLONE_VM", "fs": "CLONE_FS", "files": "CLONE_FILES", "sighand": "CLONE_SIGHAND",
                "signal": "CLONE_THREAD"}
# the copy functions that fire when the flag is absent, where they are hooked
COPY_STEP = {"mm": "dup_mm", "files": "dup_fd"}
# what the scenario checked after each clone: report key -> (structure, what was done in the child)
CONSEQUENCES = {"cwd_shared": ("fs", "chdir()"), "fd_shared": ("files", "open()"),
                "signal_shared": ("sighand", "SIGUSR2 -> ignore")}


@dataclass(frozen=True)
class StructureRow:
    name: str
    parent: str | None
    child: str | None
    shared: bool
    flag: str
    copied_by: str | None = None      # "dup_fd" when that copy was seen


@dataclass
class NewTask:
    event: Event
    rows: list[StructureRow]
    consequences: list[str] = field(default_factory=list)

    @property
    def same_thread_group(self) -> bool:
        return self.event.detail.get("child_tgid") == self.event.tgid


def _copied_by(events: Sequence[Event], name: str, child: str | None) -> str | None:
    step = COPY_STEP.get(name)
    seen = any(e.step == step and e.detail.get("copy") == child for e in events) if step and child else False
    return step if seen else None


def _consequences(event: Event, reports: Sequence[dict[str, Any]]) -> list[str]:
    child = event.detail.get("child_tid")
    lines = []
    for report in (r for r in reports if r.get("child") == child):
        for key, (structure, action) in CONSEQUENCES.items():
            if key in report:
                seen = "the parent sees it" if report[key] else "the parent does not see it"
                lines.append(f"{action} in the new task: {seen} ({structure} "
                             f"{'shared' if report[key] else 'copied'})")
    return lines


def new_tasks(events: Sequence[Event], reports: Sequence[dict[str, Any]] = ()) -> list[NewTask]:
    """Each clone event, structure by structure, with what the scenario observed after it."""
    tasks = []
    for event in (e for e in in_call_order(events) if e.step == "clone"):
        detail = event.detail
        rows = [StructureRow(name, detail.get("parent", {}).get(name), detail.get("child", {}).get(name),
                             bool(detail.get("shared", {}).get(name)), flag,
                             _copied_by(events, name, detail.get("child", {}).get(name)))
                for name, flag in SHARING_FLAG.items()]
        tasks.append(NewTask(event, rows, _consequences(event, reports)))
    return tasks


# --follow-file: what each step means in the life of one struct file
CHAPTER = {"memfd_create": "created: memfd_create returned fd {fd}", "shmem_file_setup": "made by shmem_file_setup",
           "alloc_file_pseudo": "allocated by alloc_file_pseudo", "fd_install": "installed at fd {fd}",
           "do_mmap": "mapped at {address}", "scm_fp_copy": "sent: in flight in an SCM_RIGHTS message",
           "receive_fd": "received", "fput": "released: the last reference is gone"}


@dataclass(frozen=True)
class Chapter:
    text: str
    event: Event


def life_stories(events: Sequence[Event]) -> dict[str, list[Chapter]]:
    """Each memfd's struct file, from creation on: every event that touched the pointer."""
    ordered = in_call_order(events)
    born = [e.file for e in ordered if e.step in ("memfd_create", "shmem_file_setup") and e.file]
    stories: dict[str, list[Chapter]] = {}
    for file in dict.fromkeys(born):
        mappers: set[int] = set()
        chapters = []
        for event in (e for e in ordered if e.file == file and e.step in CHAPTER):
            text = CHAPTER[event.step].format(fd=event.fd, address=event.detail.get("address"))
            if event.step == "do_mmap":
                text += " again, by another process" if mappers - {event.tgid} else ""
                mappers.add(event.tgid)
            chapters.append(Chapter(text, event))
        stories[file] = chapters
    return stories
