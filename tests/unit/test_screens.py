"""Projector grade: at 80x24, 100x30 and 120x40 no address, pid or number is cut, in the final
screen, the plain lines and the report; the kernel's verdict is said once; NO_COLOR works."""
from __future__ import annotations

import io
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from rich.console import Console

from tracer.findings import Findings
from tracer.recording import read_recording
from tracer.views.live import essentials, final_screen
from tracer.views.plain import PlainView
from tracer.views.report import html_report

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
SIZES = [(80, 24), (100, 30), (120, 40)]
ADDRESS = re.compile(r"0xffff[0-9a-f]{12}")


def findings_of(name: str) -> tuple[Findings, list]:
    recording = read_recording(FIXTURES / f"{name}.jsonl")
    findings = Findings()
    findings.started(recording.session)
    for event in recording.events:
        findings.event(event)
    findings.finished(0, 0)
    return findings, recording.events


def rendered(renderable: object, width: int, **options: object) -> str:
    console = Console(width=width, file=io.StringIO(), record=True, markup=False, **options)
    console.print(renderable)
    return console.export_text()


def addresses(events: list) -> set[str]:
    """The kernel objects the events name (the f_op table is said in the findings, not per row)."""
    found = set()
    for event in events:
        detail = {key: value for key, value in event.detail.items() if key not in ("f_op", "f_op_read")}
        found |= set(ADDRESS.findall(" ".join(str(v) for v in (event.file, detail))))
    return found


@pytest.mark.parametrize("name", ["memfd-share", "fork-vs-thread"])
@pytest.mark.parametrize("width, height", SIZES)
def test_no_address_or_pid_is_cut(name: str, width: int, height: int) -> None:
    findings, _ = findings_of(name)
    text = rendered(final_screen(findings), width)
    for address in addresses(findings.timeline.first):
        assert address in text, address
    for line in text.splitlines():
        assert not ADDRESS.search(line) or all(len(a) == 18 for a in re.findall(r"0xffff[0-9a-f]*", line))
    for event in findings.timeline.first:
        assert f"[{event.pid}]" in text


@pytest.mark.parametrize("width, height", SIZES)
def test_the_essentials_fit_one_screen(width: int, height: int) -> None:
    findings, _ = findings_of("memfd-share")
    text = rendered(essentials(findings), width)
    assert len(text.rstrip("\n").splitlines()) <= height
    story = findings.shared_files()[0]
    assert story.file in text and "2 owners, 1 object" in text
    assert f"pid {story.creator.pid}" in text and f"pid {story.receivers[0].pid}" in text


def test_the_kernel_verdict_is_said_once() -> None:
    findings, _ = findings_of("memfd-share")
    text = rendered(final_screen(findings), 120)
    assert text.count("no kprobes") == 1 and "every step seen at tracepoints" in " ".join(text.split())
    assert "kprobe_events (create_probe_event" not in text
    hooks = text[:text.index("kernel events")]
    assert all(len(line) <= 120 for line in hooks.splitlines())


def test_plain_lines_say_the_verdict_once_and_keep_every_address() -> None:
    findings = Findings()
    out = io.StringIO()
    view = PlainView(findings, out)
    recording = read_recording(FIXTURES / "memfd-share.jsonl")
    for observer in (findings, view):
        observer.started(recording.session)
    for event in recording.events:
        findings.event(event)
        view.event(event)
    findings.finished(0, 0)
    view.finished(0, 0)
    text = out.getvalue()
    assert text.count("no kprobes") == 1
    # every address but those of the loader's library mappings, folded into one line
    shown = [event for event in recording.events if not event.loads_code]
    assert all(address in text for address in addresses(shown))
    folded = len(recording.events) - len(shown)
    assert f"{folded} private mappings of regular files (the loader's" in text


def test_no_color_and_a_light_background() -> None:
    findings, _ = findings_of("memfd-share")
    plain = rendered(final_screen(findings), 100, no_color=True)
    out = io.StringIO()
    Console(width=100, file=out, force_terminal=True, no_color=True).print(final_screen(findings))
    styled = out.getvalue()
    assert not re.search(r"\x1b\[(?:[0-9;]*;)?(?:3[0-8]|4[0-8]|9[0-7])[;m]", styled)      # no colour codes
    assert findings.shared_files()[0].file in plain


def test_report_is_self_contained_and_escapes_program_text() -> None:
    findings, events = findings_of("memfd-share")
    events[0].comm = "</script><script>alert(1)</script>"
    page = html_report(findings, events)
    assert "<script>alert(1)" not in page
    assert "http://" not in page.replace("http://www.w3.org/2000/svg", "") and "https://" not in page
    assert page.count("<svg") == 1 and "2 owners, 1 object" in page


@pytest.mark.skipif(shutil.which("chromium") is None, reason="the report test needs chromium (make test installs it)")
def test_report_renders_in_headless_chromium(tmp_path: Path) -> None:
    findings, events = findings_of("memfd-share")
    page = tmp_path / "report.html"
    page.write_text(html_report(findings, events))
    done = subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--enable-logging=stderr",
                           "--v=0", "--virtual-time-budget=2000", "--dump-dom", page.as_uri()],
                          capture_output=True, text=True, timeout=120)
    dom = done.stdout
    story = findings.shared_files()[0]
    assert 'class="file"' in dom and story.file in dom and dom.count('class="owner"') == 2
    assert re.search(r"\b(\d+) of \1 events shown", dom)      # the script ran and built the timeline
    console_errors = [line for line in done.stderr.splitlines() if "CONSOLE" in line and "ERROR" in line.upper()]
    assert not console_errors, console_errors
    assert "Uncaught" not in done.stderr


def test_a_long_tail_left_to_decode_is_said_once_on_stderr() -> None:
    out, notes = io.StringIO(), io.StringIO()
    view = PlainView(Findings(), out, notes=notes)
    view.catching_up(1_200)                   # a short tail: nothing to say
    assert not notes.getvalue()
    for waiting in (540_000, 530_000, 0):
        view.catching_up(waiting)
    assert notes.getvalue() == "syspath: the program has ended; 540,000 of its events are still to decode\n"
    assert not out.getvalue()                 # the rows' stream stays rows only
