"""The path model: per step, the kernel stacks of its events merged into one tree, and the
chain the source article draws (scenarios/*/narration.toml `article`) matched against it.

Bounded whatever the number of events: a tree keeps at most MAX_NODES frames per step,
and further new frames are only counted.
"""
from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tracer.events import Event
from tracer.stacks import base_name

MAX_NODES = 256             # frames kept in one step's tree


@functools.cache
def renamed() -> dict[str, str]:
    """Functions renamed since the articles were written (the lessons say which): old -> today's."""
    from tracer import lessons

    return lessons.renamed()


@functools.cache
def user_space_steps() -> frozenset[str]:
    """Steps syspath observes from user space (tracer/pages.py): they have no kernel path."""
    from tracer import lessons
    from tracer.catalog import FROM_USER_SPACE

    return lessons.steps_with_role(FROM_USER_SPACE)


SEEN, INLINED, RENAMED_HERE, ABSENT, UNKNOWN = "seen", "inlined here", "renamed", "not on this path", "not seen"
MARK_LEGEND = {
    SEEN: "on the stack the kernel recorded",
    INLINED: "not in this kernel's kallsyms: the compiler put its body into its caller",
    RENAMED_HERE: "the function has another name on this kernel",
    ABSENT: "in kallsyms, but not on the recorded stacks (it ran before or after the capture point, or as a tail call)",
    UNKNOWN: "not on the recorded stacks (the recording has no kallsyms facts for it)",
}


@dataclass
class Node:
    name: str
    count: int = 0
    children: dict[str, Node] = field(default_factory=dict)


@dataclass
class StepPath:
    """One step's stacks, merged outermost frame first."""

    step: str
    root: Node = field(default_factory=lambda: Node(""))
    events: int = 0
    without_stack: int = 0
    captured_at: Counter[str] = field(default_factory=Counter)
    nodes: int = 0
    frames_dropped: int = 0

    def add(self, event: Event) -> None:
        self.events += 1
        if not event.stack:
            self.without_stack += 1
            return
        self.captured_at[event.stack_from or event.hook] += 1
        node = self.root
        node.count += 1
        for name in reversed(event.stack):
            child = node.children.get(name)
            if child is None:
                if self.nodes >= MAX_NODES:
                    self.frames_dropped += 1
                    return
                child = node.children[name] = Node(name)
                self.nodes += 1
            child.count += 1
            node = child

    def seen(self) -> set[str]:
        """Every frame on the recorded stacks, by base name (do_mmap for do_mmap.isra.0)."""
        names: set[str] = set()
        pending = [self.root]
        while pending:
            node = pending.pop()
            names.update(base_name(name) for name in node.children)
            pending.extend(node.children.values())
        return names


@dataclass(frozen=True)
class Row:
    """One line of a drawn tree: a run of frames with no branch in it, at a branch depth."""

    depth: int
    frames: tuple[str, ...]
    count: int


def tree_rows(root: Node) -> list[Row]:
    """The tree outermost first; a chain without branches stays on one row."""
    rows: list[Row] = []

    def walk(node: Node, depth: int) -> None:
        for child in sorted(node.children.values(), key=lambda n: -n.count):
            run = [child]
            while len(run[-1].children) == 1:
                run.append(next(iter(run[-1].children.values())))
            rows.append(Row(depth, tuple(n.name for n in run), run[-1].count))
            walk(run[-1], depth + 1)

    walk(root, 0)
    return rows


@dataclass(frozen=True)
class ArticleFrame:
    name: str
    status: str
    note: str = ""


def match_article(article: Sequence[str], seen: set[str],
                  kallsyms: Mapping[str, str | None] | None) -> list[ArticleFrame]:
    """Each frame the article draws, as the running kernel has it. `kallsyms`: article name ->
    the kernel's symbol or None (absent); None when the recording has no such facts."""
    def present(name: str) -> bool | None:
        if kallsyms is None or name not in kallsyms:
            return None
        return kallsyms[name] is not None

    matched = []
    for name in article:
        new_name = renamed().get(name)
        if name in seen:
            matched.append(ArticleFrame(name, SEEN))
        elif new_name and present(name) is not True and (new_name in seen or present(new_name)):
            matched.append(ArticleFrame(name, RENAMED_HERE, f"now {new_name}" + (", seen" if new_name in seen else "")))
        elif present(name) is False:
            matched.append(ArticleFrame(name, INLINED))
        else:
            matched.append(ArticleFrame(name, ABSENT if present(name) else UNKNOWN))
    return matched


def article_chains() -> dict[str, list[str]]:
    """Step -> the chain the article draws for it, outermost first (scenarios/*/narration.toml)."""
    from tracer.views.narration import narration_texts
    return {step: [str(frame) for frame in entry["article"]]
            for step, entry in narration_texts().items() if isinstance(entry.get("article"), list)}


def article_names() -> set[str]:
    names = {frame for chain in article_chains().values() for frame in chain}
    return names | {renamed()[name] for name in names if name in renamed()}


def kallsyms_facts(symbols: Mapping[str, str]) -> dict[str, str | None]:
    """What the session header keeps about the article's frames: the kernel's symbol, or None."""
    return {name: symbols.get(name) for name in sorted(article_names())}


class Paths:
    """Per step, the merged path of its events (the steps in first-seen order)."""

    def __init__(self) -> None:
        self.steps: dict[str, StepPath] = {}

    def add(self, event: Event) -> None:
        if event.step in user_space_steps():
            return
        path = self.steps.get(event.step)
        if path is None:
            path = self.steps[event.step] = StepPath(event.step)
        path.add(event)

    def add_all(self, events: Iterable[Event]) -> Paths:
        for event in events:
            self.add(event)
        return self




@dataclass(frozen=True)
class StepView:
    """What a view draws for one step: its tree rows and the article's chain, marked."""

    path: StepPath
    rows: list[Row]
    article: list[ArticleFrame]
    highlight: frozenset[str]


def step_views(paths: Paths, header: Mapping[str, Any]) -> list[StepView]:
    facts = header.get("kallsyms")
    kallsyms = facts if isinstance(facts, dict) else None
    chains = article_chains()
    views = []
    for step, path in paths.steps.items():
        chain = chains.get(step, [])
        highlight = frozenset(chain) | {renamed()[name] for name in chain if name in renamed()}
        views.append(StepView(path, tree_rows(path.root), match_article(chain, path.seen(), kallsyms), highlight))
    return views
