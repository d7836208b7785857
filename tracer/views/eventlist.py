"""The explorer's list of events: a window of rows that costs the same at 10 or 300k events/s.

Textual's DataTable keeps a layout for every row: it measures each new row's cells, and
removing one row re-indexes all the others. A window of 10k rows scrolling under a busy
program then took the main thread for tens of seconds (1.5 s to drop 100 rows, 1.8 s to
measure 10k). This list keeps Events, not cells: adding one is a deque append, the oldest
fall off the front for free, and only the rows on screen are formatted (Textual's line
API, one Strip per screen line). Column widths grow with what has been shown, and never
shrink.
"""
from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from typing import ClassVar

from rich.cells import cell_len
from rich.style import Style
from rich.text import Text
from textual import events
from textual.binding import Binding, BindingType
from textual.geometry import Region, Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip

from tracer.events import Event

HEADER_LINES = 1
GAP = "  "
WIDEST = 28             # no column but the last grows past this; longer cells end in "…"


class EventList(ScrollView, can_focus=True):
    """Rows of events with a cursor; the cursor on the last row follows new events."""

    DEFAULT_CSS = """
    EventList {
        background: $surface;
        color: $foreground;
        & > .event-list--header { text-style: bold; background: $panel; color: $foreground; }
        & > .event-list--even-row { background: $surface-lighten-1 50%; }
        & > .event-list--cursor {
            background: $block-cursor-blurred-background;
            color: $block-cursor-blurred-foreground;
        }
        &:focus > .event-list--cursor {
            background: $block-cursor-background;
            color: $block-cursor-foreground;
            text-style: $block-cursor-text-style;
        }
    }
    """
    COMPONENT_CLASSES: ClassVar[set[str]] = {"event-list--header", "event-list--even-row", "event-list--cursor"}
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up", "move(-1)", show=False),
        Binding("down", "move(1)", show=False),
        Binding("pageup", "page(-1)", show=False),
        Binding("pagedown", "page(1)", show=False),
        Binding("home", "jump(0)", show=False),
        Binding("end", "jump(-1)", show=False),
        Binding("left", "scroll_left", show=False),
        Binding("right", "scroll_right", show=False),
    ]

    class Highlighted(Message):
        """The cursor is on another event (or on none: the list was emptied)."""

        def __init__(self, event: Event | None) -> None:
            super().__init__()
            self.event = event

    def __init__(self, columns: Iterable[str], cells: Callable[[Event], list[Text]], limit: int,
                 *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.columns = tuple(columns)
        self.cells = cells
        self.limit = limit
        self.rows: deque[Event] = deque(maxlen=limit)
        self.cursor = 0
        self.dropped = 0                         # rows that left the front: stripes stay on their rows
        self.widths = [cell_len(name) for name in self.columns]
        self._highlighted: Event | None = None
        self._on_screen: dict[int, list[Text]] = {}
        self._widest_line = 0

    # the rows
    @property
    def row_count(self) -> int:
        return len(self.rows)

    @property
    def following(self) -> bool:
        return self.cursor >= len(self.rows) - 1

    @property
    def rows_shown(self) -> int:
        """Lines for rows: the widget's, less the header and a horizontal scrollbar."""
        return max(1, self.scrollable_content_region.height - HEADER_LINES)

    @property
    def selected(self) -> Event | None:
        return self.rows[self.cursor] if self.rows else None

    def add(self, new: list[Event]) -> None:
        """New rows at the bottom; the oldest leave when the list is full. A cursor on the
        last row moves to the new last row, any other cursor stays on its event."""
        if not new:
            return
        following = self.following
        dropped = max(0, len(self.rows) + len(new) - self.limit)
        self.rows.extend(new)
        self.dropped += dropped
        self.cursor = len(self.rows) - 1 if following else max(0, self.cursor - dropped)
        self._resized(dropped)

    def clear(self) -> None:
        """No rows; the column widths stay, so that a filter does not move the columns."""
        self.rows.clear()
        self.cursor = 0
        self.dropped = 0
        self._resized(0)

    def move_cursor(self, row: int) -> None:
        if not self.rows:
            return
        self.cursor = min(max(0, row), len(self.rows) - 1)
        self._scroll_to_cursor()
        self._changed()

    def _resized(self, dropped: int) -> None:
        self.virtual_size = Size(self._widest_line, len(self.rows) + HEADER_LINES)
        if self.following:
            self._scroll_to_cursor()
        elif dropped:                           # the rows on screen stay where they were
            self._scroll(self.scroll_offset.y - dropped)
        self._changed()

    def _scroll_to_cursor(self) -> None:
        shown = self.rows_shown
        top = self.scroll_offset.y
        if self.cursor < top:
            self._scroll(self.cursor)
        elif self.cursor >= top + shown:
            self._scroll(self.cursor - shown + 1)

    def _scroll(self, y: int) -> None:
        # force: a list that just grew shows its scrollbar only at the next layout, and
        # until then Textual would refuse to scroll it
        self.scroll_to(y=max(0, y), animate=False, immediate=True, force=True)

    def _changed(self) -> None:
        self.refresh()
        if self.selected is not self._highlighted:
            self._highlighted = self.selected
            self.post_message(self.Highlighted(self._highlighted))

    # keys and mouse
    def action_move(self, by: int) -> None:
        self.move_cursor(self.cursor + by)

    def action_page(self, by: int) -> None:
        self.move_cursor(self.cursor + by * max(1, self.rows_shown - 1))

    def action_jump(self, row: int) -> None:
        self.move_cursor(row if row >= 0 else len(self.rows) - 1)

    def on_click(self, click: events.Click) -> None:
        where = click.get_content_offset(self)
        if where is not None and where.y >= HEADER_LINES:
            self.move_cursor(self.scroll_offset.y + where.y - HEADER_LINES)

    # drawing: only the rows on screen are formatted
    def on_resize(self) -> None:
        self._resized(0)

    def watch_show_horizontal_scrollbar(self) -> None:
        """The scrollbar takes a line from the rows: a cursor following the end would hide under it."""
        if self.following:
            self.call_after_refresh(self._scroll_to_cursor)

    def render_lines(self, crop: Region) -> list[Strip]:
        top = self.scroll_offset.y
        self._on_screen = {}
        for index in range(top, min(len(self.rows), top + self.rows_shown)):
            cells = self.cells(self.rows[index])
            self._on_screen[index] = cells
            for column, cell in enumerate(cells[:-1]):
                self.widths[column] = max(self.widths[column], min(WIDEST, cell_len(cell.plain)))
            line = 1 + sum(self.widths) + len(GAP) * (len(cells) - 1) + cell_len(cells[-1].plain)
            if line > self._widest_line:         # the last column can be reached with the right arrow
                self._widest_line = line
                self.virtual_size = Size(line, self.virtual_size.height)
        return super().render_lines(crop)

    def render_line(self, y: int) -> Strip:
        width = self.scrollable_content_region.width
        if y < HEADER_LINES:
            style = self.get_component_rich_style("event-list--header")
            return self._strip([Text(name) for name in self.columns], style, width)
        index = self.scroll_offset.y + y - HEADER_LINES
        if index >= len(self.rows):
            return Strip.blank(width, self.rich_style)
        cells = self._on_screen.get(index) or self.cells(self.rows[index])
        style = self.rich_style
        if index == self.cursor:
            style += self.get_component_rich_style("event-list--cursor")
        elif (self.dropped + index) % 2:
            style += self.get_component_rich_style("event-list--even-row")
        return self._strip(cells, style, width)

    def _strip(self, cells: list[Text], style: Style, width: int) -> Strip:
        line = Text(" ", style=style, no_wrap=True, end="")
        for column, cell in enumerate(cells):
            if column < len(cells) - 1:
                cut = cell.copy()
                cut.truncate(self.widths[column], overflow="ellipsis", pad=True)
                cut.append(GAP)
                line.append_text(cut)
            else:
                line.append_text(cell)
        x = self.scroll_offset.x
        return Strip(line.render(self.app.console)).crop_extend(x, x + width, style)
