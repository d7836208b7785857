# ruff: noqa: E501
"""Every sentence rests on the recording: each kind of finding is told from a real recording,
then from the same recording doctored (the event or the program report it rests on dropped or
altered), and the sentence must go or change.

tests/fixtures/stories/ holds live recordings of this version (syscall tier, this project's
kernel) and, beside each, the program's report lines as the design's `output` records; until
the recorder writes those into the recording, the tests feed them to Findings.output at their
place in time, as a replay will.
"""
from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tracer.events import Event
from tracer.findings import Findings
from tracer.observer import OutputLine
from tracer.recording import output_record, read_recording
from tracer.views.plain import closing_lines
from tracer.views.report import page_data

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
STORIES = FIXTURES / "stories"

Doctor = Callable[[list[Event], list[dict[str, Any]]], None]


def untouched(events: list[Event], outputs: list[dict[str, Any]]) -> None:
    """The recording as it was made."""


@dataclass
class Told:
    findings: Findings
    events: list[Event]
    text: str

    def lines(self, start: str) -> list[str]:
        return [line for line in self.text.splitlines() if line.lstrip().startswith(start)]


def told(path: Path, doctor: Doctor = untouched) -> Told:
    """The plain output's closing lines (narration, paths, life stories, conclusions) for a
    recording, its report lines fed in time order, after `doctor` changed them."""
    recording = read_recording(path)
    events = copy.deepcopy(recording.events)
    reports = path.with_suffix(".reports.jsonl")
    outputs = ([json.loads(line) for line in reports.read_text().splitlines()] if reports.exists()
               else [output_record(line) for line in recording.outputs])
    doctor(events, outputs)
    findings = Findings()
    findings.started(recording.session)
    timed: list[tuple[int, int, Event | dict[str, Any]]] = [(e.ts_ns, 1, e) for e in events]
    timed += [(o["ts_ns"], 0, o) for o in outputs]
    for _, _, item in sorted(timed, key=lambda t: (t[0], t[1])):
        if isinstance(item, Event):
            findings.event(item)
        else:
            findings.output(OutputLine("stdout", item["text"], item["report"]))
    findings.finished(0, 0)
    return Told(findings, events, "\n".join(closing_lines(findings, follow=True)))


def memfd(doctor: Doctor = untouched) -> Told:
    return told(STORIES / "memfd-share.jsonl", doctor)


def tasks(doctor: Doctor = untouched) -> Told:
    return told(STORIES / "fork-vs-thread.jsonl", doctor)


def chromium(doctor: Doctor = untouched) -> Told:
    return told(FIXTURES / "chromium.jsonl", doctor)


def the(events: list[Event], step: str, comm: str | None = None, **detail: object) -> list[Event]:
    return [e for e in events if e.step == step and comm in (None, e.comm)
            and all(e.detail.get(key) == value for key, value in detail.items())]


def drop(events: list[Event], doomed: list[Event]) -> None:
    for event in doomed:
        events.remove(event)


def report(outputs: list[dict[str, Any]], role: str, key: str) -> dict[str, Any]:
    return next(o["report"] for o in outputs if o["report"].get("role") == role and key in o["report"])


# ---- one struct file in several processes --------------------------------------------------

def test_the_shared_file_rests_on_a_receive_in_another_process() -> None:
    assert memfd().lines("One struct file") and "in 2 processes" in memfd().lines("One struct file")[0]
    gone = memfd(lambda events, _: drop(events, the(events, "receive_fd")))
    assert not gone.lines("One struct file")


def test_in_n_processes_counts_thread_groups_each_named_once() -> None:
    def received_again(events: list[Event], _: list[dict[str, Any]]) -> None:
        [received] = the(events, "receive_fd")
        for later in range(1, 5):           # the same receiver, four more times
            events.append(_shifted(received, later))
    again = memfd(received_again)
    [heading] = again.lines("One struct file")
    assert "in 2 processes" in heading and len(again.lines("receiver")) == 1

    def another_thread_group(events: list[Event], _: list[dict[str, Any]]) -> None:
        [received] = the(events, "receive_fd")
        third = _shifted(received, 1)
        third.tgid = third.pid = received.tgid + 1000
        events.append(third)
    [heading] = memfd(another_thread_group).lines("One struct file")
    assert "in 3 processes" in heading


