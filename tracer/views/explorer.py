"""The explorer: a Textual screen for run, trace and replay on a terminal.

The session (or the replay) runs in a worker thread and tells a Feed; the app reads the
Feed every REFRESH_S. The timeline is a list that follows new events while its cursor is
on the last row; filters (process, step, file) and a search narrow it; the selected
event's fields, path and narration are shown under it. In step mode the pause is a key.
Program text is untrusted: every cell and pane is a rich Text, never parsed as markup.
"""
from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import ClassVar, TypeVar

from rich.console import Group, RenderableType
from rich.text import Text
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical, VerticalScroll
from textual.css.query import NoMatches
from textual.widgets import Footer, Input, Static, TabbedContent, TabPane

from tracer.errors import Interrupted
from tracer.events import Event, in_call_order, refcount_text
from tracer.views.details import details
from tracer.views.eventlist import EventList
from tracer.views.feed import WINDOW, Feed
from tracer.views.hooks import kernel_line, session_title
from tracer.views.live import essentials
from tracer.views.narration import narration_panel
from tracer.views.summary import hooks_table
from tracer.views.timeline import detail_text, process_label, relative_ms, step_style

REFRESH_S = 0.1
COLUMNS = ("ms", "process", "step", "fd", "struct file", "ref", "detail")


@dataclass(frozen=True)
class Filters:
    pid: int | None = None
    step: str | None = None
    file: str | None = None
    text: str = ""
    folded: bool = False        # show the rows the lessons fold (a loader's mappings)

    def matches(self, event: Event, started_ns: int) -> bool:
        if self.pid is not None and event.pid != self.pid:
            return False
        if self.step is not None and event.step != self.step:
            return False
        if self.file is not None and event.file != self.file:
            return False
        return not self.text or self.text.lower() in " ".join(row_cells(event, started_ns)).lower()

    def said(self) -> str:
        parts = [f"pid {self.pid}" if self.pid is not None else "", f"step {self.step}" if self.step else "",
                 f"file {self.file}" if self.file else "", f"search {self.text!r}" if self.text else "",
                 "folded rows too" if self.folded else ""]
        return ", ".join(part for part in parts if part)


def row_cells(event: Event, started_ns: int, name: str | None = None) -> list[str]:
    return [relative_ms(event, started_ns).strip(), process_label(event, name), event.step,
            "" if event.fd is None else str(event.fd), event.file or "",
            refcount_text(event), detail_text(event)]


def details_text(event: Event, feed: Feed) -> Text:
    told = details(event, feed.findings.header, feed.findings.name_of(event.pid, event.comm))
    body = Text()
    for name, value in told.fields:
        body.append(f"{name:>12}  ", style="dim")
        body.append(f"{value}\n", style="bold" if name == "struct file" else "")
    if told.path:
        body.append("\npath" + (f" (caught at {told.path_from})" if told.path_from else "") + ":\n", style="bold")
        for depth, frame in enumerate(reversed(told.path)):
            body.append(f"  {'  ' * depth}{frame}\n")
    if told.why:
        body.append(f"\n{told.where}\n", style="dim")
        body.append(told.why + "\n")
    return body


