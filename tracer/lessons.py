"""The lessons: found in scenarios/*/lesson.py, and what the core derives from them.

Everything numbered is assigned here from the declarations, in one order (lessons by
package name, steps as declared): step ids (STEP_<NAME>), path point ids, the payload
union's members, stack-sampling slots. Adding a lesson adds its folders; nothing here
changes.
"""
from __future__ import annotations

import functools
import importlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace

from tracer.catalog import (
    FROM_USER_SPACE,
    FUNCTION_TIERS,
    RELEASES_FILE,
    FieldRequest,
    HookChoice,
    PathPoint,
    Payload,
    Step,
)
from tracer.errors import SyspathError
from tracer.events import Decoder, DetailReader, EventLayout
from tracer.lesson import Lesson, Shape
from tracer.resources import SCENARIOS_PACKAGE, bind_scenarios_package, probes_dir, scenario_dir

LESSON_MODULE = "lesson"           # scenarios/<package>/lesson.py defines LESSON


def _package_name() -> str:
    """How scenarios/ is imported: tracer.scenarios (pyproject.toml maps the folder in)."""
    bind_scenarios_package()
    return SCENARIOS_PACKAGE


@functools.cache
def all_lessons() -> tuple[Lesson, ...]:
    found = []
    for folder in sorted(scenario_dir().iterdir()):
        if not (folder / f"{LESSON_MODULE}.py").is_file():
            continue
        module = importlib.import_module(f"{_package_name()}.{folder.name}.{LESSON_MODULE}")
        lesson = getattr(module, "LESSON", None)
        if not isinstance(lesson, Lesson):
            raise SyspathError(f"{folder / 'lesson.py'} defines no LESSON = Lesson(...)")
        if lesson.package != folder.name:
            raise SyspathError(f"{folder / 'lesson.py'}: package {lesson.package!r} is not its folder's name")
        found.append(lesson)
    _check_unique(found)
    return tuple(found)


def _check_unique(found: Sequence[Lesson]) -> None:
    names = [step.name for lesson in found for step in lesson.steps]
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise SyspathError(f"lessons declare the same step twice: {', '.join(twice)}")


def names() -> list[str]:
    return [lesson.name for lesson in all_lessons()]


def runnable() -> list[str]:
    """The lessons `syspath run` can start: those with a program."""
    return [lesson.name for lesson in all_lessons() if lesson.program]


def lesson(name: str) -> Lesson:
    for candidate in all_lessons():
        if candidate.name == name:
            return candidate
    raise SyspathError(f"unknown lesson {name!r}: choose one of {', '.join(names())}")


def program_path(name: str) -> str:
    chosen = lesson(name)
    if not chosen.program:
        raise SyspathError(f"lesson {name} has no program to run; use syspath trace -- CMD")
    return str(scenario_dir() / chosen.package / chosen.program)


def session_lessons(name: str | None) -> tuple[Lesson, ...]:
    """A lesson's run hooks its own steps; `syspath trace` every lesson that applies to any program."""
    if name is not None:
        return (lesson(name),)
    return tuple(candidate for candidate in all_lessons() if candidate.any_program)


def steps_of(chosen: Iterable[Lesson]) -> tuple[Step, ...]:
    return tuple(step for each in chosen for step in each.steps)


def steps_for(name: str | None) -> tuple[Step, ...]:
    return steps_of(session_lessons(name))


def hooked_steps_for(name: str | None) -> tuple[Step, ...]:
    """The steps a probe stands for: not those the core's user-space services observe."""
    return tuple(step for step in steps_for(name) if FROM_USER_SPACE not in step.roles)


@functools.cache
def all_steps() -> tuple[Step, ...]:
    return steps_of(all_lessons())


@functools.cache
def step_names() -> tuple[str, ...]:
    """Every step id the probes may emit; the index is its STEP_<NAME> define."""
    return tuple(step.name for step in all_steps())


def step(name: str) -> Step | None:
    return next((candidate for candidate in all_steps() if candidate.name == name), None)


def steps_with_role(role: str) -> frozenset[str]:
    return frozenset(candidate.name for candidate in all_steps() if role in candidate.roles)


def step_defines() -> list[str]:
    return [f"-DSTEP_{name.upper()}={index}" for index, name in enumerate(step_names())]


