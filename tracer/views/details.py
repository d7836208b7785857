"""One event in full: its fields, the kernel path behind it (when the probes caught a
stack) and what the kernel did there (the narration). Shared by the explorer and the report."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tracer.events import Event, refcount_text
from tracer.views.narration import narrate, statuses
from tracer.views.timeline import detail_text, relative_ms


@dataclass(frozen=True)
class Details:
    fields: list[tuple[str, str]]
    path: list[str]                  # innermost frame first, as recorded
    path_from: str | None
    where: str
    why: str


def stack_of(event: Event) -> tuple[list[str], str | None]:
    """The kernel call chain recorded with the event (recording version 2), if any."""
    stack = getattr(event, "stack", None) or event.detail.get("stack") or []
    source = getattr(event, "stack_from", None) or event.detail.get("stack_from")
    return [str(frame) for frame in stack], (str(source) if source else None)


def details(event: Event, header: dict[str, Any], name: str | None = None) -> Details:
    """`name`: what the process came to call itself, said beside the comm the event carried."""
    later = f" (later {name})" if name and name != event.comm else ""
    fields = [("time", f"{relative_ms(event, int(header.get('started_ns', 0))).strip()} ms"),
              ("process", f"{event.comm}{later}  pid {event.pid}  tgid {event.tgid}"),
              ("step", event.step), ("hook", event.hook or "-")]
    shown = (("fd", event.fd), ("struct file", event.file), ("inode", event.inode),
             ("refcount", refcount_text(event) or None))
    fields += [(name, str(value)) for name, value in shown if value is not None]
    fields.append(("detail", detail_text(event)))
    path, path_from = stack_of(event)
    told = narrate(event.step, event.hook, statuses(header).get(event.step, "attached"))
    where, why = told if told else ("", "")
    return Details(fields, path, path_from, where, why)
