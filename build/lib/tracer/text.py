"""Text that comes from outside syspath: the traced program, the kernel, a recording.

A traced program chooses its own comm (prctl PR_SET_NAME), memfd names, paths and
output; a recording may come from anyone. Such text is shown, never obeyed: control
characters become visible escapes (as strace prints them), so nothing reaches the
terminal as an escape sequence. Rich markup is switched off in every console syspath
makes (tracer.text.console), so `[red]` in a comm stays literal.
"""
from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console

# C0 and C1 controls, DEL, and the Unicode line/paragraph separators and bidi overrides
_UNSAFE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_NAMED = {"\n": "\\n", "\t": "\\t", "\r": "\\r", "\x1b": "\\e"}


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    named = _NAMED.get(char)
    if named:
        return named
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text: str) -> str:
    """`text` with every control character written as an escape; safe text is returned as is."""
    if text.isprintable() and "\\" not in text:
        return text
    return _UNSAFE.sub(_escape, text.replace("\\", "\\\\"))


def map_strings(value: Any, change: Callable[[str], str]) -> Any:
    """`change` applied to every string inside a JSON value, keys included."""
    if isinstance(value, str):
        return change(value)
    if isinstance(value, list):
        return [map_strings(item, change) for item in value]
    if isinstance(value, dict):
        return {change(str(key)): map_strings(item, change) for key, item in value.items()}
    return value


def printable_tree(value: Any) -> Any:
    """printable() applied to every string inside a JSON value (a program's report line)."""
    return map_strings(value, printable)


def console(**options: Any) -> Console:
    """A rich Console that never reads markup or highlights in plain strings. (rich is imported
    here, not with the module: the plain path does not need it before the probes are on.)"""
    from rich.console import Console

    return Console(markup=False, highlight=False, emoji=False, **options)
