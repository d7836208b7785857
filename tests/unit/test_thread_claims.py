"""fork-vs-thread's claims about what a thread library does (seed 2's article): each sentence is
told from a real recording (tests/fixtures/stories/fork-vs-thread-claims.jsonl, syscall tier,
this project's kernel), then from the same recording doctored (the event or report it rests on
dropped or altered), and the sentence must go or change."""
from __future__ import annotations

from typing import Any

from tests.unit.test_stories import STORIES, Doctor, Told, drop, the, told, untouched
from tracer.events import Event

RECORDING = STORIES / "fork-vs-thread-claims.jsonl"


def claims(doctor: Doctor = untouched) -> Told:
    return told(RECORDING, doctor)


def dropping(step: str, **detail: object) -> Doctor:
    return lambda events, _: drop(events, the(events, step, **detail))


def test_the_thread_stack_rests_on_its_thread_stack_event() -> None:
    plain = claims()
    [stack] = [line for line in plain.lines("stack: 8392704 bytes mapped at") if "PROT_NONE" in line][:1]
    assert "MAP_STACK" in stack
    assert plain.lines("guard: the lowest 4096 bytes stayed PROT_NONE")
    assert plain.lines("clone3 got stack") and "struct pthread" in plain.lines("clone3 got stack")[0]
    [seen] = plain.lines("observed [program report 3 (stack)]")
    assert seen.endswith("inside the recorded stack mapping")
    gone = claims(dropping("thread_stack"))
    assert not gone.lines("stack: ") and not gone.lines("guard:") and not gone.lines("clone3 got stack")
    assert not gone.lines("observed [program report 3 (stack)]")


def test_the_guard_is_said_only_when_the_mprotect_left_one() -> None:
    def no_guard(events: list[Event], _: list[dict[str, Any]]) -> None:
        for event in the(events, "thread_stack"):
            event.detail["guard"] = None
    assert not claims(no_guard).lines("guard: the lowest")


def test_a_stack_pointer_outside_the_mapping_is_said_to_disagree() -> None:
    def elsewhere(_: list[Event], outputs: list[dict[str, Any]]) -> None:
        for output in outputs:
            seen = output["report"].get("stack_seen")
            if seen:
                seen["sp"] = "0x10"
    [seen] = claims(elsewhere).lines("observed [program report 3 (stack)]")
    assert seen.endswith("they disagree")


def test_clone_flags_and_their_meaning_rest_on_the_clone_events() -> None:
    plain = claims()
    assert any("CLONE_SETTLS" in line for line in plain.lines("clone flags:"))
    assert any("CLONE_VFORK: the parent sleeps" in line for line in plain.lines("kernel source (kernel/fork.c)"))

    def no_settls(events: list[Event], _: list[dict[str, Any]]) -> None:
        for event in the(events, "clone"):
            event.detail["flags"] = [flag for flag in event.detail["flags"] if flag != "CLONE_SETTLS"]
    assert not any("CLONE_SETTLS" in line for line in claims(no_settls).lines("kernel source (kernel/fork.c)"))
    assert not claims(dropping("clone")).lines("clone flags:")


def test_no_manager_thread_rests_on_the_clone_in_the_calling_thread() -> None:
    assert claims().lines("made by thread")

    def door_unknown(events: list[Event], _: list[dict[str, Any]]) -> None:
        for event in the(events, "clone"):
            event.detail["entry"] = None
    assert not claims(door_unknown).lines("made by thread")


def test_the_first_cpu_rests_on_sched_wakeup_new() -> None:
    assert claims().lines("first woke on CPU")
    assert not claims(dropping("first_wakeup")).lines("first woke on CPU")


def test_history_lines_rest_on_the_recorded_clones() -> None:
    plain = claims()
    [pid] = plain.lines("History: the article's CLONE_PID")
    assert "set in 0 of the 6 clones here" in pid
    assert plain.lines("History: tid") and "shares sighand_struct" in plain.lines("History: tid")[0]
    assert not claims(dropping("clone")).lines("History:")

    def group_shared(events: list[Event], _: list[dict[str, Any]]) -> None:
        for event in the(events, "clone", kind="process"):
            event.detail["shared"]["signal"] = True
    assert not claims(group_shared).lines("History: tid")


def test_the_blocked_mask_is_per_thread_where_the_kernel_read_it() -> None:
    [usr1] = [line for line in claims().lines("Signal: SIGUSR1") if "not the main thread" in line]
    assert "blocks it and thread" in usr1 and "wrong for today" in usr1

    def unread(events: list[Event], _: list[dict[str, Any]]) -> None:
        for event in the(events, "signal_generate", sig=10):
            event.detail["target_blocks"] = None
    assert not any("blocks it and thread" in line for line in claims(unread).lines("Signal: SIGUSR1"))


def test_signal_33_and_each_threads_own_setuid() -> None:
    plain = claims()
    [sent] = plain.lines("Signal: signal 33 (glibc's SIGSETXID)")
    assert "to thread" in sent and "alone" in sent and "complete_signal" not in sent
    creds = plain.lines("setuid(")
    assert len(creds) == 3
    assert "after signal 33 from thread" in creds[0] and "after it sent signal 33 to thread" in creds[1]
    assert "this thread's alone" in creds[2]
    without = claims(dropping("signal_generate", sig=33))
    assert not without.lines("Signal: signal 33")
    assert not any("signal 33 from" in line or "sent signal 33" in line for line in without.lines("setuid("))
    # the broadcast's two changes are close together: neither is told as one thread's alone
    assert sum("this thread's alone" in line for line in without.lines("setuid(")) == 1
    assert not claims(dropping("cred_change")).lines("setuid(")


