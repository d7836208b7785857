"""The source article's sender and receiver, written in C, traced with `syspath trace --`:
the receiver's PROT_READ, MAP_PRIVATE mapping of the sender's struct file is in the trace."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.live.conftest import read_jsonl, run_syspath
from tests.live.test_explore import public_dir  # noqa: F401  (the fixture)

PROGRAMS = Path(__file__).parent / "programs"


@pytest.fixture(scope="module")
def recording(public_dir: Path) -> list[dict]:
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
    [mapped] = [e for e in evs if e["step"] == "do_mmap" and e["tgid"] == received["tgid"]
                and e["file"] == created["file"]]
    assert "MAP_PRIVATE" in mapped["detail"]["flags"] and "VM_SHARED" not in mapped["detail"]["vm_flags"]
    assert mapped["detail"]["vm_file"] == created["file"]