def step_payloads() -> dict[str, Payload]:
    return {candidate.name: candidate.payload for candidate in all_steps() if candidate.payload}


@functools.cache
def payload_members() -> tuple[Payload, ...]:
    """The members of union syspath_payload, each once, in declaration order."""
    members: dict[str, Payload] = {}
    for payload in step_payloads().values():
        known = members.setdefault(payload.member, payload)
        if known.struct != payload.struct:
            raise SyspathError(f"payload member {payload.member!r} is declared with two structs")
    return tuple(members.values())


@functools.cache
def event_layout() -> EventLayout:
    return EventLayout.of(payload.struct for payload in payload_members())


def payload_header_text() -> str:
    """The C the probes compile before probes/event.h: each lesson's payload structs, then
    the union of them (probes/event.h names it)."""
    includes = [f'#include "{each.package}/{each.payload_header}"' for each in all_lessons() if each.payload_header]
    members = [f"    struct {payload.struct.name} {payload.member};" for payload in payload_members()]
    return "\n".join([*includes, "union syspath_payload {", *members, "};", ""])


@functools.cache
def path_points() -> tuple[PathPoint, ...]:
    """Every lesson's path points; the index is the point's id."""
    return tuple(point for each in all_lessons() for point in each.path_points)


def path_point(tracepoint: str) -> PathPoint | None:
    return next((point for point in path_points() if point.tracepoint == tracepoint), None)


@functools.cache
def fields() -> dict[str, FieldRequest]:
    merged: dict[str, FieldRequest] = {}
    for each in all_lessons():
        for define, request in each.fields.items():
            if merged.setdefault(define, request) != request:
                raise SyspathError(f"lessons read field {define} two ways")
    return merged


def spans() -> dict[str, tuple[str, ...]]:
    return {prefix: names for each in all_lessons() for prefix, names in each.spans.items()}


def cast_types() -> dict[str, str]:
    return {cast: name for each in all_lessons() for cast, name in each.cast_types.items()}


def detail_shapes() -> dict[str, Shape]:
    return {key: shape for each in all_lessons() for key, shape in each.detail_shapes.items()}


def renamed() -> dict[str, str]:
    return {old: new for each in all_lessons() for old, new in each.renamed.items()}


@dataclass(frozen=True)
class ProgramFiles:
    """What a session compiles: probes/ files (paths relative to probes/) and the fork hooks."""

    files: tuple[str, ...]
    fork_hooks: tuple[str, ...]


def program_files(chosen: Sequence[Lesson], choices: Sequence[HookChoice], with_paths: bool) -> ProgramFiles:
    on_syscall = {c.step for c in choices if c.tier == "syscall"}
    on_function = {c.step for c in choices if c.tier in FUNCTION_TIERS}
    files: list[str] = []
    hooks: list[str] = []
    for each in chosen:
        own = {s.name for s in each.steps}
        if own & (on_syscall | on_function):
            files += [f"{each.package}/{name}" for name in each.files]
        if own & on_syscall:
            files += [f"{each.package}/{name}" for name in each.syscall_files]
        if own & on_function:
            files += [f"{each.package}/{name}" for name in each.function_files]
        if with_paths and each.path_file and own & on_syscall:
            files.append(f"{each.package}/{each.path_file}")
        if each.fork_hook and own & (on_syscall | on_function):
            hooks.append(each.fork_hook)
    return ProgramFiles(tuple(dict.fromkeys(files)), tuple(hooks))


def lesson_defines(chosen: Sequence[Lesson], choices: Sequence[HookChoice]) -> list[str]:
    return [flag for each in chosen for flag in each.defines(choices)]


def probes_folder(each: Lesson) -> str:
    return str(probes_dir() / each.package)


def decoder(hooks: dict[str, str], refcount_bias: int, other_steps: dict[int, tuple[str, str]] | None = None,
            symbol: Callable[[int], str | None] | None = None) -> Decoder:
    """A decoder of the probes' records, knowing every lesson's step ids and payloads."""
    readers: dict[str, DetailReader] = {name: (payload.struct.layout.unpack_from, payload.decode)
                                        for name, payload in step_payloads().items()}
    released = steps_with_role(RELEASES_FILE)
    made = Decoder(step_names(), hooks, refcount_bias, event_layout(), readers, other_steps or {},
                   released_steps=released)
    return made if symbol is None else replace(made, symbol=symbol)
