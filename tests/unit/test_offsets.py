"""The probes' field offsets on this kernel, from BTF, agree with bpftool's reading
(tests/unit/test_btf.py compares the reader itself member by member)."""
from __future__ import annotations

from pathlib import Path

import pytest

from tracer.offsets import FIELDS, load_layout

BTF = Path("/sys/kernel/btf/vmlinux")


@pytest.mark.skipif(not BTF.exists(), reason="this kernel exposes no BTF")
def test_every_probe_field_resolves_with_the_expected_size(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    layout = load_layout()
    assert set(layout.members) == set(FIELDS)
    assert layout.refcount_bias == (1 if layout.members["FILE_REF"].path == "f_ref" else 0)
    flags = layout.cflags()
    assert "-DCMSG_DATA_OFFSET=16" in flags
    assert all(flag.startswith("-D") and flag.split("=")[1].isdigit() for flag in flags)
