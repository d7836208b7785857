from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

from tracer.errors import SyspathError
from tracer.events import Event
from tracer.recording import RecordingWriter, read_recording
from tracer.userfiles import write_user_file

SESSION = {"type": "session", "version": 1, "kernel": "6.18", "mode": "auto", "scenario": "memfd-share",
           "command": None, "started_ns": 5, "hooks": [{"step": "memfd_create", "hook": "tp", "status": "attached",
                                                        "reason": "r"}]}


def sample_event(step: str = "memfd_create") -> Event:
    return Event(ts_ns=10, pid=2, tgid=2, comm="sender", step=step, hook="tracepoint:syscalls:sys_exit_memfd_create",
                 fd=3, file="0xffff888100000000", inode=7, refcount=1, detail={"name": "x"})


def test_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    writer = RecordingWriter(path)
    writer.write(SESSION)
    writer.write_event(sample_event())
    writer.write({"type": "summary", "events": 1, "lost": 0, "exit_code": 0, "duration_ns": 9})
    writer.flush()
    assert len(path.read_text().splitlines()) == 3, "the recording is in place and flushed as it grows"
    writer.close()
    recording = read_recording(path)
    assert recording.session == SESSION
    assert recording.events == [sample_event()]
    assert recording.summary == {"type": "summary", "events": 1, "lost": 0, "exit_code": 0, "duration_ns": 9}
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert list(lines[1]) == ["type", "ts_ns", "pid", "tgid", "comm", "step", "hook", "fd", "file", "inode",
                              "refcount", "detail", "stack", "stack_from"]


def test_version_2_events_keep_their_stack(tmp_path: Path) -> None:
    path = tmp_path / "r2.jsonl"
    event = sample_event()
    event.stack, event.stack_from = ["vm_unmapped_area", "do_mmap", "do_syscall_64"], "tracepoint:mmap:vm_unmapped_area"
    path.write_text(json.dumps({**SESSION, "version": 2}) + "\n" + json.dumps(event.as_record()) + "\n")
    assert read_recording(path).events == [event]


def test_version_1_events_read_without_a_stack(tmp_path: Path) -> None:
    path = tmp_path / "r1.jsonl"
    record = {key: value for key, value in sample_event().as_record().items() if key not in ("stack", "stack_from")}
    path.write_text(json.dumps(SESSION) + "\n" + json.dumps(record) + "\n")
    [event] = read_recording(path).events
    assert event == sample_event() and event.stack is None and event.stack_from is None


@pytest.mark.parametrize("content, message", [
    ("", "empty"),
    ("not json\n", ":1: not JSON"),
    ('{"type":"session","hooks":[]}\n', ":1: session line without started_ns"),
    ('{"type":"session","started_ns":1,"hooks":[{"step":1}]}\n', ":1: malformed hook entry"),
    ('{"type":"event","ts_ns":1,"step":"x"}\n', ":1: a recording starts with a session line"),
    (json.dumps(SESSION) + "\n[1,2]\n", ":2: not a syspath record"),
    (json.dumps(SESSION) + '\n{"type":"event","ts_ns":"a","step":"x"}\n', ":2: event field ts_ns is str"),
    (json.dumps(SESSION) + '\n' + json.dumps({**sample_event().as_record(), "detail": "a"}) + '\n',
     ":2: event field detail is str"),
    (json.dumps(SESSION) + "\n" + json.dumps(SESSION) + "\n", ":2: a second session line"),
    (json.dumps(SESSION) + '\n' + json.dumps({**sample_event().as_record(), "stack": ["a", 1]}) + '\n',
     ":2: event field stack holds a non-string frame"),
])
def test_bad_recordings_name_the_line(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(content)
    with pytest.raises(SyspathError, match=message):
        read_recording(path)


def test_unwritable_path_is_an_error_for_people(tmp_path: Path) -> None:
    with pytest.raises(SyspathError, match="cannot write the recording"):
        RecordingWriter(tmp_path / "missing-dir" / "r.jsonl")


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.text(max_size=40), st.binary(max_size=40).map(lambda b: b.decode("latin-1")),
                          st.dictionaries(st.sampled_from(["type", "ts_ns", "step", "pid", "tgid", "comm", "hook",
                                                           "detail", "fd", "file", "role", "text", "report"]),
                                          st.one_of(st.none(), st.integers(), st.text(max_size=5),
                                                    st.sampled_from(["session", "event", "output", "summary"])))
                          .map(json.dumps)), max_size=6))
def test_reader_never_crashes_on_hostile_input(tmp_path_factory: pytest.TempPathFactory, lines: list[str]) -> None:
    path = tmp_path_factory.mktemp("fuzz") / "f.jsonl"
    path.write_text("\n".join(lines))
    try:
        read_recording(path)
    except SyspathError as error:
        assert "\n" not in str(error)