def _shifted(event: Event, ns: int) -> Event:
    moved = copy.deepcopy(event)
    moved.ts_ns += ns
    return moved


HOLDER = re.compile(r"^\s+(?:sender|receiver).*\(pid \d+, tgid (\d+)\) holds it")


def test_in_a_chromium_trace_n_processes_is_the_thread_groups_named_under_it() -> None:
    text = chromium().text.splitlines()
    headings = [i for i, line in enumerate(text) if line.startswith("One struct file")]
    assert headings
    for start in headings:
        claimed = int(re.search(r"in (\d+) processes", text[start]).group(1))      # type: ignore[union-attr]
        block = []
        for line in text[start + 1:]:
            if not line.startswith("  "):
                break
            block.append(line)
        tgids = [int(m.group(1)) for m in map(HOLDER.match, block) if m]
        assert claimed == len(tgids) == len(set(tgids)), (text[start], block)


def _model(story: Told) -> Any:
    return next(s.model for s in story.findings.stories if hasattr(s.model, "shared"))


def test_in_a_chromium_trace_the_memfds_come_before_the_sockets() -> None:
    def sockets_first(events: list[Event], _: list[dict[str, Any]]) -> None:
        """Every file not made by memfd_create passed ten seconds earlier: the sockets come first."""
        memfds = {e.file for e in the(events, "memfd_create")}
        for event in events:
            if event.file and event.file not in memfds:
                event.ts_ns -= 10_000_000_000
    story = chromium(sockets_first)
    kept = _model(story).shared
    assert kept and all(life.memfd for life in kept)           # the memfds kept, though...
    assert min(life.shared_order for life in kept) > 1          # ...sockets were shared before them
    kinds = story.lines("it is a")
    assert len(kinds) == 3 and all(line.strip().startswith("it is a memfd") for line in kinds)


def test_in_a_chromium_trace_a_memfd_mapped_in_both_with_one_page_comes_first() -> None:
    story = chromium()
    ranks = [life.kept_rank for life in _model(story).shared]
    assert ranks == sorted(ranks, reverse=True) and ranks[0] == story_module().MEMFD_SAME_PAGE
    first = story.text.split("One struct file")[1]
    assert "it is a memfd" in first and "same physical page:" in first and first.count("mapped at") == 2

    def no_pages(events: list[Event], _: list[dict[str, Any]]) -> None:
        drop(events, the(events, "page"))
    without = chromium(no_pages)
    assert "same physical page" not in without.text
    assert {life.kept_rank for life in _model(without).shared} == {story_module().MEMFD_MAPPED}


def story_module() -> Any:
    from tracer.scenarios.memfd_share import story
    return story


def test_the_kept_stories_are_the_best_ranked_of_all_and_the_count_is_every_one(monkeypatch: pytest.MonkeyPatch) -> None:
    """A life's rank rises after it was shared (its receiver maps it, pagemap shows the page): the
    bounded list keeps the same stories as keeping every one, and counts them all."""
    def late_pages(events: list[Event], _: list[dict[str, Any]]) -> None:
        """The first memfds' receivers map them and see the page only at the end: their rank rises late."""
        last = max(e.ts_ns for e in events)
        early = {e.file for e in the(events, "receive_fd")[:20]}
        for event in events:
            if event.file in early and event.step in ("do_mmap", "page") and event.tgid != \
                    next(e.tgid for e in events if e.file == event.file and e.step in ("memfd_create", "scm_fp_copy")):
                event.ts_ns = last + event.ts_ns % 1_000_000
    bounded = _model(chromium(late_pages))
    monkeypatch.setattr(story_module(), "KEPT_SHARED", 10**6)
    every = _model(chromium(late_pages))
    assert bounded.shared_count == every.shared_count == len(every.shared)
    assert [life.file for life in bounded.shared] == [life.file for life in every.shared[:len(bounded.shared)]]
    [more] = [line for line in chromium(late_pages).lines("... and") if "more struct files" in line]
    assert f"({every.shared_count} in all)" in more


