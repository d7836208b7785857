"""A recording played back to the views: its events and the program's output lines, told
in the order the live session told them, or in call order at a recorded pace."""
from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from tracer.events import CallOrder, Event
from tracer.observer import Observer, OutputLine
from tracer.recording import Played


def tell(views: Observer, played: Played) -> None:
    if isinstance(played, Event):
        views.event(played)
    else:
        views.output(played)


def in_call_order(played: Iterable[Played]) -> Iterator[Played]:
    """The events in call order (through CallOrder's window, not a sort of the whole
    recording), each output line told just before the first event stamped after it."""
    order = CallOrder()
    lines: deque[OutputLine] = deque()
    for item in played:
        if isinstance(item, OutputLine):
            lines.append(item)
        else:
            yield from _lines_among(order.add(item), lines)
    yield from _lines_among(order.drain(), lines)
    yield from lines


def _lines_among(events: Sequence[Event], lines: deque[OutputLine]) -> Iterator[Played]:
    for event in events:
        while lines and lines[0].ts_ns <= event.ts_ns:
            yield lines.popleft()
        yield event


def play(views: Observer, header: dict[str, Any], played: Iterable[Played], speed: float | None,
         lost: int, exit_code: int, lost_steps: dict[str, int] | None = None) -> int:
    """A recording told to the views (the explorer, the exports), at its recorded pace times
    `speed`, or at once. Returns how many output lines it held."""
    views.started(header)
    previous: int | None = None
    outputs = 0
    for item in in_call_order(played) if speed else played:
        if speed and previous is not None:
            time.sleep(max(0.0, (item.ts_ns - previous) / 1e9 / speed))
        previous = item.ts_ns
        views.tick()
        tell(views, item)
        outputs += isinstance(item, OutputLine)
    views.finished(lost, exit_code, lost_steps)
    return outputs
