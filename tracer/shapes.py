"""The shapes of event detail fields: the one table the recording's reader
(tracer/recording.py) checks them against."""
from __future__ import annotations

from typing import Any

_TEXT = (str, type(None))
_NUMBER = (int, type(None))
# The detail fields the views read, by shape: a type tuple, or ("list"|"dict", type tuple)
# for the items or values. Fields not listed are shown as they are.
DETAIL_SHAPES: dict[str, Any] = {
    **dict.fromkeys(("flags", "vm_flags", "prot"), ("list", (str,))),
    **dict.fromkeys(("index", "count", "depth"), (int,)),         # computed with, never null
    **dict.fromkeys(("child_tid", "child_tgid", "length", "scm_rights",
                     "vmas_in_file_tree", "pgoff", "sig", "target_tid", "pfn"), _NUMBER),
    **dict.fromkeys(("address", "vma", "sock", "peer", "name", "kind", "s_magic", "vm_file", "entry",
                     "file_kind", "file_name", "f_op", "skb", "addr", "copy"), _TEXT),
    "shared": ("dict", (bool,)), "parent": ("dict", _TEXT), "child": ("dict", _TEXT), "users": ("dict", _NUMBER),
}
