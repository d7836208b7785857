"""The source article's sender and receiver, written in C, traced with `syspath trace --`:
the receiver's PROT_READ, MAP_PRIVATE mapping of the sender's struct file is in the trace,
and the same physical page is behind both mappings."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.file_life import life_events
from tests.live.conftest import REPO, read_jsonl, run_syspath
from tests.live.test_explore import public_dir  # noqa: F401  (the fixture)

PROGRAMS = Path(__file__).parent / "programs"


@pytest.fixture(scope="module")
def recording(public_dir: Path) -> list[dict]:  # noqa: F811 (the fixture imported above)
    work = public_dir
    gcc = shutil.which("gcc")
    if gcc is None:
        pytest.fail("gcc is needed to build the article's C programs (make test installs it)")
    for name in ("article_sender", "article_receiver"):
        subprocess.run([gcc, "-O2", "-Wall", "-Werror", "-o", str(work / name), str(PROGRAMS / f"{name}.c")],
                       check=True)
    sock = work / "channel.sock"
    path = work / "article.jsonl"
    script = f"{work / 'article_receiver'} {sock} & {work / 'article_sender'} {sock}; wait"
    done = run_syspath("trace", "--no-live", "--record", str(path), "--", "sh", "-c", script)
    assert done.returncode == 0, done.stderr
    assert "reads 'hello from the article's sender'" in done.stdout
    return read_jsonl(path)


def test_receiver_maps_the_senders_struct_file_privately(recording: list[dict]) -> None:
    evs = [r for r in recording if r["type"] == "event"]
    [created] = [e for e in evs if e["step"] == "memfd_create"]
    # the name is in the binary's .rodata, not yet faulted in at the syscall's entry
    assert created["detail"]["name"] == "article_memfd" and created["detail"]["file_kind"] == "memfd"
    [received] = [e for e in evs if e["step"] == "receive_fd"]
    assert received["file"] == created["file"] and received["tgid"] != created["tgid"]
    # the receiver may have mapped ld.so.cache from this very address before: the file's life only
    [mapped] = life_events(recording, created, "do_mmap", received["tgid"])
    assert "MAP_PRIVATE" in mapped["detail"]["flags"] and "VM_SHARED" not in mapped["detail"]["vm_flags"]
    assert mapped["detail"]["vm_file"] == created["file"]


def test_both_mappings_show_the_same_physical_page(recording: list[dict]) -> None:
    evs = [r for r in recording if r["type"] == "event"]
    [created] = [e for e in evs if e["step"] == "memfd_create"]
    pages = life_events(recording, created, "page")
    by_process = {e["tgid"]: e["detail"]["pfn"] for e in pages if e["detail"]["file_page"]}
    # the sender's shared mapping and the receiver's private one, before it writes: one frame
    assert len(by_process) == 2 and len(set(by_process.values())) == 1 and created["tgid"] in by_process
    mapped = {e["tgid"]: e["detail"]["address"] for e in life_events(recording, created, "do_mmap")}
    assert {e["tgid"]: e["detail"]["addr"] for e in pages} == mapped


def test_a_pipe_and_a_regular_file_passed_are_shared_struct_files(public_dir: Path) -> None:  # noqa: F811
    program = public_dir / "pass_files"
    subprocess.run([shutil.which("gcc") or "gcc", "-O2", "-Wall", "-Werror", f"-I{REPO / 'bench'}", "-o", str(program),
                    str(PROGRAMS / "pass_files.c")], check=True)
    shared = public_dir / "shared.txt"
    shared.write_text("a line from a regular file\n")
    shared.chmod(0o644)
    path = public_dir / "pass_files.jsonl"
    done = run_syspath("trace", "--no-live", "--record", str(path), "--", str(program), str(shared))
    assert done.returncode == 0, done.stderr
    assert "parent read back from the pipe: a line from a regular file" in done.stdout
    evs = [r for r in read_jsonl(path) if r["type"] == "event"]
    sent = {e["detail"]["file_kind"]: e for e in evs if e["step"] == "scm_fp_copy"}
    assert set(sent) == {"pipe", "regular"} and sent["regular"]["detail"]["file_name"] == "shared.txt"
    for kind, passed in sent.items():
        [received] = [e for e in evs if e["step"] == "receive_fd" and e["file"] == passed["file"]]
        assert received["tgid"] != passed["tgid"] and received["detail"]["file_kind"] == kind
        [flight] = [e for e in evs if e["step"] == "in_flight" and e["file"] == passed["file"]]
        assert flight["detail"]["sock"] == received["detail"]["sock"]
    # the findings tell both as one struct file in two processes, with what each file is
    assert "it is a pipe 'pipe:[" in done.stdout and "it is a regular 'shared.txt'" in done.stdout
    assert done.stdout.count("in 2 processes:") == 2