@pytest.mark.parametrize("content, message", [
    (json.dumps(SESSION).encode() + b"\n" + b'{"type":"event","comm":"\xff\xfe"}\n', r":2: not UTF-8 text \(byte 0xff"),
    (json.dumps(SESSION).encode() + b"\n" + json.dumps(sample_event().as_record()).encode()[:30],
     r":2: not JSON .*cut short"),
    (json.dumps(SESSION).encode() + b'\n{"type":"summary","events":"many"}\n', ":2: summary field events is str"),
    (json.dumps(SESSION).encode() + b'\n{"type":"summary","undecoded":"x"}\n', ":2: summary field undecoded is str"),
    (json.dumps({**SESSION, "command": 5}).encode() + b"\n", ":1: session field command is int"),
    (json.dumps({**SESSION, "command": ["a", 1]}).encode() + b"\n", ":1: session field command holds"),
    (json.dumps(SESSION).encode() + b"\n" + json.dumps({**sample_event().as_record(), "detail": {"flags": 7}}).encode()
     + b"\n", ":2: event detail flags has the wrong type"),
    (json.dumps(SESSION).encode() + b"\n" + json.dumps({**sample_event().as_record(),
                                                          "detail": {"shared": {"mm": "yes"}}}).encode() + b"\n",
     ":2: event detail shared has the wrong type"),
    (json.dumps(SESSION).encode() + b'\n{"type":"event","ts_ns":' + b"9" * 5000 + b"}\n",
     ":2: not JSON syspath can read"),
    (json.dumps(SESSION).encode() + b"\n" + b"[" * 100000 + b"\n", ":2: not JSON"),
])
def test_any_corruption_names_file_and_line(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_bytes(content)
    with pytest.raises(SyspathError, match=f"^{path}{message}"):
        read_recording(path)


def test_a_recording_cut_before_its_summary_still_reads(tmp_path: Path) -> None:
    path = tmp_path / "killed.jsonl"
    path.write_text(json.dumps(SESSION) + "\n" + json.dumps(sample_event().as_record()) + "\n")
    recording = read_recording(path)
    assert recording.events == [sample_event()] and recording.summary is None


def test_a_planted_temporary_name_is_never_followed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The first name the writer tries is a planted link to a victim: O_EXCL refuses it,
    the next name is used, and the victim is untouched."""
    victim = tmp_path / "victim"
    victim.write_text("secret")
    names = iter(["planted", "fresh01", "fresh02", "fresh03"])
    monkeypatch.setattr(tempfile, "_get_candidate_names", lambda: names)
    (tmp_path / ".r.jsonl.planted.tmp").symlink_to(victim)
    (tmp_path / "r.jsonl").symlink_to(victim)             # the final name planted too: replaced, not followed
    writer = RecordingWriter(tmp_path / "r.jsonl")
    writer.write(SESSION)
    writer.close()
    assert victim.read_text() == "secret"
    assert not (tmp_path / "r.jsonl").is_symlink() and read_recording(tmp_path / "r.jsonl").session == SESSION
    write_user_file(tmp_path / "r.jsonl", "export")        # an export renames over it in one step
    assert (tmp_path / "r.jsonl").read_text() == "export" and victim.read_text() == "secret"
    assert sorted(p.name for p in tmp_path.iterdir()) == [".r.jsonl.planted.tmp", "r.jsonl", "victim"]


def test_replay_shows_recorded_text_as_the_live_run_did(tmp_path: Path) -> None:
    """The decoder escaped the comm when it recorded it: the reader does not escape it twice.
    Raw control characters (a hand-made file) are escaped."""
    shown_live = "\\e]0;OWNED\\x07[red]"
    hostile = "\x1b]0;OWNED\x07[red]"
    path = tmp_path / "r.jsonl"
    path.write_text("\n".join(json.dumps(line) for line in (
        SESSION, {**sample_event().as_record(), "comm": shown_live},
        {**sample_event().as_record(), "comm": hostile, "detail": {"name": "a\\b\x9b"}})) + "\n")
    first, second = read_recording(path).events
    assert first.comm == shown_live
    assert second.comm == shown_live and second.detail["name"] == "a\\\\b\\x9b"


@pytest.mark.parametrize("raw, shown", [
    ("\x7f", "\\x7f"), ("\x9b", "\\x9b"), ("\u2028", "\\u2028"), ("\u202e", "\\u202e"), ("\x1b", "\\e"),
])
def test_controls_written_without_a_backslash_are_escaped_too(tmp_path: Path, raw: str, shown: str) -> None:
    """Plain ASCII lines skip the escaping: DEL, C1 controls, separators and bidi overrides
    can reach JSON unescaped, and must not skip it."""
    path = tmp_path / "r.jsonl"
    path.write_text("\n".join(json.dumps(line, ensure_ascii=False) for line in (
        SESSION, {**sample_event().as_record(), "comm": f"a{raw}b"})) + "\n", encoding="utf-8")
    [event] = read_recording(path).events
    assert event.comm == f"a{shown}b"


def test_a_json_line_is_the_same_json_whichever_encoder_writes_it(monkeypatch: pytest.MonkeyPatch) -> None:
    from tracer import recording

    sample = {"type": "event", "ts_ns": 2**64 - 1, "comm": "naïve\x1b[31m", "detail": {"prot": ["PROT_READ"]},
              "stack": ("do_mmap", "vm_mmap_pgoff"), "refcount": None}
    fast = recording.json_line(sample)
    monkeypatch.setattr(recording, "HAVE_ORJSON", False)
    slow = recording.json_line(sample)
    assert fast.endswith("\n") and slow.endswith("\n")
    assert json.loads(fast) == json.loads(slow) == json.loads(json.dumps(sample))
