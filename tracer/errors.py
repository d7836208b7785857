"""Errors meant for people: one line, what is wrong and how to fix it."""
from __future__ import annotations


class SyspathError(Exception):
    """A usage or environment problem: printed as one line, exit code 2."""

    exit_code = 2
