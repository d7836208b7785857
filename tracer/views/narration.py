"""Narration: what the kernel just did at a step, and where in the source (scenarios/*/narration.toml).

The text depends on how the step was seen: the function itself, a stand-in
function (fallback), or the syscall tracepoint.
"""
from __future__ import annotations

import functools
import tomllib
from collections.abc import Sequence
from typing import Any

from rich.panel import Panel
from rich.text import Text

from tracer.events import Event, in_call_order
from tracer.resources import scenario_dir

SCENARIO_DIR = scenario_dir()


@functools.cache
def narration_texts() -> dict[str, dict[str, str]]:
    texts: dict[str, dict[str, str]] = {}
    for path in sorted(SCENARIO_DIR.glob("*/narration.toml")):
        with path.open("rb") as source:
            texts.update(tomllib.load(source))
    return texts


def hook_kind(hook: str, status: str) -> str:
    if hook.startswith(("tracepoint:", "raw_tracepoint:")):
        return "syscall"
    return "fallback" if status == "fallback" else "function"


def narrate(step: str, hook: str, status: str = "attached") -> tuple[str, str] | None:
    """(source file and function, explanation) for a step seen through `hook`."""
    entry = narration_texts().get(step)
    if not entry:
        return None
    kind = hook_kind(hook, status)
    text = entry.get(kind) or entry.get("function") or entry.get("syscall", "")
    where = entry.get("source", "")
    if kind == "fallback" and hook:
        where += f"  (seen at {hook})"
    return where, text


def statuses(header: dict[str, Any]) -> dict[str, str]:
    return {hook["step"]: hook["status"] for hook in header.get("hooks", [])}


def first_narrations(events: Sequence[Event], header: dict[str, Any]) -> list[tuple[Event, str, str]]:
    """(event, where in the source, explanation) for each step, where it first appears."""
    status = statuses(header)
    seen: set[str] = set()
    told = []
    for event in in_call_order(events):
        if event.step in seen:
            continue
        seen.add(event.step)
        narration = narrate(event.step, event.hook, status.get(event.step, "attached"))
        if narration is not None:
            told.append((event, *narration))
    return told


def narration_panel(events: Sequence[Event], header: dict[str, Any],
                    title: str = "what the kernel did, step by step") -> Panel:
    body = Text()
    for event, where, text in first_narrations(events, header):
        body.append(f"{event.step}", style="bold")
        body.append(f" in {event.comm}  ")
        body.append(f"{where}\n", style="dim")
        body.append(f"  {text}\n")
    return Panel(body, title=title, border_style="blue")
