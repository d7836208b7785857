"""The program's output lines in the recording (`output` records): written where the live
session told them to its views, read back and told again at that place by every replay path."""
from __future__ import annotations

import io
import json
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from rich.console import Console

from tracer import cli
from tracer.events import Event
from tracer.findings import Findings
from tracer.observer import Observer, Observers, OutputLine
from tracer.recording import RecordingWriter, open_recording, read_recording
from tracer.replay import in_call_order, play
from tracer.session import Run

SESSION = {"type": "session", "version": 2, "kernel": "6.18", "mode": "auto", "scenario": "memfd-share",
           "command": None, "started_ns": 1_000, "hooks": []}
SUMMARY = {"type": "summary", "events": 3, "lost": 0, "exit_code": 0, "duration_ns": 90_000}
ROOT_PID = 40


def event(ts_ns: int, step: str, pid: int = 41) -> Event:
    return Event(ts_ns=ts_ns, pid=pid, tgid=pid, comm="sender", step=step, hook="tp", fd=3,
                 file="0xffff888100000000", inode=7, refcount=1, detail={})


def report(ts_ns: int, role: str, say: str, **facts: Any) -> OutputLine:
    fields = {"role": role, "say": say, **facts}
    return OutputLine("stdout", json.dumps(fields), fields, ts_ns=ts_ns)


# What a live run met, in the order it met it: events as the sink decoded them, lines as the
# program's pipe gave them (a report line, a pause announcement, a plain stderr line, and a
# report naming its own pid).
LIVE: list[Event | OutputLine] = [
    event(2_000, "memfd_create"),
    report(2_500, "sender", "memfd fd=3, mapped at 0x7f00", fd=3),
    event(3_000, "do_mmap"),
    report(3_100, "sender", "", pause="sendmsg"),
    OutputLine("stderr", "warning: \\e[31m not a report", None, ts_ns=3_200),
    event(4_000, "receive_fd", pid=42),
    report(4_400, "receiver", "received fd=5", pid=42),
]


class Told(Observer):
    """Everything an observer is told, in order."""

    def __init__(self) -> None:
        self.told: list[tuple[str, Any]] = []

    def event(self, event: Event) -> None:
        self.told.append(("event", (event.ts_ns, event.step)))

    def output(self, line: OutputLine) -> None:
        self.told.append(("output", (line.ts_ns, line.pid, line.role, line.text, line.report, line.shown())))


class Program:
    """The traced program as Run._take_output sees it: its root pid and the lines read so far."""

    def __init__(self, lines: list[OutputLine]) -> None:
        self.pid = ROOT_PID
        self.lines = lines

    def output(self) -> list[OutputLine]:
        lines, self.lines = self.lines, []
        return lines


def live_run(path: Path) -> Told:
    """The session's own code for lines (Run._take_output) and the sink's for events (write,
    then tell), interleaved as the live run met them."""
    told = Told()
    writer = RecordingWriter(path)
    writer.write(SESSION)
    run = SimpleNamespace(writer=writer, session=SimpleNamespace(observer=told), step_write=None)
    for item in LIVE:
        if isinstance(item, Event):
            writer.write_event(item)
            told.event(item)
        else:
            Run._take_output(run, Program([item]))      # type: ignore[arg-type]
    writer.write(SUMMARY)
    writer.close()
    return told


