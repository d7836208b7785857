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


# Steps at which a struct file comes into existence (nested: memfd_create > shmem > alloc).
BIRTH_STEPS = ("memfd_create", "shmem_file_setup", "alloc_file_pseudo")


def file_lifetimes(events: Sequence[Event]) -> list[list[Event]]:
    """Events grouped by struct file object, in call order. A pointer names one object only
    from its birth until the slab hands the same address to the next file: a birth step
    seen a second time at an address starts a new lifetime (one pass, O(n))."""
    current: dict[str, list[Event]] = {}
    lifetimes: list[list[Event]] = []
    for event in in_call_order(events):
        if not event.file:
            continue
        life = current.get(event.file)
        reborn = event.step in BIRTH_STEPS and life is not None and any(e.step == event.step for e in life)
        if life is None or reborn or (life[-1].step == "fput"):
            life = current[event.file] = []
            lifetimes.append(life)
        life.append(event)
    return lifetimes


def _holder(life: Sequence[Event], event: Event) -> Holder:
    """One process's hold on the file: its fd (from fd_install when the hook that saw the
    file arrive could not tell) and the mapping it made."""
    fd = event.fd
    address = vma = None
    vm_flags: tuple[str, ...] = ()
    for other in (e for e in life if e.tgid == event.tgid):
        if fd is None and other.step == "fd_install":
            fd = other.fd
        if address is None and other.step == "do_mmap":
            address, vma = other.detail.get("address"), other.detail.get("vma")
            vm_flags = tuple(other.detail.get("vm_flags", ()))
    return Holder(event.comm, event.pid, event.tgid, fd, address, vm_flags, vma)


def shared_files(events: Sequence[Event]) -> list[SharedFile]:
    """Every memfd whose struct file was received by another process."""
    found: list[SharedFile] = []
    for life in file_lifetimes(events):
        created = next((e for e in life if e.step == "memfd_create"), None)
        if created is None:
            continue
        story = SharedFile(created.file or "", created.inode, _holder(life, created))
        for event in life:
            if event.step == "receive_fd" and event.tgid != created.tgid:
                story.receivers.append(_holder(life, event))
            if event.refcount is not None:
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


def _copied_by(copies: set[tuple[str, str | None]], name: str, child: str | None) -> str | None:
    step = COPY_STEP.get(name)
    return step if step and child and (step, child) in copies else None


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
    copies = {(e.step, e.detail.get("copy")) for e in events if e.step in COPY_STEP.values()}
    for event in (e for e in in_call_order(events) if e.step == "clone"):
        detail = event.detail
        rows = [StructureRow(name, detail.get("parent", {}).get(name), detail.get("child", {}).get(name),
                             bool(detail.get("shared", {}).get(name)), flag,
                             _copied_by(copies, name, detail.get("child", {}).get(name)))
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


def life_stories(events: Sequence[Event]) -> list[tuple[str, list[Chapter]]]:
    """Each memfd's struct file, from creation on: every event that touched the object."""
    stories = []
    for life in file_lifetimes(events):
        if not any(e.step in ("memfd_create", "shmem_file_setup") for e in life):
            continue
        mappers: set[int] = set()
        chapters = []
        for event in (e for e in life if e.step in CHAPTER):
            text = CHAPTER[event.step].format(fd=event.fd, address=event.detail.get("address"))
            if event.step == "do_mmap":
                text += " again, by another process" if mappers - {event.tgid} else ""
                mappers.add(event.tgid)
            chapters.append(Chapter(text, event))
        stories.append((life[0].file or "", chapters))
    return stories
