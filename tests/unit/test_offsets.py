"""The probes' field offsets on this kernel, from BTF, agree with bpftool's reading
(tests/unit/test_btf.py compares the reader itself member by member)."""
from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from tracer import lessons
from tracer.offsets import FIELDS, load_layout
from tracer.resources import probes_dir

BTF = Path("/sys/kernel/btf/vmlinux")


@pytest.mark.skipif(not BTF.exists(), reason="this kernel exposes no BTF")
def test_every_probe_field_resolves_with_the_expected_size(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    layout = load_layout()
    assert set(layout.members) == set(FIELDS) | set(lessons.fields())
    # each is read by some probe, in the core's files or its lesson's: none is resolved for nothing
    probes = "".join(path.read_text() for path in probes_dir().rglob("*.[ch]"))
    assert {name for name in layout.members if not re.search(rf"\b{name}\b", probes)} == set()
    # Linux 6.13 made struct file's count a file_ref_t, which stores the count less one
    # (include/linux/file_ref.h FILE_REF_ONEREF is 0): the bias follows from the running kernel's
    # version, not from the member the reader picked (the live tests see a new memfd read as 1)
    major, minor = (int(part) for part in re.match(r"(\d+)\.(\d+)", os.uname().release).groups())   # type: ignore[union-attr]
    assert layout.refcount_bias == (1 if (major, minor) >= (6, 13) else 0)
    flags = layout.cflags()
    assert "-DCMSG_DATA_OFFSET=16" in flags
    assert all(flag.startswith("-D") and flag.split("=")[1].isdigit() for flag in flags)