def test_in_a_chromium_trace_no_story_joins_two_files_at_one_address() -> None:
    """A struct file's inode never changes: each story's events name one inode, and the two sockets
    Chromium passed at one reused address are two stories."""
    model = _model(chromium())
    for life in model.shared:
        assert len({e.inode for e in life.events if e.inode is not None}) == 1, life.file
    sockets = [life for life in model.shared if life.file == "0xffff8881d9c1b900"]    # reused by two sockets
    assert len(sockets) in (0, 2) and model.shared_count == 159
    told = chromium().text
    assert "in 3 processes" not in told


# ---- a reused slab address ----------------------------------------------------------------------

def _at_memfds_address(events: list[Event], source: Event, ns: int, **changes: Any) -> Event:
    [created] = the(events, "memfd_create")
    moved = _shifted(source, created.ts_ns - source.ts_ns + ns)
    moved.file = created.file
    for key, value in changes.items():
        setattr(moved, key, value)
    events.append(moved)
    return moved


def test_a_file_the_address_named_before_is_said_and_never_joined() -> None:
    def mapped_before(events: list[Event], _: list[dict[str, Any]]) -> None:
        """A regular file mapped at the memfd's address before memfd_create (closed, no fput seen)."""
        loader = next(e for e in the(events, "do_mmap") if e.detail.get("file_kind") == "regular")
        _at_memfds_address(events, loader, -1_000_000, tgid=4242, pid=4242, comm="other")
    story = memfd(mapped_before)
    [heading] = story.lines("One struct file")
    assert "in 2 processes" in heading and "other" not in story.text.split("One struct file")[1].split("this address")[0]
    [reuse] = story.lines("this address also named another struct file earlier (regular")
    assert "in other [4242]" in reuse and "slab object reused" in reuse
    assert not memfd().lines("this address also named")


def test_a_file_at_the_address_after_is_another_story_not_a_third_process() -> None:
    def socket_after(events: list[Event], _: list[dict[str, Any]]) -> None:
        """After the memfd, a socket (another inode) at its address is passed to a third process."""
        last = max(e.ts_ns for e in events)
        [created] = the(events, "memfd_create")
        for step, tgid in (("scm_fp_copy", created.tgid), ("receive_fd", 5151)):
            [source] = the(events, step)
            _at_memfds_address(events, source, last - created.ts_ns + (1 if step == "receive_fd" else 0),
                               inode=999, tgid=tgid, pid=tgid, detail={**source.detail, "file_kind": "socket"})
    story = memfd(socket_after)
    headings = story.lines("One struct file")
    assert len(headings) == 2 and all("in 2 processes" in heading for heading in headings)
    assert story.lines("this address also named another struct file later (socket")
    assert story.lines("this address also named another struct file earlier (memfd 'syspath-demo'")

    def same_inode(events: list[Event], outputs: list[dict[str, Any]]) -> None:
        socket_after(events, outputs)
        for event in events:
            if event.inode == 999:
                event.inode = the(events, "memfd_create")[0].inode
    joined = memfd(same_inode)          # no birth and the same inode: nothing says it is another file
    assert not joined.lines("this address also named") and "in 3 processes" in joined.lines("One struct file")[0]


def test_the_real_reuse_in_the_inside_recording_goes_with_the_earlier_mapping() -> None:
    [reuse] = inside().lines("this address also named another struct file earlier (regular 'ld.so.cache'")
    assert "do_mmap in python" in reuse

    def without(events: list[Event], _: list[dict[str, Any]]) -> None:
        [created] = the(events, "memfd_create")
        drop(events, [e for e in events if e.file == created.file and e.ts_ns < created.ts_ns
                      and e.step == "do_mmap"])
    assert not inside(without).lines("this address also named")


# ---- where the count rose ------------------------------------------------------------------

