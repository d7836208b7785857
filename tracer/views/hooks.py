"""What this kernel allows, said once, then one short line per step.

The session header's reasons repeat each tier's refusal for every step (the catalog
writes them whole, for `syspath probes`). Each entry also carries its parts (reads,
not_used, tiers_out): the tier notes go into one kernel line, each step keeps its hook,
its status and what the hook reads. Recordings made before those parts existed have
only the reason, which is taken apart as it was written then.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from tracer.views.timeline import short_hook

_FALLBACK = re.compile(r"^\S+ is not hooked as a function here(?: \((?P<why>.*)\))?; "
                       r"observed at \S+: (?P<reads>.*?)(?: \[not used: (?P<unused>.*)\])?$")
_TIER_NOTE = re.compile(r"(?:^|; )(?P<tier>\w+) tier: (?P<why>.*?)(?=; \w+ tier: |$)")
TRACEPOINT_PREFIXES = ("tracepoint:", "raw_tracepoint:")


@dataclass(frozen=True)
class HookLine:
    step: str
    hook: str           # short form (tp:sys_exit_mmap), "-" when the step is not observed
    status: str
    reads: str          # what the hook reads, or why nothing can stand for the step


def hook_line(record: dict[str, Any]) -> HookLine:
    reason = str(record.get("reason", ""))
    status = str(record.get("status", ""))
    hook = str(record.get("hook") or "")
    reads = reason
    if status != "unavailable" and isinstance(record.get("reads"), str) and record["reads"]:
        reads = record["reads"]
    elif status == "fallback" and (match := _FALLBACK.match(reason)):
        reads = match["reads"]
    elif status == "unavailable":
        refused = record.get("not_used")
        first = refused[0] if isinstance(refused, list) and refused and isinstance(refused[0], list) else None
        reads = "no hook on this kernel can stand for it" + (f": {first[-1]}" if first else "")
    return HookLine(str(record.get("step", "")), short_hook(hook) if hook else "-", status, reads)


def tier_notes(header: dict[str, Any]) -> dict[str, str]:
    """tier -> why it is out, gathered from every step's reason (the first wording kept)."""
    notes: dict[str, str] = {}
    for record in header.get("hooks", []):
        tiers_out = record.get("tiers_out")
        if isinstance(tiers_out, dict):
            for tier, why in tiers_out.items():
                notes.setdefault(str(tier), str(why))
            continue
        for text in _tier_texts(record):
            for match in _TIER_NOTE.finditer(text):
                notes.setdefault(match["tier"], match["why"])
    return notes


def _tier_texts(record: dict[str, Any]) -> list[str]:
    reason = str(record.get("reason", ""))
    if record.get("status") == "unavailable":
        return [reason]
    match = _FALLBACK.match(reason)
    return [text for text in (match["why"], match["unused"]) if text] if match else []


def brief(why: str) -> str:
    """"no kprobes: tracefs has no kprobe_events (create_probe_event: ...)" -> without the parenthesis."""
    return why.split(" (", 1)[0].strip()


def verdict(header: dict[str, Any]) -> str:
    hooks = [str(h.get("hook") or "") for h in header.get("hooks", []) if h.get("status") != "unavailable"]
    at_tracepoints = sum(hook.startswith(TRACEPOINT_PREFIXES) for hook in hooks)
    if hooks and at_tracepoints == len(hooks):
        return "every step seen at tracepoints"
    if not at_tracepoints:
        return "every step hooked as a kernel function"
    return f"{len(hooks) - at_tracepoints} steps hooked as functions, {at_tracepoints} at tracepoints"


def kernel_line(header: dict[str, Any]) -> str:
    """One line: what this kernel refused, and what the steps were seen at therefore."""
    notes = tier_notes(header)
    refused = "; ".join(f"{tier} tier: {brief(why)}" for tier, why in notes.items())
    return f"{refused} -> {verdict(header)}" if refused else verdict(header)


def session_title(header: dict[str, Any]) -> str:
    what = header.get("scenario") or " ".join(header.get("command") or [])
    return f"syspath {what}  kernel {header.get('kernel')}  mode {header.get('mode')}"