class Explorer(App[None]):
    TITLE = "syspath"
    CSS = """
    #top { height: auto; background: $panel; padding: 0 1; }
    TabbedContent { height: 1fr; }
    #status { height: auto; background: $boost; padding: 0 1; }
    #search { display: none; height: 3; }
    #events { height: 1fr; }
    #details { height: 40%; border-top: solid $secondary; padding: 0 1; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("space", "go_on", "next step"),
        Binding("slash", "search", "search"),
        Binding("p", "only('pid')", "this process"),
        Binding("s", "only('step')", "this step"),
        Binding("f", "only('file')", "this file's life"),
        Binding("c", "clear", "clear filters"),
        Binding("l", "folded", "folded rows"),
        Binding("o", "tab('objects')", "objects"),
        Binding("e", "tab('timeline')", "events"),
        Binding("k", "tab('kernel')", "hooks"),
        Binding("end", "follow", "follow", show=False),
        Binding("q", "quit", "quit"),
        Binding("ctrl+c", "quit", "quit", show=False, priority=True),
    ]

    def __init__(self, feed: Feed, live: bool) -> None:
        super().__init__()
        self.feed = feed
        self.live = live
        self.filters = Filters()
        self.seen = 0
        self.shown_objects = -1
        self.highlighted: set[str] = set()
        self.told_done = False

    def compose(self) -> ComposeResult:
        yield Static(id="top")
        with TabbedContent(initial="timeline"):
            with TabPane("events", id="timeline"), Vertical():
                yield Input(placeholder="search (Enter), Esc: back", id="search")
                yield EventList(COLUMNS, self.cells, self.feed.window.maxlen or WINDOW, id="events")
                with VerticalScroll(id="details"):
                    yield Static(Text("select an event"), id="detail")
            with TabPane("objects", id="objects"), VerticalScroll(id="objects-view"):
                yield Static(id="essentials")
            with TabPane("hooks & steps", id="kernel"), VerticalScroll(id="kernel-view"):
                yield Static(id="hooks")
        yield Static(id="status")
        yield Footer()

    def on_mount(self) -> None:
        self.refresh_from_feed()
        self.set_interval(REFRESH_S, self.refresh_from_feed)
        self.table.focus()

    @property
    def table(self) -> EventList:
        return self.query_one("#events", EventList)

    # reading the feed
    @property
    def started_ns(self) -> int:
        return self.feed.findings.started_ns

    def refresh_from_feed(self) -> None:
        try:
            self.read_feed()
        except NoMatches:           # the timer fired while the app was being torn down
            pass

    def read_feed(self) -> None:
        if self.feed.failed is not None:
            self.exit()
            return
        fresh, missed = self.feed.since(self.seen)
        if missed:
            self.rebuild()
        elif fresh:
            self.seen = fresh[-1][0]
            self.add_rows([event for _, event in fresh])
        self.show_top()
        self.show_status()
        if fresh or missed or self.shown_objects < 0:
            self.show_findings()
        if self.feed.done and not self.told_done:
            self.told_done = True
            self.show_findings()
            if self.feed.findings.has_findings():
                self.action_tab("objects")          # the run is over: what it proved, first

    def add_rows(self, events: list[Event]) -> None:
        if not self.filters.folded:
            events = [event for event in events if not self.feed.findings.folds(event)]
        if replace(self.filters, folded=False) != Filters():
            events = [event for event in events if self.filters.matches(event, self.started_ns)]
        self.table.add(events)

    def cells(self, event: Event) -> list[Text]:
        values = row_cells(event, self.started_ns, self.feed.findings.name_of(event.pid, event.comm))
        shared = "bold" if event.file in self.highlighted else ""
        styles = ["", "", step_style(event.step), "", shared, "", "dim"]
        return [Text(value, style=style) for value, style in zip(values, styles, strict=True)]


    def rebuild(self) -> None:
        """The rows again, from the window, in call order, through the filters."""
        table = self.table
        table.clear()
        window = self.feed.snapshot()
        self.seen = self.feed.count
        self.add_rows(in_call_order(window))
        table.move_cursor(0 if self.filters != Filters() else table.row_count - 1)

    def show_top(self) -> None:
        findings = self.feed.findings
        header = findings.header
        top = Text(session_title(header) if header else "syspath: loading probes...", style="bold")
        if header:
            top.append(f"\n{kernel_line(header)}", style="dim")
        dropped = self.feed.count - len(self.feed.window)
        line = f"\n{findings.events} events"
        if dropped:
            line += f" ({dropped} oldest not kept here; the recording has them)"
        if self.filters != Filters():
            line += f" · showing {self.filters.said()} ({self.table.row_count} rows) · c clears"
        folded = findings.timeline.folded
        if folded and not self.filters.folded:
            line += f" · {folded} folded (l shows)"
        top.append(line)
        self.query_one("#top", Static).update(top)

    def show_status(self) -> None:
        pause, done = self.feed.pause, self.feed.done
        if pause:
            text = Text(f"next, in the {pause.role}: {pause.next_step}  ({pause.how})",
                        style="bold yellow")
        elif done:
            lost, code = done
            text = Text(f"done: exit {code}, {self.feed.findings.events} events, {lost} lost. q quits",
                        style="bold red" if lost else "bold green")
        elif self.feed.waiting:
            text = Text(f"the program has ended; decoding the {self.feed.waiting:,} events it left...", style="bold")
        else:
            text = Text("tracing..." if self.live else "replaying...", style="bold")
        self.query_one("#status", Static).update(text)

    def show_findings(self) -> None:
        with self.feed.lock:
            self.highlighted = self.feed.findings.highlighted_files()
            screen: RenderableType = essentials(self.feed.findings)
            hooks = Group(hooks_table(self.feed.findings.header),
                          narration_panel(self.feed.findings.first_events_by_step(), self.feed.findings.header))
        self.shown_objects = self.feed.count
        self.query_one("#essentials", Static).update(screen)
        self.query_one("#hooks", Static).update(hooks)

    # selection
    def on_event_list_highlighted(self, message: EventList.Highlighted) -> None:
        details = self.query("#detail")
        if message.event is not None and details:       # none while the app is torn down
            details.first(Static).update(details_text(message.event, self.feed))

    def selected(self) -> Event | None:
        return self.table.selected

    # actions
    def set_filters(self, filters: Filters) -> None:
        self.filters = filters
        self.rebuild()
        self.show_top()

    def action_only(self, what: str) -> None:
        event = self.selected()
        if event is None:
            return
        pick: dict[str, Callable[[], Filters]] = {
            "pid": lambda: replace(self.filters, pid=None if self.filters.pid == event.pid else event.pid),
            "step": lambda: replace(self.filters, step=None if self.filters.step else event.step),
            "file": lambda: Filters() if self.filters.file else Filters(file=event.file),   # its whole life
        }
        self.set_filters(pick[what]())

    def action_clear(self) -> None:
        self.set_filters(Filters())

    def action_folded(self) -> None:
        """The rows the lessons fold (a loader's mappings), shown or hidden again."""
        self.set_filters(replace(self.filters, folded=not self.filters.folded))

    def action_search(self) -> None:
        search = self.query_one("#search", Input)
        search.display = True
        search.focus()

    def on_input_submitted(self, message: Input.Submitted) -> None:
        message.input.display = False
        self.set_filters(replace(self.filters, text=message.value.strip()))
        self.table.focus()

    def on_key(self, key: object) -> None:
        search = self.query_one("#search", Input)
        if getattr(key, "key", "") == "escape" and search.has_focus:
            search.display = False
            self.table.focus()

    def action_tab(self, tab: str) -> None:
        # focus follows the tab: a focused widget in another pane would bring its pane back
        self.query_one(TabbedContent).active = tab
        self.query_one("#events" if tab == "timeline" else f"#{tab}-view").focus()

    def action_follow(self) -> None:
        self.table.action_jump(-1)

    def action_go_on(self) -> None:
        self.feed.release()


Result = TypeVar("Result")
SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def run_explorer(feed: Feed, work: Callable[[], Result], live: bool) -> Result:
    """`work` (the session, or the replay) in a worker thread, the explorer in this one.
    Quitting, Ctrl-C or a signal stops the work the way Ctrl-C does (probes detached,
    recording ended), then the error or the signal is raised here, as without the explorer."""
    outcome: dict[str, object] = {}

    def worker() -> None:
        try:
            outcome["result"] = work()
        except BaseException as error:        # handed to the main thread below
            feed.failed = error

    app = Explorer(feed, live)
    arrived: list[int] = []

    def on_signal(signum: int, _frame: object) -> None:
        arrived.append(signum)
        feed.stop(signum)
        app.exit()

    previous = {signum: signal.signal(signum, on_signal) for signum in SIGNALS}
    thread = threading.Thread(target=worker, name="syspath-session", daemon=True)
    thread.start()
    try:
        app.run()
    finally:
        if thread.is_alive():
            feed.stop(arrived[0] if arrived else signal.SIGINT)
        thread.join()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    if feed.failed is not None:
        raise feed.failed
    if arrived:
        raise Interrupted(arrived[0])
    return outcome["result"]  # type: ignore[return-value]