def test_the_rise_is_the_step_that_took_the_reference_read_where_it_was_read() -> None:
    [counts] = memfd().lines("refcount:")
    assert "3: taken by scm_fp_copy in sender, read at in_flight" in counts
    assert memfd().lines("kernel source: fget_raw in scm_fp_copy (net/core/scm.c)")
    gone = memfd(lambda events, _: drop(events, the(events, "in_flight")))
    [counts] = gone.lines("refcount:")
    assert "read at in_flight" not in counts and "3 (receive_fd in receiver)" in counts

    def read_after(events: list[Event], _: list[dict[str, Any]]) -> None:
        """As a kretprobe would: scm_fp_copy's own read after it ran shows the rise."""
        [copied] = the(events, "scm_fp_copy")
        copied.hook, copied.refcount = "kretprobe:scm_fp_copy", 3
    [counts] = memfd(read_after).lines("refcount:")
    assert "3 (scm_fp_copy in sender)" in counts and "taken by" not in counts


def test_a_count_read_at_an_entry_hook_is_marked_before_in_the_ref_column() -> None:
    from tracer.events import refcount_text
    from tracer.views.timeline import table_row
    [copied] = the(memfd().events, "scm_fp_copy")
    assert refcount_text(copied) == "2 (before)" and "2 (before)" in table_row(copied, 0)
    copied.hook = "kretprobe:scm_fp_copy"
    assert refcount_text(copied) == "2"
    [mapped] = the(memfd().events, "do_mmap", "receiver")
    assert refcount_text(mapped) == str(mapped.refcount)


def test_only_what_memfd_create_made_is_a_memfd() -> None:
    assert memfd().lines("it is a memfd 'syspath-demo'")
    unborn = memfd(lambda events, _: drop(events, the(events, "memfd_create")))
    assert not unborn.lines("it is a memfd")
    assert unborn.lines("it is a shmem file 'syspath-demo' named like a memfd (its memfd_create is not in the recording)")

    def version_1(events: list[Event], _: list[dict[str, Any]]) -> None:
        drop(events, the(events, "memfd_create"))
        for event in events:
            event.detail.pop("file_kind", None)
    old = memfd(version_1)
    assert not old.lines("it is a memfd") and old.lines("it is a file 'syspath-demo' of a kind this recording does not say")
    chromium_without_births = chromium(lambda events, _: drop(events, the(events, "memfd_create")))
    assert not chromium_without_births.lines("it is a memfd")
    assert "memfd" not in " ".join(chromium_without_births.lines("it is a"))


def test_vm_shared_is_said_of_the_vma_that_has_it() -> None:
    plain = memfd()
    assert plain.lines("sender")[0].endswith("(VM_SHARED|VM_MAYSHARE)")
    assert plain.lines("receiver")[0].endswith("(private: no VM_SHARED)") and plain.lines("kernel source (mm/memory.c)")

    def shared_receiver(events: list[Event], _: list[dict[str, Any]]) -> None:
        for event in the(events, "do_mmap", "receiver"):
            event.detail["vm_flags"] = [*event.detail["vm_flags"], "VM_SHARED", "VM_MAYSHARE"]
    both = memfd(shared_receiver)
    assert both.lines("receiver")[0].endswith("(VM_SHARED|VM_MAYSHARE)")
    assert not both.lines("kernel source (mm/memory.c)")


def test_one_physical_page_rests_on_the_same_frame_in_both() -> None:
    assert memfd().lines("same physical page:")

    def different_frames(events: list[Event], _: list[dict[str, Any]]) -> None:
        for event in the(events, "page", "receiver", file_page=True):
            event.detail["pfn"] += 1
    apart = memfd(different_frames)
    assert not apart.lines("same physical page") and "one physical page" not in apart.text


def test_copy_on_write_rests_on_the_receivers_own_frame() -> None:
    assert memfd().lines("copy on write: receiver's write gave it PFN")
    unwritten = memfd(lambda events, _: drop(events, the(events, "page", "receiver", file_page=False)))
    assert not unwritten.lines("copy on write:")


def test_in_flight_rests_on_the_skb_seen() -> None:
    assert memfd().lines("in flight: skb")
    assert not memfd(lambda events, _: drop(events, the(events, "in_flight"))).lines("in flight")


