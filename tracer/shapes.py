"""The shapes of event detail fields: the one table the recording's reader
(tracer/recording.py) checks them against. The core's fields here; each lesson adds the
fields of its own steps (lesson.py detail_shapes)."""
from __future__ import annotations

import functools
from typing import Any

_TEXT = (str, type(None))
# The detail fields the views read, by shape: a type tuple, or ("list"|"dict", type tuple)
# for the items or values. Fields not listed are shown as they are.
CORE_SHAPES: dict[str, Any] = {
    "depth": (int,),                                                 # computed with, never null
    **dict.fromkeys(("file_kind", "file_name", "f_op"), _TEXT),      # tracer/events.py file_identity
}


@functools.cache
def detail_shapes() -> dict[str, Any]:
    from tracer import lessons

    return {**lessons.detail_shapes(), **CORE_SHAPES}
