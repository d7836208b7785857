"""One preflight for every command that loads probes: what must hold before anything is tried.

Each failure is one line saying what is wrong and how to fix it (SyspathError, exit 2).
"""
from __future__ import annotations

from pathlib import Path

from tracer import kernel


def preflight(btf: bool = True) -> Path:
    """Root, bcc, (BTF,) a headers tree for bcc: returns the headers tree in use."""
    kernel.require_root()
    kernel.require_bcc()
    if btf:
        kernel.require_btf()
    return kernel.use_headers()
