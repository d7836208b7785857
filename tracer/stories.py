"""The lessons' stories: each lesson the registry knows (tracer/lessons.py) that has a
scenarios/<package>/story.py (`model()`) and views.py (`view()`). The one place the core
reaches into the lessons for them; it names none.
"""
from __future__ import annotations

import functools
import importlib
from typing import Any, cast

from tracer.resources import SCENARIOS_PACKAGE, bind_scenarios_package, scenario_dir
from tracer.story import Story, StoryModel, StoryView

PACKAGE = SCENARIOS_PACKAGE


@functools.cache
def story_folders() -> tuple[str, ...]:
    """The packages of the lessons that tell a story (a story.py and a views.py), in the registry's order."""
    from tracer import lessons

    folder = scenario_dir()
    def tells(package: str) -> bool:
        return (folder / package / "story.py").is_file() and (folder / package / "views.py").is_file()

    return tuple(lesson.package for lesson in lessons.all_lessons() if tells(lesson.package))


def _module(folder: str, name: str) -> Any:
    bind_scenarios_package()
    return importlib.import_module(f"{PACKAGE}.{folder}.{name}")


def lesson_stories() -> list[Story]:
    """A fresh story per lesson, each its model and its view."""
    from tracer import lessons

    steps = {lesson.package: frozenset(step.name for step in lesson.steps) for lesson in lessons.all_lessons()}
    stories = []
    for folder in story_folders():
        model = cast(StoryModel, _module(folder, "story").model())
        view = cast(StoryView, _module(folder, "views").view())
        stories.append(Story(folder, model, view, steps[folder]))
    return stories


@functools.cache
def lesson_views() -> tuple[StoryView, ...]:
    """The lessons' renderers alone (they keep no state): for an event's text and style."""
    return tuple(cast(StoryView, _module(folder, "views").view()) for folder in story_folders())