def test_nice_is_per_thread_when_read_back_so() -> None:
    [nice] = claims().lines("nice:")
    assert "the nice value is the thread's own" in nice
    assert not claims(dropping("nice")).lines("nice:")

    def same_everywhere(events: list[Event], _: list[dict[str, Any]]) -> None:
        for event in the(events, "nice", call="getpriority"):
            event.detail["nice"] = 5
    assert "the thread's own" not in claims(same_everywhere).lines("nice:")[0]


def test_a_join_waits_on_the_tid_word_without_signals() -> None:
    [join] = claims().lines("join:")
    assert "CLONE_CHILD_CLEARTID" in join and "no signal was sent meanwhile" in join
    assert not claims(dropping("join_futex")).lines("join:")

    def signalled(events: list[Event], _: list[dict[str, Any]]) -> None:
        [wait] = the(events, "join_futex")
        [usr1] = the(events, "signal_generate", sig=10)[:1]
        usr1.ts_ns = wait.ts_ns - 1000
    assert "no signal" not in claims(signalled).lines("join:")[0]


def test_a_refused_clone_and_the_limit_that_refused_it() -> None:
    plain = claims()
    [refused] = plain.lines("clone refused:")
    assert "EAGAIN" in refused and "RLIMIT_NPROC counts threads" in refused
    assert plain.lines("observed [program report 16 (limits)]")
    gone = claims(dropping("clone_failed"))
    assert not gone.lines("clone refused:") and not gone.lines("observed [program report 16 (limits)]")

    def count_unknown(events: list[Event], _: list[dict[str, Any]]) -> None:
        for event in the(events, "clone_failed"):
            event.detail.update(nproc_count=None, limit=None)
    [vague] = claims(count_unknown).lines("clone refused:")
    assert "counts threads" not in vague and "EAGAIN" in vague


def test_sigstop_to_the_linuxthreads_task_stops_it_alone() -> None:
    [alone] = claims().lines("observed [program report 8 (linuxthreads)]")
    assert "it alone stopped, since its thread group is itself" in alone

    def no_stop_seen(events: list[Event], _: list[dict[str, Any]]) -> None:
        drop(events, [e for e in the(events, "signal_generate", sig=17) if e.stack and "do_signal_stop" in e.stack])
    [told_without] = claims(no_stop_seen).lines("observed [program report 8 (linuxthreads)]")
    assert "it alone stopped" not in told_without


def test_sigchld_notices_are_counted_by_their_code_and_ignored_explained() -> None:
    [notices] = claims().lines("Signal: and 7 SIGCHLD notices")
    assert "(3 CLD_EXITED, 2 CLD_STOPPED, 2 CLD_CONTINUED)" in notices
    assert "sig_ignored" in notices and "kernel source" in notices and "wait4()" in notices

    def no_continued(events: list[Event], _: list[dict[str, Any]]) -> None:
        drop(events, the(events, "signal_generate", sig=17, code=6))
    [fewer] = claims(no_continued).lines("Signal: and 5 SIGCHLD notices")
    assert "(3 CLD_EXITED, 2 CLD_STOPPED)" in fewer and "CLD_CONTINUED" not in fewer


def test_each_signal_row_says_its_code_and_what_became_of_it() -> None:
    from scenarios.fork_vs_thread.views import signal_row_text
    rows = {(e.step, e.detail["sig"], e.detail["code"]): signal_row_text(e.step, e.detail)
            for e in claims().events if e.step in ("signal_generate", "signal_deliver")}
    assert rows[("signal_generate", 17, 1)].startswith("SIGCHLD [CLD_EXITED: the child exited] to process ")
    assert rows[("signal_generate", 17, 1)].endswith(": dropped as it was queued (ignored)")
    setxid = the(claims().events, "signal_generate", sig=33)[0].detail["target_tid"]
    assert rows[("signal_generate", 33, -6)].endswith(f"[SI_TKILL: tgkill()] to thread {setxid} alone: queued")
    assert rows[("signal_deliver", 19, 0)] == "SIGSTOP [SI_USER: kill()] taken here, handler: default action"
    sent = the(claims().events, "signal_generate", sig=10)[0]
    sent.detail["result"] = "already pending"
    assert ": already pending when queued; the target blocks it" in signal_row_text("signal_generate", sent.detail)


def test_the_structures_table_keeps_its_verdicts_readable_on_a_narrow_screen() -> None:
    from scenarios.fork_vs_thread.views import TaskTable
    from tracer.text import console

    table = next(panel for story in claims().findings.stories for panel in story.panels()
                 if type(panel).__name__ == TaskTable.__name__)      # the lesson loader imports its own copy
    task = table.task
    for width in (80, 100, 130):
        screen = console(width=width, record=True)
        screen.print(table)
        text = screen.export_text()
        assert "decided by" in text and "shared (CLONE_VM);" in text
        for row in task.rows:              # each pointer whole, parent's and child's
            assert text.count(row.parent or "-") >= 2 - (row.parent != row.child)
