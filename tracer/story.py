"""What a lesson's story is to the core: events and the program's observations in, typed facts
out, and the lines and panels that render those facts.

The core names no step and no lesson. A lesson brings a model (scenarios/<lesson>/story.py:
it turns events into frozen dataclasses, its facts, and says nothing) and a view
(scenarios/<lesson>/views.py: the only place its sentences are written). Every view of the
core (live screen, plain output, explorer, SVG, HTML report) asks the stories, never a lesson.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from tracer.events import Event

if TYPE_CHECKING:
    from rich.console import RenderableType


@dataclass(frozen=True)
class Observation:
    """One JSON report line of the traced program: what it saw itself (a cwd, a thread's state).
    A sentence that rests on one cites it, so a reader can find the line in the recording."""

    number: int                     # its place among the program's reports, from 1
    role: str
    facts: Mapping[str, Any]
    ts_ns: int | None = None
    pid: int | None = None

    def cite(self) -> str:
        return f"program report {self.number} ({self.role})"


Fact = Any          # each lesson's facts are its own frozen dataclasses; its view knows them


class StoryModel(Protocol):
    """A lesson's model (scenarios/<lesson>/story.py): no prose."""

    def add(self, event: Event) -> None: ...
    def observe(self, observation: Observation) -> None: ...
    def folds(self, event: Event) -> bool:
        """An event the screens fold away (the recording keeps it), e.g. a loader's mapping."""
        ...
    def about(self, event: Event) -> bool:
        """The story is about this event (the memfd itself, not a library the loader mapped):
        the narration tells a step at the first such event."""
        ...
    def facts(self) -> Sequence[Fact]: ...


class StoryView(Protocol):
    """A lesson's renderer (scenarios/<lesson>/views.py): its facts as lines, panels and SVG."""

    def lines(self, facts: Sequence[Fact], compact: bool) -> list[str]: ...
    def panels(self, facts: Sequence[Fact]) -> list[RenderableType]: ...
    def follow_lines(self, facts: Sequence[Fact], started_ns: int) -> list[str]: ...
    def follow_panels(self, facts: Sequence[Fact], started_ns: int) -> list[RenderableType]: ...
    def diagrams(self, facts: Sequence[Fact]) -> list[str]: ...
    def highlighted_files(self, facts: Sequence[Fact]) -> set[str]: ...
    def event_text(self, event: Event) -> str | None: ...
    def step_style(self, step: str) -> str | None: ...
    def nothing_seen(self) -> str:
        """What this story looks for, said when it found none of it ("no new task")."""
        ...
    def folded_note(self, count: int) -> str:
        """What the `count` events this story folded are, and that the recording keeps them."""
        ...


class QuietView:
    """A view's parts most lessons do not have: no file lives to follow, no diagrams, no file
    to highlight. A lesson's view inherits these and writes only what it tells."""

    def follow_lines(self, facts: Sequence[Fact], started_ns: int) -> list[str]:
        return []

    def follow_panels(self, facts: Sequence[Fact], started_ns: int) -> list[RenderableType]:
        return []

    def diagrams(self, facts: Sequence[Fact]) -> list[str]:
        return []

    def highlighted_files(self, facts: Sequence[Fact]) -> set[str]:
        return set()


@dataclass
class Story:
    """One lesson's model and view, composed: what the core's views call."""

    name: str
    model: StoryModel
    view: StoryView
    steps: frozenset[str] = frozenset()     # its lesson's steps
    folded: int = 0             # events this story folded away from the screens

    def traced_in(self, header: Mapping[str, Any]) -> bool:
        """Whether the session had a hook (the step's own or a fallback) for one of its lesson's steps: a story whose
        steps were not traced saw nothing and may say nothing ("no new task"). A header that
        lists no hooks (a test's, an old recording's) keeps every story."""
        hooks = header.get("hooks")
        if not isinstance(hooks, list) or not hooks:
            return True
        traced = {hook.get("step") for hook in hooks
                  if isinstance(hook, dict) and hook.get("status") in ("attached", "fallback")}
        return bool(traced & self.steps)

    def folded_note(self) -> str | None:
        return self.view.folded_note(self.folded) if self.folded else None

    def add(self, event: Event) -> None:
        self.model.add(event)

    def observe(self, observation: Observation) -> None:
        self.model.observe(observation)

    def fold(self, event: Event) -> bool:
        """Whether the screens fold this event away; counted when they do."""
        folded = self.model.folds(event)
        self.folded += folded
        return folded

    def about(self, event: Event) -> bool:
        return self.model.about(event)

    def facts(self) -> Sequence[Fact]:
        return self.model.facts()

    def lines(self, compact: bool = False) -> list[str]:
        return self.view.lines(self.facts(), compact)

    def panels(self) -> list[RenderableType]:
        return self.view.panels(self.facts())

    def follow_lines(self, started_ns: int) -> list[str]:
        return self.view.follow_lines(self.facts(), started_ns)

    def follow_panels(self, started_ns: int) -> list[RenderableType]:
        return self.view.follow_panels(self.facts(), started_ns)

    def diagrams(self) -> list[str]:
        return self.view.diagrams(self.facts())

    def highlighted_files(self) -> set[str]:
        return self.view.highlighted_files(self.facts())
