"""--no-live at a terminal: prose folded to its width, rows and words left whole."""
from __future__ import annotations

import pytest

from tests.unit.test_stories import STORIES, told
from tracer.views.plain import fitted

FIXTURES = ("memfd-share-inside.jsonl", "fork-vs-thread-claims.jsonl", "fork-cow.jsonl")


@pytest.mark.parametrize("fixture", FIXTURES)
@pytest.mark.parametrize("width", [80, 100])
def test_no_prose_line_is_wider_than_the_terminal(fixture: str, width: int) -> None:
    lines = told(STORIES / fixture).text.splitlines()
    assert any(len(line) > width for line in lines)        # the recording's prose needs folding
    folded = fitted(lines, width)
    too_wide = [line for line in folded if len(line) > width and " " in line.strip()]
    assert not too_wide
    assert " ".join(folded).split() == " ".join(lines).split()     # no word lost, none split


def test_rows_and_pipes_are_left_as_they_are() -> None:
    row = "\t".join(["1.000", "sender[1]", "memfd_create", "x" * 90])
    assert fitted([row], 80) == [row]
    long = "why memfd_create in sender: " + "word " * 40
    assert fitted([long], None) == [long]
    first, *rest = fitted(["  " + long], 40)
    assert first.startswith("  why") and all(line.startswith("    ") for line in rest)
