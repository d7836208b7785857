"""The timeline: one row per kernel event, in call order (a function that returned is
placed at its entry time), indented by how many hooked functions it ran inside."""
from __future__ import annotations

from collections.abc import Iterable, Iterator

from rich import box
from rich.console import Console, ConsoleOptions, RenderableType, RenderResult
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

from tracer.events import Event, in_call_order, refcount_text
from tracer.stories import lesson_views


def step_style(step: str) -> str:
    """The style a lesson gives its step in the timeline ("" for none)."""
    return next((style for view in lesson_views() if (style := view.step_style(step))), "")


def short_hook(hook: str) -> str:
    """tracepoint:syscalls:sys_exit_mmap -> tp:sys_exit_mmap"""
    kind, _, rest = hook.partition(":")
    name = rest.rsplit(":", 1)[-1]
    short = {"tracepoint": "tp", "raw_tracepoint": "raw_tp"}.get(kind, kind)
    return f"{short}:{name}" if rest else hook


def detail_text(event: Event) -> str:
    """The event's detail in one line: as its lesson words it, else its fields."""
    for view in lesson_views():
        told = view.event_text(event)
        if told is not None:
            return told
    return " ".join(f"{k}={field_text(k, v)}" for k, v in event.detail.items() if k != "depth")


def field_text(name: str, value: object) -> str:
    """A detail field as shown: frame numbers in hex wherever they appear, as pagemap tools and
    the kernel print them (one form per quantity on every screen)."""
    if name.endswith("pfn") and isinstance(value, int) and not isinstance(value, bool):
        return f"{value:#x}"
    return str(value)


def relative_ms(event: Event, started_ns: int) -> str:
    return f"{(event.ts_ns - started_ns) / 1e6:8.3f}"


def nested_step(event: Event) -> str:
    return "  " * int(event.detail.get("depth", 0)) + event.step


def timeline_row(event: Event, started_ns: int) -> list[str]:
    return [relative_ms(event, started_ns), f"{event.comm}[{event.pid}]", nested_step(event),
            short_hook(event.hook), "" if event.fd is None else str(event.fd), event.file or "",
            "" if event.inode is None else str(event.inode),
            refcount_text(event), detail_text(event)]


TIMELINE_COLUMNS = ("ms", "process", "step", "hook", "fd", "struct file", "inode", "ref", "detail")
TABLE_COLUMNS = ("ms", "process", "step", "fd", "struct file", "inode", "ref", "detail")
DETAIL_MIN = 40             # below this the detail column would split addresses: stack instead
DETAIL_INDENT = 11


def process_label(event: Event, name: str | None = None) -> str:
    """comm [pid]: a space, so that a narrow column wraps between the name and the number.
    `name`: the one the process came to have, if not the event's own comm."""
    return f"{name or event.comm} [{event.pid}]"


def table_row(event: Event, started_ns: int) -> list[str]:
    return [relative_ms(event, started_ns), process_label(event), nested_step(event),
            "" if event.fd is None else str(event.fd), event.file or "",
            "" if event.inode is None else str(event.inode),
            refcount_text(event), detail_text(event)]


class Timeline:
    """The events in call order, as a table where the terminal is wide enough for every column
    and the detail, else as two lines per event (its fields, then its detail under them).
    Either way no address, pid or number is ever cut: cells wrap at spaces, never crop."""

    def __init__(self, events: Iterable[Event], started_ns: int, highlight: set[str] | None = None,
                 title: str = "kernel events", total: int | None = None) -> None:
        self.rows = in_call_order(list(events))
        self.started_ns = started_ns
        self.highlight = highlight or set()
        self.title = title
        hidden = max(0, (len(self.rows) if total is None else total) - len(self.rows))
        self.caption = (f"{hidden} later events not shown: --no-live or replay --no-live lists them all"
                        if hidden else None)

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        cells = [table_row(event, self.started_ns) for event in self.rows]
        fixed = sum(max([len(column)] + [len(row[i]) for row in cells]) + 2
                    for i, column in enumerate(TABLE_COLUMNS[:-1]))
        if options.max_width - fixed >= DETAIL_MIN:
            yield self.table(cells)
        else:
            yield from self.stacked(cells)

    def _file(self, text: str) -> Text:
        return Text(text, style="bold reverse" if text and text in self.highlight else "")

    def table(self, cells: list[list[str]]) -> Table:
        table = Table(title=self.title, expand=True, title_justify="left", caption=self.caption,
                      box=box.SIMPLE_HEAD, pad_edge=False)
        for column in TABLE_COLUMNS:
            table.add_column(column, no_wrap=column not in ("detail", "process"), overflow="fold",
                             justify="right" if column in ("ms", "fd", "ref", "inode") else "left",
                             ratio=1 if column == "detail" else None)
        for event, row in zip(self.rows, cells, strict=True):
            table.add_row(row[0], row[1], Text(row[2], style=step_style(event.step)), row[3],
                          self._file(row[4]), *row[5:])
        return table

    def stacked(self, cells: list[list[str]]) -> Iterator[RenderableType]:
        yield Text(self.title, style="bold")
        widths = [min(24, max([len(c)] + [len(row[i]) for row in cells])) for i, c in enumerate(TABLE_COLUMNS[:4])]
        heads = " ".join(c.ljust(w) for c, w in zip(TABLE_COLUMNS[:4], widths, strict=True))
        yield Text(heads + " ref  struct file", style="dim")
        for event, row in zip(self.rows, cells, strict=True):
            line = Text(f"{row[0]:>{widths[0]}} {row[1]:<{widths[1]}} ")
            line.append(f"{row[2]:<{widths[2]}}", style=step_style(event.step))
            line.append(f" {row[3]:>{widths[3]}} {row[6]:>3}  ")
            line.append_text(self._file(row[4]))
            yield line
            detail = " ".join(part for part in (f"inode {row[5]}" if row[5] else "", row[7]) if part)
            if detail:
                yield Padding(Text(detail, style="dim"), (0, 0, 0, DETAIL_INDENT))
        if self.caption:
            yield Text(self.caption, style="dim italic")


def timeline_table(events: Iterable[Event], started_ns: int, highlight: set[str] | None = None,
                   title: str = "kernel events", total: int | None = None) -> Timeline:
    return Timeline(events, started_ns, highlight, title, total)
