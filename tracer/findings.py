"""What the events prove: one model, built one event at a time, that every view renders.

A live session and a replayed recording feed the same model, so they reach the same
conclusions. The model is the lessons' stories (tracer/story.py; each lesson's own in
scenarios/<lesson>/story.py), the timeline, the paths, and what the program printed and
reported. It names no step and no lesson. Memory stays flat whatever the number of events.
"""
from __future__ import annotations

import bisect
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tracer.events import Event
from tracer.observer import Observer, OutputLine
from tracer.paths import Paths
from tracer.story import Observation, Story

if TYPE_CHECKING:
    from rich.console import RenderableType

KEPT_REPORTS = 1000         # JSON lines the traced program reported
KEPT_OUTPUT = 10_000        # lines the traced program printed, kept for the final screen
FIRST_EVENTS = 200          # the timeline's rows on the final screen
RECENT_EVENTS = 25          # the live view's rows
KEPT_NAMES = 100_000        # processes whose latest name is kept (the explorer's rows use it)


def _lesson_stories() -> list[Story]:
    from tracer.stories import lesson_stories
    return lesson_stories()


class Timeline:
    """The first events in call order (the final screen) and the latest ones (the live view);
    the events a story folds (a loader's mappings) are counted, not shown."""

    def __init__(self) -> None:
        self.first: list[Event] = []
        self.recent: deque[Event] = deque(maxlen=RECENT_EVENTS)
        self.count = 0
        self.folded = 0

    def add(self, event: Event, folded: bool = False) -> None:
        self.count += 1
        if folded:
            self.folded += 1
            return
        self.recent.append(event)
        if len(self.first) < FIRST_EVENTS or event.ts_ns < self.first[-1].ts_ns:
            bisect.insort(self.first, event, key=lambda e: e.ts_ns)
            del self.first[FIRST_EVENTS:]


@dataclass
class Findings(Observer):
    """Everything the views show, from the session header, the events and the program's output.
    It observes a session (or a replay) like any view, and the views render it."""

    header: dict[str, Any] = field(default_factory=dict)
    stories: list[Story] = field(default_factory=_lesson_stories)
    timeline: Timeline = field(default_factory=Timeline)
    paths: Paths = field(default_factory=Paths)
    first_of_step: dict[str, Event] = field(default_factory=dict)
    first_told: dict[str, Event] = field(default_factory=dict)     # the first a story is about
    reports: list[dict[str, Any]] = field(default_factory=list)          # as the program wrote them
    observations: list[Observation] = field(default_factory=list)      # the same, numbered for citing
    reports_seen: int = 0
    output_lines: list[str] = field(default_factory=list)
    output_dropped: int = 0
    lost: int = 0
    lost_steps: dict[str, int] = field(default_factory=dict)   # the steps whose events were lost, how many
    names: dict[int, str] = field(default_factory=dict)        # pid -> the latest comm its events carried
    exit_code: int | None = None

    def __post_init__(self) -> None:
        self._keep_traced_stories()

    def _keep_traced_stories(self) -> None:
        self.stories = [story for story in self.stories if story.traced_in(self.header)]

    @property
    def started_ns(self) -> int:
        return int(self.header.get("started_ns", 0))

    @property
    def events(self) -> int:
        return self.timeline.count

    def folds(self, event: Event) -> bool:
        """An event the screens fold away (asked without counting it)."""
        return any(story.model.folds(event) for story in self.stories)

    def name_of(self, pid: int, comm: str) -> str:
        """What a process came to call itself (a lesson's task renames itself "sender" once
        Python has started; its first events carry "python")."""
        return self.names.get(pid, comm)

    def add(self, event: Event) -> None:
        if event.pid in self.names or len(self.names) < KEPT_NAMES:
            self.names[event.pid] = event.comm
        folds = [story.fold(event) for story in self.stories]      # each story counts its own: no short cut
        folded = any(folds)
        self.timeline.add(event, folded)
        for story in self.stories:
            story.add(event)
        self.paths.add(event)
        if folded:
            return              # the narration tells the lesson's own events, not a loader's
        _keep_first(self.first_of_step, event)
        if any(story.about(event) for story in self.stories):
            _keep_first(self.first_told, event)

    # as an Observer
    def started(self, header: dict[str, Any]) -> None:
        self.header = header
        self._keep_traced_stories()

    def event(self, event: Event) -> None:
        self.add(event)

    def output(self, line: OutputLine) -> None:
        if line.report:
            self.add_report(line.report, getattr(line, "ts_ns", None), getattr(line, "pid", None))
        shown = line.shown()
        if shown is None:
            return
        if len(self.output_lines) < KEPT_OUTPUT:
            self.output_lines.append(shown)
        else:
            self.output_dropped += 1

    def finished(self, lost: int, exit_code: int, lost_steps: dict[str, int] | None = None) -> None:
        self.lost, self.exit_code = lost, exit_code
        self.lost_steps = dict(lost_steps or {})

    def add_all(self, events: Iterable[Event]) -> Findings:
        for event in events:
            self.add(event)
        return self

    def add_report(self, report: dict[str, Any], ts_ns: int | None = None, pid: int | None = None) -> None:
        """A JSON line of the program: numbered in the order reported, so that a sentence cites it."""
        if len(self.reports) < KEPT_REPORTS:
            self.reports.append(report)
        if "pause" in report:
            return
        self.reports_seen += 1
        observation = Observation(self.reports_seen, str(report.get("role", "?")), report, ts_ns, pid)
        if len(self.observations) < KEPT_REPORTS:
            self.observations.append(observation)
        for story in self.stories:
            story.observe(observation)

    # what the views ask
    def conclusion_lines(self, compact: bool = False) -> list[str]:
        return [line for story in self.stories for line in story.lines(compact)]

    def panels(self) -> list[RenderableType]:
        return [panel for story in self.stories for panel in story.panels()]

    def follow_lines(self) -> list[str]:
        return [line for story in self.stories for line in story.follow_lines(self.started_ns)]

    def follow_panels(self) -> list[RenderableType]:
        return [panel for story in self.stories for panel in story.follow_panels(self.started_ns)]

    def diagrams(self) -> list[str]:
        return [svg for story in self.stories for svg in story.diagrams()]

    def highlighted_files(self) -> set[str]:
        return {file for story in self.stories for file in story.highlighted_files()}

    def has_findings(self) -> bool:
        return any(story.facts() for story in self.stories)

    def folded_notes(self) -> list[str]:
        return [note for note in (story.folded_note() for story in self.stories) if note]

    def nothing_seen(self) -> str:
        looked_for = "; ".join(story.view.nothing_seen() for story in self.stories)
        if not looked_for:
            return f"No lesson with a story was traced in this session ({self.events} events)."
        return f"Nothing the lessons tell was seen in {self.events} events: {looked_for}."

    def first_events_by_step(self) -> list[Event]:
        """The first event of each step the screens show, in call order (what the narration tells):
        the first a story is about (the lesson's memfd), else the first not folded."""
        firsts = {**self.first_of_step, **self.first_told}
        return sorted(firsts.values(), key=lambda e: e.ts_ns)


def _keep_first(firsts: dict[str, Event], event: Event) -> None:
    first = firsts.get(event.step)
    if first is None or event.ts_ns < first.ts_ns:
        firsts[event.step] = event


def findings_of(events: Iterable[Event], header: dict[str, Any] | None = None,
                reports: Iterable[dict[str, Any]] = ()) -> Findings:
    findings = Findings(header or {})
    for report in reports:
        findings.add_report(report)
    return findings.add_all(events)
