"""The explorer's event list: a bounded window, a cursor that follows or stays, and work
that depends on the screen, not on how many events arrive."""
from __future__ import annotations

import asyncio

from rich.text import Text
from textual.app import App, ComposeResult

from tracer.events import Event
from tracer.views.eventlist import EventList

COLUMNS = ("n", "step", "detail")


def numbered(first: int, count: int) -> list[Event]:
    return [Event(ts_ns=n, pid=100, tgid=100, comm="w", step="memfd_create", hook="tp", detail={"n": n})
            for n in range(first, first + count)]


class Host(App[None]):
    def __init__(self, limit: int) -> None:
        super().__init__()
        self.formatted = 0
        self.highlighted: list[Event | None] = []
        self.limit = limit

    def cells(self, event: Event) -> list[Text]:
        self.formatted += 1
        return [Text(str(event.ts_ns)), Text(event.step), Text(f"n={event.ts_ns}")]

    def compose(self) -> ComposeResult:
        yield EventList(COLUMNS, self.cells, self.limit, id="list")

    def on_event_list_highlighted(self, message: EventList.Highlighted) -> None:
        self.highlighted.append(message.event)

    @property
    def rows(self) -> EventList:
        return self.query_one(EventList)


def test_a_cursor_on_the_last_row_follows_and_the_oldest_rows_leave() -> None:
    async def drive() -> None:
        app = Host(limit=100)
        async with app.run_test(size=(60, 12)) as pilot:
            app.rows.add(numbered(0, 80))
            app.rows.add(numbered(80, 70))
            await pilot.pause()
            assert app.rows.row_count == 100
            assert app.rows.rows[0].ts_ns == 50 and app.rows.selected.ts_ns == 149
            assert app.highlighted[-1].ts_ns == 149
            top = app.rows.scroll_offset.y
            on_screen = list(app.rows.rows)[top:top + app.rows.size.height - 1]
            assert on_screen[-1].ts_ns == 149
    asyncio.run(drive())


def test_a_cursor_moved_up_stays_on_its_event_while_rows_leave() -> None:
    async def drive() -> None:
        app = Host(limit=100)
        async with app.run_test(size=(60, 12)) as pilot:
            app.rows.add(numbered(0, 100))
            await pilot.pause()
            await pilot.press("up", "up", "up")
            assert app.rows.selected.ts_ns == 96 and not app.rows.following
            app.rows.add(numbered(100, 30))
            await pilot.pause()
            assert app.rows.selected.ts_ns == 96 and app.rows.rows[0].ts_ns == 30
            app.rows.scroll_home(animate=False, immediate=True)
            app.rows.add(numbered(130, 5))          # a list scrolled away from its cursor stays put
            await pilot.pause()
            assert app.rows.scroll_offset.y == 0 and app.rows.selected.ts_ns == 96
            await pilot.press("end")
            assert app.rows.selected.ts_ns == 134 and app.rows.following
            await pilot.press("home")
            assert app.rows.selected.ts_ns == 35
    asyncio.run(drive())


def test_a_click_selects_the_row_under_it() -> None:
    async def drive() -> None:
        app = Host(limit=100)
        async with app.run_test(size=(60, 12)) as pilot:
            app.rows.add(numbered(0, 5))
            await pilot.pause()
            await pilot.click(EventList, offset=(3, 2))        # line 0 is the header
            assert app.rows.selected.ts_ns == 1 and app.highlighted[-1].ts_ns == 1
    asyncio.run(drive())


def test_a_flood_costs_the_screen_not_the_events() -> None:
    """200k events in 100 batches: only the rows on screen are formatted (DataTable measured
    every row it was given, and re-indexed all of them for each row it dropped)."""
    async def drive() -> None:
        app = Host(limit=10_000)
        async with app.run_test(size=(80, 24)) as pilot:
            for first in range(0, 200_000, 2_000):
                app.rows.add(numbered(first, 2_000))
                await pilot.pause()
            assert app.rows.row_count == 10_000 and app.rows.selected.ts_ns == 199_999
            assert app.formatted < 100 * 24 * 2, app.formatted
    asyncio.run(drive())


def test_the_followed_row_is_not_hidden_by_the_horizontal_scrollbar() -> None:
    class Wide(Host):
        def cells(self, event: Event) -> list[Text]:
            return [*super().cells(event)[:2], Text("x" * 200)]

    async def drive() -> None:
        app = Wide(limit=100)
        async with app.run_test(size=(60, 12)) as pilot:
            app.rows.add(numbered(0, 80))
            await pilot.pause()
            await pilot.pause()
            assert app.rows.show_horizontal_scrollbar
            top, shown = app.rows.scroll_offset.y, app.rows.scrollable_content_region.height - 1
            assert top <= app.rows.cursor < top + shown
    asyncio.run(drive())


def test_stripes_stay_on_their_rows_while_rows_leave() -> None:
    def background(app: Host, ts_ns: int) -> object:
        rows = app.rows
        index = next(i for i, event in enumerate(rows.rows) if event.ts_ns == ts_ns)
        strip = rows.render_line(index - rows.scroll_offset.y + 1)
        return [segment.style.bgcolor for segment in strip if segment.style]

    async def drive() -> None:
        app = Host(limit=100)
        async with app.run_test(size=(60, 12)) as pilot:
            app.rows.add(numbered(0, 100))
            await pilot.pause()
            before = [background(app, n) for n in (95, 96)]
            assert before[0] != before[1]
            app.rows.add(numbered(100, 1))              # one row leaves the front
            await pilot.pause()
            assert [background(app, n) for n in (95, 96)] == before
    asyncio.run(drive())
