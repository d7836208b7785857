"""The events of one struct file's life, read from a recording.

A struct file's address names it only while it lives: once freed, the slab hands the same
address to the next file. A program that maps ld.so.cache and closes it, then calls
memfd_create, often gets its memfd at ld.so.cache's old address, so "events naming this
pointer" is not "events of this file" (syspath's findings split lives the same way:
tracer/findings.py FileLife).
"""
from __future__ import annotations

BIRTH_STEPS = ("memfd_create", "shmem_file_setup", "alloc_file_pseudo")


def file_life(records: list[dict], born: dict) -> list[dict]:
    """The events naming `born`'s file from its birth (the births nested in it included) until
    the next birth at that address, in time order."""
    named = sorted((r for r in records if r["type"] == "event" and r["file"] == born["file"]),
                   key=lambda r: r["ts_ns"])
    at = named.index(born)
    start = at
    while start > 0 and named[start - 1]["step"] in BIRTH_STEPS and named[start - 1]["tgid"] == born["tgid"]:
        start -= 1
    end = next((i for i in range(at + 1, len(named)) if named[i]["step"] in BIRTH_STEPS), len(named))
    return named[start:end]


def life_events(records: list[dict], born: dict, step: str, tgid: int | None = None) -> list[dict]:
    return [e for e in file_life(records, born) if e["step"] == step and tgid in (None, e["tgid"])]
