"""The explorer driven headless (Textual's pilot): filters, search, selection, step mode, snapshots."""
from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from textual.widgets import Static, TabbedContent

from tracer.findings import Findings
from tracer.recording import read_recording
from tracer.replay import play
from tracer.views.eventlist import EventList
from tracer.views.explorer import Explorer, Filters
from tracer.views.feed import Feed
from tracer.views.narration import narrate, statuses

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def fed(name: str, window: int = 10_000) -> Feed:
    recording = read_recording(FIXTURES / f"{name}.jsonl")
    feed = Feed(Findings(), window)
    play(feed, recording.session, recording.events, None, 0, 0)
    return feed


def rows(app: Explorer) -> list[str]:
    table = app.query_one("#events", EventList)
    return [" ".join(str(cell) for cell in table.cells(event)) for event in table.rows]


async def cursor_to(pilot, app: Explorer, step: str) -> None:
    table = app.query_one("#events", EventList)
    index = next(i for i, event in enumerate(table.rows) if event.step == step)
    table.move_cursor(index)
    await pilot.pause()


def test_filters_narrow_to_one_memfd_life_in_a_few_keys() -> None:
    async def drive() -> None:
        feed = fed("chromium")
        app = Explorer(feed, live=False)
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.pause()
            everything = feed.count - feed.findings.timeline.folded       # the loaders' mappings folded
            assert feed.findings.timeline.folded and len(rows(app)) == everything
            received = {row.split()[5] for row in rows(app) if " receive_fd " in row}
            await pilot.press("e", "slash", *"memfd_create", "enter")
            created = rows(app)
            assert created and all("memfd_create" in row for row in created)
            index = next(i for i, row in enumerate(created) if row.split()[5] in received)
            app.query_one("#events", EventList).move_cursor(index)
            file = created[index].split()[5]
            await pilot.press("f")
            life = rows(app)
            assert app.filters.file == file and len(life) >= 3
            assert all(file in row for row in life)
            assert {"memfd_create", "receive_fd"} <= {row.split()[3] for row in life}
            await pilot.press("c")
            assert app.filters == Filters() and len(rows(app)) == everything
    asyncio.run(drive())


def test_selection_shows_fields_path_and_narration() -> None:
    async def drive() -> None:
        feed = fed("memfd-share")
        app = Explorer(feed, live=False)
        async with app.run_test(size=(100, 30)) as pilot:
            await pilot.press("e")
            await cursor_to(pilot, app, "receive_fd")
            shown = str(app.query_one("#detail", Static).render())
            received = next(e for e in feed.snapshot() if e.step == "receive_fd")
            where, _ = narrate(received.step, received.hook, statuses(feed.findings.header)[received.step])
            assert received.file and received.file in shown and where in shown
    asyncio.run(drive())


def test_a_recorded_stack_is_shown_as_the_path() -> None:
    feed = fed("memfd-share")
    event = [e for e in feed.snapshot() if e.step == "do_mmap"][-1]
    event.stack = ["mmap_region", "do_mmap", "vm_mmap_pgoff", "ksys_mmap_pgoff", "do_syscall_64"]
    from tracer.views.explorer import details_text

    text = details_text(event, feed).plain
    assert "\npath" in text and text.index("do_syscall_64") < text.index("mmap_region")


def test_step_mode_is_a_key_and_the_finished_run_opens_on_the_objects() -> None:
    async def drive() -> None:
        feed = Feed(Findings())
        recording = read_recording(FIXTURES / "memfd-share.jsonl")
        feed.started(recording.session)
        feed.paused("sender", "memfd_create(\"syspath-demo\")", "press space")
        app = Explorer(feed, live=True)
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.pause(0.5)
            assert "next, in the sender: memfd_create" in str(app.query_one("#status", Static).render())
            assert not feed.ready()
            await pilot.press("space")
            assert feed.ready()
            feed.resumed()
            for event in recording.events:
                feed.event(event)
            feed.finished(0, 0)
            for _ in range(50):                       # the app reads the feed on its own clock
                await pilot.pause(0.1)
                if app.query_one(TabbedContent).active == "objects":
                    break
            assert app.query_one(TabbedContent).active == "objects"
            done = f"done: exit 0, {len(recording.events)} events, 0 lost"
            assert done in str(app.query_one("#status", Static).render())
    asyncio.run(drive())


def test_the_tail_left_to_decode_is_shown_until_it_is_done() -> None:
    async def drive() -> None:
        feed = Feed(Findings())
        recording = read_recording(FIXTURES / "memfd-share.jsonl")
        feed.started(recording.session)
        for event in recording.events:
            feed.event(event)
        app = Explorer(feed, live=True)
        async with app.run_test(size=(80, 24)) as pilot:
            feed.catching_up(412_345)
            await pilot.pause(0.5)
            assert "decoding the 412,345 events it left" in str(app.query_one("#status", Static).render())
            feed.catching_up(0)
            feed.finished(0, 0)
            await pilot.pause(0.5)
            assert "done: exit 0" in str(app.query_one("#status", Static).render())
    asyncio.run(drive())


def test_folded_rows_come_back_with_a_key_and_processes_carry_their_later_name() -> None:
    async def drive() -> None:
        feed = fed("memfd-share")
        app = Explorer(feed, live=False)
        folded = feed.findings.timeline.folded
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.pause()
            shown = rows(app)
            assert folded and len(shown) == feed.count - folded
            assert f"{folded} folded (l shows)" in str(app.query_one("#top", Static).render())
            # the sender's first row is a mapping made while its comm was still python's
            first_of_sender = min((e for e in feed.snapshot() if e.comm == "sender"), key=lambda e: e.ts_ns)
            earlier = [e for e in feed.snapshot() if e.pid == first_of_sender.pid and e.comm != "sender"]
            await pilot.press("l")
            every = rows(app)
            assert len(every) == feed.count and earlier
            of_sender = [row for row in every if f"[{first_of_sender.pid}]" in row]
            assert len(of_sender) > len(earlier) and all(f"sender [{first_of_sender.pid}]" in row for row in of_sender)
            await pilot.press("l")
            assert rows(app) == shown
    asyncio.run(drive())


def test_the_window_is_bounded() -> None:
    feed = fed("chromium", window=50)
    events = len(read_recording(FIXTURES / "chromium.jsonl").events)
    assert events > 50 and len(feed.snapshot()) == 50 and feed.count == events and feed.findings.events == events
    fresh, missed = feed.since(0)
    assert missed and len(fresh) == 50


def test_quitting_stops_the_work_like_ctrl_c() -> None:
    feed = Feed(Findings())
    feed.stop()
    with pytest.raises(Exception) as stopped:
        feed.tick()
    assert getattr(stopped.value, "exit_code", None) == 130


@pytest.mark.parametrize("size", [(80, 24), (100, 30)])
def test_screens_snapshot(snap_compare, size: tuple[int, int]) -> None:
    assert snap_compare(Explorer(fed("memfd-share"), live=False), terminal_size=size, press=["e"])


def test_objects_snapshot(snap_compare) -> None:
    assert snap_compare(Explorer(fed("memfd-share"), live=False), terminal_size=(80, 24), press=["o"])