def test_refcounts_and_fds_are_the_recorded_ones() -> None:
    [counts] = memfd().lines("refcount:")

    def bumped(events: list[Event], _: list[dict[str, Any]]) -> None:
        for event in the(events, "do_mmap", "receiver"):
            if event.refcount is not None:
                event.refcount += 10
    assert memfd(bumped).lines("refcount:") != [counts]
    assert memfd().lines("different fd numbers")

    def same_fd(events: list[Event], _: list[dict[str, Any]]) -> None:
        for event in the(events, "receive_fd"):
            event.fd = 3
    assert memfd(same_fd).lines("same fd number by chance")


def test_the_mapping_narrated_is_the_lessons_own_not_a_loaders() -> None:
    [why] = memfd().lines("why do_mmap in")
    assert why.startswith("why do_mmap in sender:")
    unmapped = memfd(lambda events, _: drop(events, [e for e in the(events, "do_mmap") if e.comm in ("sender", "receiver")]))
    [why] = unmapped.lines("why do_mmap in")
    assert not why.startswith("why do_mmap in sender")


def test_the_html_timeline_folds_the_loaders_mappings_like_the_terminal() -> None:
    story = memfd()
    data = json.loads(page_data(story.findings, story.events))
    folded = [e for e in story.events if story.findings.folds(e)]
    assert folded and len(folded) == story.findings.timeline.folded
    assert data["folded"] == f"{len(folded)} private mappings of regular files (the loader's: libraries, ld.so.cache, locale files)"
    assert len(data["events"]) == len(story.events) - len(folded)


def test_a_memfds_life_story_needs_its_memfd_create() -> None:
    assert memfd().lines("The life of struct file")
    assert not memfd(lambda events, _: drop(events, the(events, "memfd_create"))).lines("The life of struct file")


def test_inlined_here_only_under_a_caller_on_the_path() -> None:
    [article] = [line for line in memfd().lines("article:") if "scm_fp_copy" in line]
    assert re.search(r"not in kallsyms: [^;]*\bscm_fp_copy\b", article)     # __scm_send is not on the recorded stack

    def caller_on_the_stack(events: list[Event], _: list[dict[str, Any]]) -> None:
        for event in the(events, "scm_fp_copy"):
            event.stack = ["__scm_send", *(event.stack or [])]
    [article] = [line for line in memfd(caller_on_the_stack).lines("article:") if "scm_fp_copy" in line]
    assert re.search(r"inlined here: [^;]*\bscm_fp_copy\b", article)
    assert memfd().lines("marks: seen: on the stack")                     # the plain output says what the marks mean


def test_what_the_memfd_program_read_is_cited_and_follows_its_reports() -> None:
    saw = memfd().lines("observed [program report")
    assert [line.split("]: ", 1)[1] for line in saw] == [
        "the receiver read, through its own mapping, the text the sender wrote",
        "the receiver's private mapping read the sender's later write too (no copy yet)",
        ("after the receiver wrote into its private mapping, the sender still read its own text: the receiver's write "
         "went to a copy")]

    def garbled(_: list[Event], outputs: list[dict[str, Any]]) -> None:
        next(o["report"] for o in outputs if o["report"]["role"] == "receiver" and "fd" in o["report"])["text"] = "?"
        report(outputs, "receiver", "sees_sender_write")["sees_sender_write"] = False
        report(outputs, "sender", "cow_isolated")["cow_isolated"] = False
    assert [line.split("]: ", 1)[1] for line in memfd(garbled).lines("observed [program report")] == [
        "the receiver read something else than the text the sender wrote",
        "the receiver's private mapping did not read the sender's later write",
        "after the receiver wrote into its private mapping, the sender read something else"]
    assert not memfd(lambda _, outputs: outputs.clear()).lines("observed")


# ---- new tasks, signals, and what the program saw --------------------------------------------

def test_each_structure_is_shared_or_copied_as_its_pointers_say() -> None:
    [thread_mm] = [line for line in tasks().lines("mm ") if "shared (CLONE_VM); mm_users 2 after the clone" in line]
    assert thread_mm

    def copied_mm(events: list[Event], _: list[dict[str, Any]]) -> None:
        thread = the(events, "clone", kind="thread")[0]
        thread.detail["child"]["mm"] = "0xffff888100000000"
        thread.detail["shared"]["mm"] = False
    assert not [line for line in tasks(copied_mm).lines("mm ") if "mm_users 2 after the clone" in line and "shared" in line]


