"""Kernel facts that hook resolution depends on, from the running kernel or a saved file.

Resolution (tracer.catalog) must be testable against kernels other than the one
the tests run on, so the handful of facts it reads are gathered here into one
record that can be saved as JSON and loaded again:

    sudo python3 -m tracer.facts facts-$(uname -r).json

tests/unit/kernels/ holds such files for this project's machines and a distro kernel.
"""
from __future__ import annotations

import functools
import json
import os
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

from tracer import catalog, kernel, lessons
from tracer.btf import Btf
from tracer.catalog import KernelView
from tracer.preflight import preflight


@dataclass(frozen=True)
class KernelFacts:
    release: str
    machine: str
    symbols: dict[str, str]                    # function -> the kallsyms name (maybe a .isra clone)
    functions: dict[str, list[str]]            # BTF FUNC -> parameter names, in order
    traceable: list[str] | None                # of the asked names, those ftrace can hook; None: unreadable
    tracepoints: list[str]                     # "category/name"
    tiers: dict[str, str] = field(default_factory=dict)   # tier -> "" when usable, else why not

    def symbol(self, name: str) -> str | None:
        return self.symbols.get(name)

    def params(self, name: str) -> list[str] | None:
        return self.functions.get(name)

    def is_traceable(self, name: str) -> bool | None:
        return None if self.traceable is None else name in self.traceable

    def has_tracepoint(self, category: str, name: str) -> bool:
        return f"{category}/{name}" in self.tracepoints

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self), indent=1, sort_keys=True) + "\n")

    @classmethod
    def load(cls, path: Path) -> KernelFacts:
        return cls(**json.loads(path.read_text()))


def _base_names(symbol: str) -> tuple[str, ...]:
    base = kernel.clone_base(symbol)
    return (symbol, base) if base else (symbol,)


def _param_names(btf: Btf, function: str) -> list[str] | None:
    found = btf.func_params(function)
    return None if found is None else [param for param, _type in found]


def traceable_functions(names: set[str], path: Path | None = None) -> list[str] | None:
    """Which of `names` ftrace lists as hookable; None where the list cannot be read
    (lockdown makes available_filter_functions EPERM even for root)."""
    if path is None:
        tracefs = kernel.tracefs_dir()
        if tracefs is None:
            return None
        path = tracefs / "available_filter_functions"
    try:
        with path.open() as lines:
            listed = {name for line in lines if line.strip() for name in _base_names(line.split()[0])}
    except OSError:
        return None
    return sorted(names & listed)


@dataclass(frozen=True)
class Sources:
    """Where the facts are read from: the running kernel, or files copied out of another."""

    release: str
    machine: str
    kallsyms: Path = kernel.KALLSYMS_PATH
    btf: Path = kernel.BTF_PATH
    traceable: Path | None = None              # None: tracefs's available_filter_functions
    tracepoints: set[str] | None = None        # None: ask tracefs


def capture(functions: set[str], tracepoints: set[str], tiers: dict[str, str],
            sources: Sources | None = None) -> KernelFacts:
    """The facts about `functions` and `tracepoints` on one kernel."""
    sources = sources or Sources(kernel.release(), os.uname().machine)
    with sources.kallsyms.open() as lines:
        names = kernel.parse_kallsyms(lines)
    btf = Btf.load(str(sources.btf)) if sources.btf.exists() else None
    symbols = {name: names[name] for name in sorted(functions) if name in names}
    params = {name: found for name in sorted(functions)
              if btf and (found := _param_names(btf, name)) is not None}
    if sources.tracepoints is None:
        present = sorted(tp for tp in tracepoints if kernel.has_tracepoint(*tp.split("/")))
    else:
        present = sorted(tracepoints & sources.tracepoints)
    return KernelFacts(sources.release, sources.machine, symbols, params,
                       traceable_functions(functions, sources.traceable), present, tiers)


def live_view(tiers: dict[str, str]) -> KernelView:
    """Resolution's view of the running kernel; BTF and ftrace are read only if asked."""
    @functools.cache
    def btf() -> Btf:
        return Btf.load()

    @functools.cache
    def traceable() -> set[str] | None:
        found = traceable_functions(catalog.all_functions(lessons.all_steps()))
        return None if found is None else set(found)

    def params(name: str) -> list[str] | None:
        return _param_names(btf(), name)

    def is_traceable(name: str) -> bool | None:
        listed = traceable()
        return None if listed is None else name in listed

    @functools.cache
    def symbols() -> dict[str, str]:
        return kernel.function_symbols(catalog.all_functions(lessons.all_steps()))

    def symbol(name: str) -> str | None:
        return symbols().get(name)

    return KernelView(tiers, symbol, params, is_traceable, kernel.has_tracepoint, kernel.release(),
                      os.uname().machine)


def saved_view(facts: KernelFacts) -> KernelView:
    return KernelView(facts.tiers, facts.symbol, facts.params, facts.is_traceable, facts.has_tracepoint,
                      facts.release, facts.machine)


def tiers_of(capabilities: dict[str, kernel.Capability]) -> dict[str, str]:
    """Tier -> "" when usable, else the kernel's own reason (from `doctor`'s tries)."""
    tiers = {"kprobe": capabilities["kprobe"], "fentry": capabilities["fentry"],
             "syscall": capabilities["tracepoint"]}
    return {tier: "" if cap.available else cap.detail for tier, cap in tiers.items()}


def main(argv: list[str]) -> int:
    """Save the running kernel's facts; or, with --from DIR, those of files copied from
    another kernel (DIR/kallsyms, btf, traceable, tracepoints, release, tiers.json)."""
    if len(argv) == 3 and argv[0] == "--from":
        source = Path(argv[1])
        listed = {line.strip() for line in (source / "tracepoints").read_text().splitlines() if "/" in line}
        traceable = source / "traceable"
        sources = Sources((source / "release").read_text().strip(), "x86_64", source / "kallsyms",
                          source / "btf", traceable if traceable.stat().st_size else Path("/nonexistent"),
                          listed)
        tiers = json.loads((source / "tiers.json").read_text())
        out = Path(argv[2])
    elif len(argv) == 1:
        preflight(btf=False)
        sources, tiers, out = None, tiers_of(kernel.probe_capabilities()), Path(argv[0])
    else:
        print("usage: sudo python3 -m tracer.facts [--from DIR] OUT.json", file=sys.stderr)
        return 2
    steps = lessons.all_steps()
    facts = capture(catalog.all_functions(steps) | catalog.raw_protos(steps), catalog.all_tracepoints(steps), tiers,
                    sources)
    facts.save(out)
    print(f"facts for {facts.release}: {len(facts.symbols)} symbols, {len(facts.functions)} BTF functions, "
          f"{len(facts.tracepoints)} tracepoints -> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
