"""The timeline: one row per kernel event, in call order (a function that returned is
placed at its entry time), indented by how many hooked functions it ran inside."""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from rich.table import Table
from rich.text import Text

from tracer.events import Event, in_call_order

STEP_STYLES = {"memfd_create": "bold green", "shmem_file_setup": "green", "do_mmap": "cyan",
               "unix_stream_sendmsg": "magenta", "scm_fp_copy": "bold magenta",
               "receive_fd": "bold yellow"}


def short_hook(hook: str) -> str:
    """tracepoint:syscalls:sys_exit_mmap -> tp:sys_exit_mmap"""
    kind, _, rest = hook.partition(":")
    name = rest.rsplit(":", 1)[-1]
    return f"{'tp' if kind == 'tracepoint' else kind}:{name}" if rest else hook


def detail_text(event: Event) -> str:
    detail: dict[str, Any] = event.detail
    if event.step == "memfd_create":
        return f"name={detail.get('name')!r} {'|'.join(detail.get('flags', [])) or ''}".strip()
    if event.step in ("scm_fp_copy", "receive_fd") and "count" in detail:
        return f"fd {detail.get('index', 0) + 1}/{detail.get('count')} sock={detail.get('sock')}"
    if event.step == "shmem_file_setup":
        return f"shmem inode, s_magic={detail.get('s_magic')}"
    if event.step == "do_mmap":
        text = f"addr={detail.get('address')} len={detail.get('length')} {'|'.join(detail.get('flags', []))}"
        if detail.get("vma"):
            text += f" vma={detail['vma']} {'|'.join(detail.get('vm_flags', []))}"
        return text
    if event.step == "unix_stream_sendmsg":
        return f"sock={detail.get('sock')} peer={detail.get('peer')} SCM_RIGHTS fds={detail.get('scm_rights')}"
    if event.step == "clone":
        return clone_text(detail)
    return " ".join(f"{k}={v}" for k, v in detail.items() if k != "depth")


def clone_text(detail: dict[str, Any]) -> str:
    shared = detail.get("shared", {})
    same = [name for name, yes in shared.items() if yes]
    copied = [name for name, yes in shared.items() if not yes]
    return (f"{detail.get('kind')} tid={detail.get('child_tid')} tgid={detail.get('child_tgid')}: "
            f"shares {','.join(same) or 'nothing'}; own copy of {','.join(copied) or 'nothing'}")


def relative_ms(event: Event, started_ns: int) -> str:
    return f"{(event.ts_ns - started_ns) / 1e6:8.3f}"


def nested_step(event: Event) -> str:
    return "  " * int(event.detail.get("depth", 0)) + event.step


def timeline_row(event: Event, started_ns: int) -> list[str]:
    return [relative_ms(event, started_ns), f"{event.comm}[{event.pid}]", nested_step(event),
            short_hook(event.hook), "" if event.fd is None else str(event.fd), event.file or "",
            "" if event.inode is None else str(event.inode),
            "" if event.refcount is None else str(event.refcount), detail_text(event)]


TIMELINE_COLUMNS = ("ms", "process", "step", "hook", "fd", "struct file", "inode", "ref", "detail")


def timeline_table(events: Iterable[Event], started_ns: int, highlight: set[str] | None = None,
                   title: str = "kernel events", total: int | None = None) -> Table:
    rows = in_call_order(list(events))
    hidden = max(0, (len(rows) if total is None else total) - len(rows))
    caption = f"{hidden} later events not shown: --no-live or replay --no-live lists them all" if hidden else None
    table = Table(title=title, expand=True, title_justify="left", caption=caption)
    for column in TIMELINE_COLUMNS:
        table.add_column(column, no_wrap=column != "detail", overflow="fold",
                         justify="right" if column in ("ms", "fd", "ref", "inode") else "left")
    for event in rows:
        row: list[str | Text] = list(timeline_row(event, started_ns))
        row[2] = Text(nested_step(event), style=STEP_STYLES.get(event.step, ""))
        if highlight and event.file in highlight:
            row[5] = Text(event.file or "", style="bold reverse")
        table.add_row(*row)
    return table