def test_counts_are_the_ones_read_after_the_clone_never_a_derived_before() -> None:
    text = tasks().text
    assert "mm_users 2 after the clone" in text and not re.search(r"mm_users \d+ -> \d+", text)

    def unread(events: list[Event], _: list[dict[str, Any]]) -> None:
        for event in the(events, "clone"):
            event.detail.pop("users", None)
    assert not re.search(r"mm_users \d+ after the clone", tasks(unread).text)


def test_no_sentence_about_fd_tables_that_were_not_read() -> None:
    assert "both tables point at the same struct files" not in tasks().text


def test_the_programs_observations_are_cited_and_go_with_their_report() -> None:
    plain = tasks()
    observed = plain.lines("observed [program report")
    assert observed and all(re.match(r"observed \[program report \d+ \(\w+\)\]: ", line.strip()) for line in observed)
    assert plain.lines("observed [program report 2 (thread)]: getpid() is")
    without = tasks(lambda _, outputs: outputs.clear())
    assert not without.lines("observed")          # a replay without the program's reports tells no observation
    no_pid = tasks(lambda _, outputs: outputs.remove(next(o for o in outputs if "getpid" in o["report"])))
    assert not no_pid.lines("observed [program report 2 (thread)]: getpid()")


def test_the_linuxthreads_rlimit_is_the_parents_prlimit_on_the_task() -> None:
    [rlimit] = tasks().lines("observed [program report 5 (linuxthreads)]")
    assert "prlimit(RLIMIT_NOFILE) by the parent on the new task: the parent does not see it" in rlimit
    assert "disagree" not in rlimit

    def seen_after_all(_: list[Event], outputs: list[dict[str, Any]]) -> None:
        [check] = next(o["report"]["checks"] for o in outputs
                       if o["report"].get("role") == "linuxthreads" and "prlimit" in json.dumps(o["report"]))
        check["seen"] = True
    [rlimit] = tasks(seen_after_all).lines("observed [program report 5 (linuxthreads)]")
    assert "the parent sees it" in rlimit and "disagree" in rlimit


def test_the_exec_before_the_return_is_the_programs_observation_only() -> None:
    [seen] = tasks().lines("observed [program report 10 (spawn)]")
    assert "already ran sleep" in seen and "the recording holds no exec event" in seen
    unseen = tasks(lambda _, outputs: outputs.remove(next(o for o in outputs if o["report"].get("role") == "spawn")))
    assert "already ran" not in unseen.text and "exec'd" not in unseen.text


def test_a_signal_is_taken_by_the_thread_the_recording_names() -> None:
    [usr1] = [line for line in tasks().lines("Signal: SIGUSR1") if "taken by thread" in line]
    taker = int(re.search(r"taken by thread (\d+)", usr1).group(1))            # type: ignore[union-attr]

    def untaken(events: list[Event], _: list[dict[str, Any]]) -> None:
        drop(events, [e for e in the(events, "signal_deliver", sig=10) if e.pid == taker])
    assert not [line for line in tasks(untaken).lines("Signal: SIGUSR1") if f"taken by thread {taker}" in line]
    assert [line for line in tasks(untaken).lines("Signal: SIGUSR1") if "queued, not seen taken" in line]


def test_sigstop_acts_when_taken_and_the_group_stop_shows_where_it_completed() -> None:
    [stop] = tasks().lines("Signal: SIGSTOP")
    assert "the stop acted when it was taken (get_signal)" in stop
    assert tasks().lines("Signal: the group stop completed in thread")
    untaken = tasks(lambda events, _: drop(events, the(events, "signal_deliver", sig=19)))
    [stop] = untaken.lines("Signal: SIGSTOP")
    assert "queued, not seen taken" in stop and "acted when" not in stop

    def no_stack(events: list[Event], _: list[dict[str, Any]]) -> None:
        for event in the(events, "signal_generate", sig=17):
            event.stack = None
    assert not tasks(no_stack).lines("Signal: the group stop completed")