def test_the_recording_holds_each_line_where_the_live_views_got_it(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    live = live_run(path)
    records = [json.loads(line) for line in path.read_text().splitlines()]
    outputs = [r for r in records if r["type"] == "output"]
    assert [list(r) for r in outputs] == [["type", "ts_ns", "pid", "role", "text", "report"]] * 4
    assert [(r["pid"], r["role"]) for r in outputs] == [(ROOT_PID, "sender"), (ROOT_PID, "sender"),
                                                        (ROOT_PID, "stderr"), (42, "receiver")]
    assert outputs[2]["report"] is None and outputs[0]["report"]["fd"] == 3
    assert [r["type"] for r in records] == ["session", "event", "output", "event", "output", "output",
                                            "event", "output", "summary"]
    replayed = Told()
    recording = open_recording(path)
    play(replayed, recording.session, recording.played(), None, 0, 0)
    assert replayed.told == live.told


def test_every_replay_path_tells_the_same_lines_in_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "r.jsonl"
    live = live_run(path)
    views_for = cli.views_for
    plain = Told()
    monkeypatch.setattr(cli, "views_for", lambda *a, **k: (Observers(plain, views_for(*a, **k)[0]), None))
    assert cli.main(["replay", str(path), "--no-live"]) == 0
    assert plain.told == live.told, "replay --no-live"
    shown = capsys.readouterr().out
    program = [line for line in shown.splitlines() if line.startswith("program: ")]
    assert program == ["program: sender: memfd fd=3, mapped at 0x7f00",
                       "program: stderr: warning: \\e[31m not a report",
                       "program: receiver: received fd=5"]

    explorer = Told()
    recording = open_recording(path)
    assert play(explorer, recording.session, recording.played(), 1000.0, 0, 0) == 4
    assert explorer.told == live.told, "the explorer at a recorded pace: this recording is in call order already"


def test_a_paced_replay_shows_the_lines_with_the_events(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """replay --speed outside the explorer: the program's lines appear under the events
    replayed before them, as they did live."""
    from tracer.views import live

    path = tmp_path / "r.jsonl"
    live_run(path)
    screens: list[tuple[int, list[str]]] = []
    real_screen = live.replay_screen

    def screen(findings: Any, shown: Any, said: Any, status: str) -> Any:
        screens.append((len(shown), list(said)))
        return real_screen(findings, shown, said, status)

    monkeypatch.setattr(live, "replay_screen", screen)
    live.replay_live(Findings(), open_recording(path).played(), 1000.0, Console(file=io.StringIO()))
    assert screens == [(1, []), (1, ["sender: memfd fd=3, mapped at 0x7f00"]),
                       (2, ["sender: memfd fd=3, mapped at 0x7f00"]),
                       (2, ["sender: memfd fd=3, mapped at 0x7f00", "stderr: warning: \\e[31m not a report"]),
                       (3, ["sender: memfd fd=3, mapped at 0x7f00", "stderr: warning: \\e[31m not a report"]),
                       (3, ["sender: memfd fd=3, mapped at 0x7f00", "stderr: warning: \\e[31m not a report",
                            "receiver: received fd=5"])]


def test_read_back_a_line_is_the_line_the_session_wrote(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    live_run(path)
    lines = [item for item in LIVE if isinstance(item, OutputLine)]
    read = read_recording(path)
    assert [(line.stream, line.text, line.report, line.ts_ns) for line in read.outputs] == \
        [(line.stream, line.text, line.report, line.ts_ns) for line in lines]
    assert [line.pid for line in read.outputs] == [ROOT_PID, ROOT_PID, ROOT_PID, 42]
    assert [e.step for e in read.events] == ["memfd_create", "do_mmap", "receive_fd"]


def test_lines_take_their_place_among_events_in_call_order() -> None:
    """Paced, events go out in call order; a line goes out before the first event stamped after it."""
    late_line = OutputLine("stdout", "b", None, ts_ns=25)
    played: list[Event | OutputLine] = [event(30, "c"), event(10, "a"), OutputLine("stdout", "a", None, ts_ns=15),
                                        event(20, "b"),
              late_line, OutputLine("stdout", "end", None, ts_ns=99)]
    order = [item.step if isinstance(item, Event) else f"line {item.text}" for item in in_call_order(played)]
    assert order == ["a", "line a", "b", "line b", "c", "line end"]


def test_a_line_is_stamped_on_the_events_clock() -> None:
    """The probes stamp events with bpf_ktime_get_ns (CLOCK_MONOTONIC); a line is stamped when read."""
    before = time.clock_gettime_ns(time.CLOCK_MONOTONIC)
    line = OutputLine("stdout", "x")
    after = time.clock_gettime_ns(time.CLOCK_MONOTONIC)
    assert before <= line.ts_ns <= after


OUTPUT = {"type": "output", "ts_ns": 5, "pid": 7, "role": "sender", "text": "hi", "report": None}


@pytest.mark.parametrize("record, message", [
    ({**OUTPUT, "role": 3}, "output field role is int, expected str"),
    ({key: value for key, value in OUTPUT.items() if key != "ts_ns"}, "output field ts_ns is NoneType, expected int"),
    ({**OUTPUT, "pid": True}, "output field pid is bool, expected int"),
    ({**OUTPUT, "report": ["say"]}, "output field report is list, expected dict or NoneType"),
    ({**OUTPUT, "text": None}, "output field text is NoneType, expected str"),
])
def test_a_malformed_output_record_is_refused_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                          record: dict[str, Any], message: str) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in (SESSION, OUTPUT, record, SUMMARY)) + "\n")
    assert cli.main(["replay", str(path), "--no-live"]) == 2
    err = capsys.readouterr().err
    assert err == f"syspath: {path}:3: {message}\n"


def test_an_older_recording_replays_and_says_what_it_cannot_tell(tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """A recording made before output records: today's, with its output records taken out."""
    fixture = Path(__file__).resolve().parents[1] / "fixtures" / "memfd-share.jsonl"
    older = tmp_path / "older.jsonl"
    older.write_text("".join(line for line in fixture.read_text().splitlines(keepends=True)
                             if '"type":"output"' not in line))
    assert '"type":"output"' in fixture.read_text()
    assert cli.main(["replay", str(older), "--no-live"]) == 0
    out, err = capsys.readouterr()
    assert "program: " not in out and "One struct file" in out
    assert err.count("\n") == 1 and "holds no line of the program's output" in err


def test_the_explorer_and_the_findings_get_the_replayed_lines(tmp_path: Path) -> None:
    from tracer.views.feed import Feed

    path = tmp_path / "r.jsonl"
    live_run(path)
    feed = Feed(Findings())
    recording = open_recording(path)
    play(feed, recording.session, recording.played(), None, 0, 0)
    shown = ["sender: memfd fd=3, mapped at 0x7f00", "stderr: warning: \\e[31m not a report", "receiver: received fd=5"]
    assert list(feed.outputs) == shown and feed.findings.output_lines == shown
    assert [report.get("say") for report in feed.findings.reports] == ["memfd fd=3, mapped at 0x7f00", "",
                                                                       "received fd=5"]
