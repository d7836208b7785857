"""Text from the traced program or a recording is shown, never obeyed."""
from __future__ import annotations

import io

from rich.text import Text

from tracer.events import kernel_text
from tracer.text import console, printable, printable_tree

TITLE_SEQUENCE = "\x1b]0;OWNED\x07[red]"


def test_control_characters_become_visible_escapes() -> None:
    assert printable(TITLE_SEQUENCE) == "\\e]0;OWNED\\x07[red]"
    assert printable("a\nb\tc\rd\x9b") == "a\\nb\\tc\\rd\\x9b"
    assert printable("bidi\u202etxt.exe") == "bidi\\u202etxt.exe"


def test_safe_text_is_unchanged_and_backslashes_stay_unambiguous() -> None:
    assert printable("syspath-demo é") == "syspath-demo é"
    assert printable("a\\e") == "a\\\\e"          # a literal backslash-e is not an escape


def test_kernel_strings_are_cut_at_nul_and_escaped() -> None:
    assert kernel_text(b"\x1b[2Jname\0garbage") == "\\e[2Jname"


def test_recording_values_and_keys_are_escaped() -> None:
    assert printable_tree({"comm": "x\x1b", "detail": {"k\n": ["\x07", 1, None]}}) == \
        {"comm": "x\\e", "detail": {"k\\n": ["\\x07", 1, None]}}


def test_markup_in_a_plain_string_stays_literal() -> None:
    screen = console(file=io.StringIO(), width=80, record=True)
    screen.print("[red]comm[/red]")
    screen.print(Text("[bold]x"))
    assert screen.export_text().splitlines() == ["[red]comm[/red]", "[bold]x"]