def test_every_thread_stopped_only_when_every_state_read_was_t() -> None:
    [states] = tasks().lines("observed [program report 8 (stop)]")
    assert "every thread stopped" in states and "not every" not in states

    def one_ran_on(_: list[Event], outputs: list[dict[str, Any]]) -> None:
        stopped = report(outputs, "stop", "stopped")["stopped"]
        stopped[next(iter(stopped))] = "S"
    [states] = tasks(one_ran_on).lines("observed [program report 8 (stop)]")
    assert "not every thread stopped" in states


def test_handled_and_left_pause_are_as_the_program_saw_them() -> None:
    assert tasks().lines("observed [program report 3 (signals)]: signal 10 sent to process")
    assert "handled;" in tasks().lines("observed [program report 3 (signals)]")[0]
    unhandled = tasks(lambda _, outputs: report(outputs, "signals", "handled").update(handled=False))
    assert "not handled" in unhandled.lines("observed [program report 3 (signals)]")[0]
    assert "left pause() and exited" in tasks().lines("observed [program report 7 (linuxthreads)]")[0]
    stuck = tasks(lambda _, outputs: report(outputs, "linuxthreads", "left_pause").update(left_pause=False))
    assert "did not leave pause()" in stuck.lines("observed [program report 7 (linuxthreads)]")[0]


@pytest.mark.parametrize("said", ["SIGSTOP and SIGCONT act on the whole group as they are sent",
                                  "a write to a private mapping goes through do_cow_fault",
                                  "mm_users 1 -> 2"])
def test_the_narration_no_longer_says_what_the_recording_contradicts(said: str) -> None:
    from tracer.views.narration import narration_texts
    assert said not in json.dumps(narration_texts())


CORE_FILES = ["tracer/findings.py", "tracer/story.py", "tracer/stories.py", "tracer/paths.py", "tracer/views/summary.py",
              "tracer/views/plain.py", "tracer/views/report.py", "tracer/views/timeline.py", "tracer/views/live.py",
              "tracer/views/explorer.py", "tracer/views/svg.py", "tracer/views/path.py", "tracer/views/narration.py",
              "tracer/events.py", "tracer/views/details.py"]
NAMED = re.compile(r"[\"'](memfd_create|shmem_file_setup|do_mmap|unix_stream_sendmsg|scm_fp_copy|receive_fd|in_flight|"
                   r"fd_install|alloc_file_pseudo|fput|page|clone|dup_fd|dup_mm|signal_generate|signal_deliver|"
                   r"memfd-share|fork-vs-thread)[\"']")


@pytest.mark.parametrize("name", CORE_FILES)
def test_the_core_of_the_stories_names_no_step_and_no_lesson(name: str) -> None:
    source = (Path(__file__).resolve().parents[2] / name).read_text()
    assert not NAMED.findall(source)
    assert "every thread stopped" not in source


