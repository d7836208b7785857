"""README's kernels table, and tests/unit/kernels/<release>.json, from a matrix run's files.

    python tests/vm/matrix_table.py .vm-out/matrix README.md tests/unit/kernels

Each cell is what the guest's session header said: the hook that stood for the step, or
why none could. Nothing here is typed by hand: a kernel that was not booted has no row.
"""
from __future__ import annotations

import json
import re
import shutil
import sys
from pathlib import Path

START, END = "<!-- kernels-table:start -->", "<!-- kernels-table:end -->"
TIERS = ("kprobe", "fentry", "syscall")
COLUMNS = (("memfd-share", "memfd_create"), ("memfd-share", "shmem_file_setup"), ("memfd-share", "do_mmap"),
           ("memfd-share", "unix_stream_sendmsg"), ("memfd-share", "scm_fp_copy"), ("memfd-share", "in_flight"),
           ("memfd-share", "receive_fd"), ("fork-vs-thread", "clone"), ("fork-cow", "mm_copy"),
           ("fork-cow", "cow_fault"))
LESSONS = tuple(dict.fromkeys(lesson for lesson, _ in COLUMNS))


def short(text: str, width: int = 70) -> str:
    text = re.sub(r"\s+", " ", text).replace("|", "/")
    return text if len(text) <= width else text[: width - 1] + "…"


def cell(hook: dict) -> str:
    if hook["status"] == "unavailable" or not hook["hook"]:
        refused = hook.get("not_used") or []         # the kernel's first refusal, without the hook's name
        return "none: " + short(refused[0][1] if refused else hook["reason"], 90)
    mark = " (fallback)" if hook["status"] == "fallback" else ""
    return f"`{hook['hook']}`{mark}"


def session(directory: Path, lesson: str, mode: str) -> dict | None:
    path = directory / f"{lesson}-{mode}.jsonl"
    if not path.exists() or not path.read_text().strip():
        return None
    return json.loads(path.read_text().splitlines()[0])


def rows(directory: Path) -> list[list[str]]:
    release = (directory / "release").read_text().strip()
    machine = (directory / "machine").read_text().strip()
    tiers = json.loads((directory / "facts.json").read_text())["tiers"]
    out = []
    for mode in TIERS:
        row = [release, machine, mode]
        if tiers.get(mode):
            row += ["tier refused: " + short(tiers[mode], 110)] + [""] * (len(COLUMNS) - 1) + ["—"]
            out.append(row)
            continue
        results = []
        for lesson in LESSONS:
            if not (directory / f"{lesson}-{mode}.rc").exists():
                continue
            rc = (directory / f"{lesson}-{mode}.rc").read_text().strip()
            seconds = (directory / f"{lesson}-{mode}.seconds")
            took = f" {seconds.read_text().strip()} s" if seconds.exists() else ""
            results.append(f"{lesson}: {'ok' if rc == '0' else 'exit ' + rc}{took}")
        for lesson, step in COLUMNS:
            header = session(directory, lesson, mode)
            hooks = {h["step"]: h for h in (header or {}).get("hooks", [])}
            if step in hooks:
                row.append(cell(hooks[step]))
            else:                          # the run stopped before its session line: its own last words
                said = (directory / f"{lesson}-{mode}.out")
                last = said.read_text().strip().splitlines()[-1:] if said.exists() else []
                row.append("no session: " + short(last[0] if last else "no output", 90))
        row.append("; ".join(results))
        out.append(row)
    return out


def boots(matrix: Path) -> list[str]:
    lines = []
    for directory in sorted(matrix.iterdir()):
        vm = directory / "vm.json"
        if vm.exists() and (directory / "release").exists():
            facts = json.loads(vm.read_text())
            lines.append(f"- {directory.name} ({(directory / 'release').read_text().strip()}): booted in "
                         f"{facts['boot_s']:.0f} s, whole run (every lesson, three tiers) {facts['total_s']:.0f} s "
                         f"under {facts['accel'].upper()}")
    return lines


def table(matrix: Path) -> str:
    head = ["kernel", "arch", "tier", *(step for _, step in COLUMNS), "lessons' kernel-fact checks"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for directory in sorted(matrix.iterdir()):
        if (directory / "facts.json").exists():
            lines += ["| " + " | ".join(row) + " |" for row in rows(directory)]
    return "\n".join([*lines, "", *boots(matrix)])


def write_readme(readme: Path, text: str) -> None:
    body = readme.read_text()
    block = f"{START}\n{text}\n{END}"
    if START in body:
        body = re.sub(re.escape(START) + r".*?" + re.escape(END), lambda _: block, body, flags=re.S)
    else:
        body = body.replace("## Troubleshooting", f"## Kernels\n\n{block}\n\n## Troubleshooting", 1)
    readme.write_text(body)


def save_facts(matrix: Path, kernels: Path) -> list[Path]:
    saved = []
    for facts in sorted(matrix.glob("*/facts.json")):
        release = json.loads(facts.read_text())["release"]
        target = kernels / f"{release}.json"
        shutil.copyfile(facts, target)
        saved.append(target)
    return saved


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    matrix, readme, kernels = map(Path, argv)
    if not matrix.is_dir():
        print(f"matrix_table: no {matrix}: run make test-matrix first", file=sys.stderr)
        return 2
    write_readme(readme, table(matrix))
    for path in save_facts(matrix, kernels):
        print(f"matrix_table: saved {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
