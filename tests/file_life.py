"""The events of one struct file's life, read from a recording.

A struct file's address names it only while it lives: once freed, the slab hands the same
address to the next file. A program that maps ld.so.cache and closes it, then calls
memfd_create, often gets its memfd at ld.so.cache's old address, so "events naming this
pointer" is not "events of this file" (syspath's findings split lives the same way:
tracer/findings.py FileLife).
"""
from __future__ import annotations

from tracer.scenarios.memfd_share.story import BIRTH_STEPS


def file_life(records: list[dict], born: dict) -> list[dict]:
    """The events naming `born`'s file during the life `born` is part of, in time order. A birth
    step starts a new life when the current one has had that step already, or has events
    and no birth at all; fput ends one. Births nest (memfd_create > shmem_file_setup >
    alloc_file_pseudo) and their order depends on the tier (entry or return time)."""
    named = sorted((r for r in records if r["type"] == "event" and r["file"] == born["file"]),
                   key=lambda r: r["ts_ns"])
    lives: list[list[dict]] = [[]]
    births: set[str] = set()
    for event in named:
        life = lives[-1]
        step = event["step"]
        if step in BIRTH_STEPS and life and (step in births or not births):
            lives.append([])
            births = set()
        lives[-1].append(event)
        if step in BIRTH_STEPS:
            births.add(step)
        elif step == "fput":
            lives.append([])
            births = set()
    return next(life for life in lives if born in life)


def life_events(records: list[dict], born: dict, step: str, tgid: int | None = None) -> list[dict]:
    return [e for e in file_life(records, born) if e["step"] == step and tgid in (None, e["tgid"])]