def test_every_lesson_folder_ships_in_the_wheel() -> None:
    """The story and views of each lesson ship with the lesson's folder (tracer.scenarios.<package> in the wheel)."""
    import fnmatch
    import tomllib

    from tracer.stories import story_folders

    repo = Path(__file__).resolve().parents[2]
    shipped = tomllib.loads((repo / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    assert story_folders() == ("fork_cow", "fork_vs_thread", "memfd_share")
    for folder in story_folders():
        for name in ("__init__.py", "story.py", "views.py"):
            assert any(fnmatch.fnmatch(f"{folder}/{name}", pattern) for pattern in shipped["tracer.scenarios"])


# ---- inside the memfd steps: objects at their allocation, the first-touch frame ------------------

def inside(doctor: Doctor = untouched) -> Told:
    return told(STORIES / "memfd-share-inside.jsonl", doctor)


def test_the_struct_file_at_its_allocation_is_the_one_memfd_create_returned() -> None:
    [said] = inside().lines("allocated: memfd_create allocated this very struct file")
    assert "alloc_file_pseudo <- __shmem_file_setup <- __do_sys_memfd_create" in said
    assert inside().lines("and its inode")

    def other_filp(events: list[Event], _: list[dict[str, Any]]) -> None:
        for event in the(events, "memfd_create") + the(events, "shmem_file_setup"):
            event.detail["filp_alloc"] = "0xffff888100000000"
    doctored = inside(other_filp)
    assert not doctored.lines("allocated: memfd_create allocated this very struct file")
    assert doctored.lines("the struct file allocated inside memfd_create (0xffff888100000000) is not the one")

    def unseen(events: list[Event], _: list[dict[str, Any]]) -> None:
        for event in the(events, "memfd_create") + the(events, "shmem_file_setup"):
            event.detail.pop("filp_alloc")
    assert "allocated inside memfd_create" not in inside(unseen).text and "allocated: " not in inside(unseen).text

    def other_inode(events: list[Event], _: list[dict[str, Any]]) -> None:
        for event in the(events, "memfd_create") + the(events, "shmem_file_setup"):
            event.detail["inode_alloc"] = "0xffff888100000000"
    assert not inside(other_inode).lines("and its inode")


def test_the_vma_allocated_inside_mmap_is_said_only_when_it_is_the_mapped_one() -> None:
    assert len([line for line in inside().text.splitlines() if "was allocated inside that mmap" in line]) == 2

    def moved(events: list[Event], _: list[dict[str, Any]]) -> None:
        for event in the(events, "do_mmap", "receiver"):
            event.detail["vma_alloc"] = "0xffff888100000000"
    assert len([line for line in inside(moved).text.splitlines() if "was allocated inside that mmap" in line]) == 1


def test_the_first_touch_frame_rests_on_the_kernels_allocation_and_pagemap() -> None:
    [touch] = inside().lines("first touch: sender's write")
    [event] = the(inside().events, "memfd_page", "sender", was_present=False)
    assert f"PFN {event.detail['pfn']:#x}" in touch and "shmem_alloc_folio" in touch
    assert touch.endswith("/proc/PID/pagemap shows the same frame there")
    assert inside().lines('correction to the article ("mmap requests shareable physical memory")')

    dropped = inside(lambda events, _: drop(events, the(events, "memfd_page", "sender")))
    assert not dropped.lines("first touch:") and "correction to the article" not in dropped.text

    unmapped = inside(lambda events, _: drop(events, the(events, "do_mmap", "sender")))
    assert unmapped.lines("first touch:") and "correction to the article" not in unmapped.text

    unlooked = inside(lambda events, _: drop(events, the(events, "page", "sender")))
    [touch] = unlooked.lines("first touch:")
    assert "pagemap" not in touch

    def other_frame(events: list[Event], _: list[dict[str, Any]]) -> None:
        for page in the(events, "page", "sender"):
            page.detail["pfn"] += 1
    [touch] = inside(other_frame).lines("first touch:")
    assert "pagemap showed" in touch and "same frame" not in touch


def test_the_copy_frame_from_the_kernel_rests_on_the_receivers_write_fault() -> None:
    [copy_line] = inside().lines("copy on write, in the kernel: receiver's write fault")
    assert "do_wp_page" in copy_line and copy_line.endswith("shows the same frame there")
    assert not inside(lambda events, _: drop(events, the(events, "memfd_page", "receiver"))).lines(
        "copy on write, in the kernel")


def test_a_read_only_shared_mapping_is_explained_by_its_f_mode() -> None:
    [said] = inside().lines("gconv-modules.cache mapped MAP_SHARED by")
    assert "has no VM_SHARED" in said and "f_mode is FMODE_READ, without FMODE_WRITE" in said
    assert inside().lines("kernel source (mm/mmap.c do_mmap)")

    def no_mode(events: list[Event], _: list[dict[str, Any]]) -> None:
        for event in the(events, "do_mmap"):
            event.detail.pop("f_mode", None)
    assert "mapped MAP_SHARED by" not in inside(no_mode).text and "mm/mmap.c do_mmap" not in inside(no_mode).text

    def shared(events: list[Event], _: list[dict[str, Any]]) -> None:
        for event in the(events, "do_mmap"):
            if event.detail.get("file_name") == "gconv-modules.cache":
                event.detail["vm_flags"] = [*event.detail["vm_flags"], "VM_SHARED"]
    assert "gconv-modules.cache mapped MAP_SHARED" not in inside(shared).text
