"""syspath's command line (argparse, bcc-tools conventions: examples in --help)."""
from __future__ import annotations

import argparse
import io
import json
import shutil
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from tracer import lessons
from tracer.catalog import MODES
from tracer.errors import Interrupted, SyspathError, interrupt_exit_code
from tracer.events import Event
from tracer.findings import Findings
from tracer.observer import Observer, Observers, OutputLine
from tracer.resources import version
from tracer.text import console

if TYPE_CHECKING:
    from tracer.exports import ChromeTraceSpool
    from tracer.session import SessionResult

EXPORT_WIDTH = 160          # columns of the exported screen
EXAMPLES = """examples:
    sudo syspath doctor                       # what this kernel allows, and how to fix what it does not
    sudo syspath probes memfd-share           # which hook stands for each step on this kernel
    sudo syspath run memfd-share              # the headline: two processes, one struct file, live
    sudo syspath run memfd-share --no-live --record out.jsonl
    sudo syspath run memfd-share --step       # classroom: pause before each step, Enter goes on
    sudo syspath run fork-vs-thread --pace 2 --export-svg screen.svg
    syspath lessons                           # the lessons, their steps, and which hook shows each here
    sudo syspath trace --follow-file -- ./my-program arg   # any program's process tree, same steps
    syspath replay out.jsonl --speed 0.5      # play a recording back at half speed, no root needed
    syspath replay out.jsonl --chrome-trace out.trace.json   # open in Perfetto or chrome://tracing
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="syspath", description="Watch the kernel path a program takes, with real pointers (eBPF).",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action=_Version, nargs=0, help="show syspath's version and exit")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    doctor = commands.add_parser("doctor", help="what this kernel allows, with remedies")
    doctor.add_argument("--json", action="store_true", help="machine-readable output")

    probes = commands.add_parser("probes", help="which hook stands for each step here")
    probes.add_argument("scenario", nargs="?", choices=lessons.names(), metavar="SCENARIO")
    probes.add_argument("--mode", default="auto", choices=MODES)
    probes.add_argument("--json", action="store_true", help="machine-readable output")

    run = commands.add_parser("run", help="run a scenario under the tracer", epilog=EXAMPLES,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    run.add_argument("scenario", metavar="SCENARIO", help=f"one of: {', '.join(lessons.runnable())}")
    _add_trace_options(run)

    listing = commands.add_parser("lessons", help="the lessons: what each shows, its steps, which hook shows each here")
    listing.add_argument("--json", action="store_true", help="machine-readable output")

    trace = commands.add_parser("trace", help="trace any command's process tree", epilog=EXAMPLES,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_trace_options(trace)
    trace.add_argument("argv", nargs=argparse.REMAINDER, metavar="-- CMD [ARGS...]")

    replay = commands.add_parser("replay", help="play a recording back (no root, no bcc)", epilog=EXAMPLES,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    replay.add_argument("recording", type=Path, metavar="F.jsonl")
    replay.add_argument("--no-live", action="store_true", help="plain text output")
    replay.add_argument("--speed", type=_positive, default=None, metavar="X",
                        help="replay the events at X times their recorded pace (default: show at once)")
    _add_output_options(replay)
    return parser


class _Version(argparse.Action):
    """--version, read from the package metadata only when asked (it costs a scan of sys.path)."""

    def __call__(self, parser: argparse.ArgumentParser, *_: object) -> None:
        print(f"syspath {version()}")
        parser.exit()


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive number")
    return value


def _add_output_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--follow-file", action="store_true",
                        help="tell the life story of each memfd's struct file, across processes")
    parser.add_argument("--export-svg", type=Path, metavar="F.svg", help="save the final screen as SVG")
    parser.add_argument("--export-html", type=Path, metavar="F.html",
                        help="save an interactive report (one file, opens offline): diagram, timeline, paths")
    parser.add_argument("--chrome-trace", type=Path, metavar="F.json",
                        help="save the events in Trace Event Format (Perfetto, chrome://tracing)")


def _add_trace_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--mode", default="auto", choices=MODES,
                        help="auto (default): per step the best hook this kernel allows")
    parser.add_argument("--record", type=Path, metavar="F.jsonl", help="write a JSONL recording")
    parser.add_argument("--no-live", action="store_true", help="plain text at the end, for pipes and CI")
    pacing = parser.add_mutually_exclusive_group()
    pacing.add_argument("--step", action="store_true", help="pause before each step of the scenario (Enter)")
    pacing.add_argument("--pace", type=_positive, metavar="SECONDS", help="pause SECONDS before each step")
    _add_output_options(parser)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    previous = {signum: signal.signal(signum, _interrupt) for signum in (signal.SIGTERM, signal.SIGHUP)}
    try:
        return dispatch(args)
    except SyspathError as error:
        print(f"syspath: {error}", file=sys.stderr)
        return error.exit_code
    except OSError as error:         # a file or device the user named, or the machine, said no
        where = f" {error.filename}" if error.filename else ""
        print(f"syspath:{where} {error.strerror or error}: check the path and its permissions", file=sys.stderr)
        return 2
    except (KeyboardInterrupt, Interrupted) as stop:
        saved = f"; recording saved in {args.record}" if getattr(args, "record", None) else ""
        print(f"syspath: interrupted, probes detached{saved}", file=sys.stderr)
        return interrupt_exit_code(stop)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _interrupt(signum: int, _frame: object) -> None:
    raise Interrupted(signum)


def dispatch(args: argparse.Namespace) -> int:
    if args.command == "doctor":
        return cmd_doctor(args.json)
    if args.command == "probes":
        return cmd_probes(args.scenario, args.mode, args.json)
    if args.command == "replay":
        return cmd_replay(args.recording, args)
    if args.command == "lessons":
        return cmd_lessons(args.json)
    if args.command == "trace":
        command = args.argv[1:] if args.argv[:1] == ["--"] else args.argv
        if not command:
            raise SyspathError("trace needs a command: syspath trace -- CMD [ARGS...]")
        if shutil.which(command[0]) is None:
            raise SyspathError(f"{command[0]}: command not found (or not executable)")
        return cmd_trace(None, command, args)
    return cmd_trace(args.scenario, [], args)


def cmd_doctor(as_json: bool) -> int:
    from tracer.doctor import as_json as checks_json, run_checks

    checks = run_checks()
    if as_json:
        print(json.dumps(checks_json(checks), indent=2))
    else:
        width = max(len(check.name) for check in checks)
        for check in checks:
            mark = "ok  " if check.available else "MISS"
            print(f"{mark} {check.name:<{width}} {check.detail}"
                  + (f"\n     {'':<{width}} fix: {check.remedy}" if check.remedy else ""))
    return 0


def cmd_probes(scenario: str | None, mode: str, as_json: bool) -> int:
    from tracer import kernel
    from tracer.build import choose_hooks

    choices = choose_hooks(scenario, mode)
    if as_json:
        print(json.dumps([choice.as_record() for choice in choices], indent=2))
        return 0
    from tracer.views.summary import hooks_table

    header = {"kernel": kernel.release(), "mode": mode, "scenario": scenario or "all steps",
              "hooks": [choice.as_record() for choice in choices]}
    console().print(hooks_table(header))
    return 0


def cmd_lessons(as_json: bool) -> int:
    """Each lesson and its steps; which hook can show each step on this kernel where that can be
    asked (it needs root to read kallsyms and BTF: without, the steps alone)."""
    from tracer.views.lessons import lesson_rows, lessons_table

    rows = lesson_rows()
    if as_json:
        print(json.dumps(rows, indent=2))
    else:
        console().print(lessons_table(rows))
    return 0


class EventList(Observer):
    """The first events, for the HTML report written at the end."""

    def __init__(self, limit: int | None = None) -> None:
        self.events: list[Event] = []
        self.limit = limit

    def event(self, event: Event) -> None:
        if self.limit is None or len(self.events) < self.limit:
            self.events.append(event)


def event_list(args: argparse.Namespace) -> EventList | None:
    from tracer.views.report import SHOWN_EVENTS

    return EventList(SHOWN_EVENTS) if args.export_html else None


def trace_spool(args: argparse.Namespace) -> ChromeTraceSpool | None:
    """--chrome-trace of a session: written out as the events come, not kept."""
    from tracer.exports import ChromeTraceSpool

    return ChromeTraceSpool() if args.chrome_trace else None


def interactive(args: argparse.Namespace) -> bool:
    """The explorer owns the terminal when there is one both ways and --no-live was not asked."""
    return not args.no_live and sys.stdout.isatty() and sys.stdin.isatty()


def views_for(args: argparse.Namespace, findings: Findings,
              spool: ChromeTraceSpool | None = None) -> tuple[Observers, EventList | None]:
    """The findings model first (the views read it), then the plain lines if asked for."""
    from tracer.views.plain import PlainView

    kept = event_list(args)
    width = shutil.get_terminal_size().columns if sys.stdout.isatty() else None
    screen = PlainView(findings, sys.stdout, follow=args.follow_file, width=width) if args.no_live else None
    return Observers(*(o for o in (findings, screen, kept, spool) if o is not None)), kept


def explorer_views(feed: Observer, args: argparse.Namespace,
                   spool: ChromeTraceSpool | None) -> tuple[Observer, EventList | None]:
    """The explorer's feed, and beside it what the exports asked for keep or spool."""
    kept = event_list(args)
    extra = [o for o in (kept, spool) if o is not None]
    return (Observers(feed, *extra) if extra else feed), kept


def cmd_trace(scenario: str | None, command: list[str], args: argparse.Namespace) -> int:
    from tracer.session import Pacing, Session
    from tracer.target import scenario_command

    if scenario:
        scenario_command(scenario)              # unknown scenario: exit 2 before loading anything
    check_outputs(args)
    if args.step and not sys.stdin.isatty():
        raise SyspathError("--step waits for Enter on a terminal; without one, use --pace SECONDS")
    findings = Findings()
    spool = trace_spool(args)
    if interactive(args):
        result, events = explore_session(scenario, command, args, findings, spool)
    else:
        pacing = Pacing(None) if args.step else Pacing(args.pace) if args.pace else None
        observers, kept = views_for(args, findings, spool)
        result = Session(scenario, command, args.mode, args.record, observers, pacing).run()
        events = kept.events if kept else []
    if result.startup:
        print(f"syspath: {result.startup.line()}", file=sys.stderr)
    show(findings, args, events, explored=interactive(args), spool=spool)
    if scenario:
        return 0 if result.exit_code == 0 else 1
    return result.exit_code


def explore_session(scenario: str | None, command: list[str], args: argparse.Namespace,
                    findings: Findings, spool: ChromeTraceSpool | None) -> tuple[SessionResult, list[Event]]:
    """The session in a worker thread, the explorer on the terminal; --step/--pace are keys there."""
    from tracer.preflight import preflight
    from tracer.session import Pacing, Session
    from tracer.views.explorer import run_explorer
    from tracer.views.feed import Feed

    preflight()                                 # not root, no bcc: one line before the screen opens
    feed = Feed(findings)
    pacing = (Pacing(args.pace, ready=feed.ready, key="space", resumed=feed.resumed)
              if args.step or args.pace else None)
    observer, kept = explorer_views(feed, args, spool)
    session = Session(scenario, command, args.mode, args.record, observer, pacing)
    return run_explorer(feed, session.run, live=True), kept.events if kept else []


def check_outputs(args: argparse.Namespace) -> None:
    from tracer.userfiles import ensure_writable

    for option, what in (("record", "recording"), ("export_svg", "SVG export"), ("export_html", "HTML export"),
                         ("chrome_trace", "Chrome trace")):
        if getattr(args, option, None):
            ensure_writable(getattr(args, option), what)


def show(findings: Findings, args: argparse.Namespace, events: list[Event], explored: bool = False,
         spool: ChromeTraceSpool | None = None) -> None:
    """The final screen (after the explorer: its essentials only, to stay in the terminal),
    then the exports asked for: the HTML report of the first `events`, the Chrome trace from
    the spool its events were written to as they came."""
    from tracer.userfiles import write_user_file
    from tracer.views.live import essentials, final_screen

    wanted = args.export_svg or not (args.no_live or explored)
    screen = final_screen(findings, follow=args.follow_file) if wanted else None
    if not args.no_live:
        console().print(essentials(findings) if explored else screen)
    if args.export_svg:
        recorder = console(record=True, width=EXPORT_WIDTH, file=io.StringIO())
        recorder.print(screen)
        header = findings.header
        title = f"syspath {header.get('scenario') or ' '.join(header.get('command') or [])}"
        write_user_file(args.export_svg, recorder.export_svg(title=title, clear=False))
    if args.export_html:
        from tracer.views.report import html_report

        write_user_file(args.export_html, html_report(findings, events or findings.timeline.first))
    if spool is not None:
        spool.save(args.chrome_trace)


def cmd_replay(path: Path, args: argparse.Namespace) -> int:
    """The recording is read as it is shown, twice with --speed outside the explorer: its
    events and output lines go to the views and exports as they are read, none is kept for them."""
    from tracer.recording import open_recording
    from tracer.replay import play, tell
    from tracer.views.live import replay_live

    check_outputs(args)
    recording = open_recording(path)
    summary = recording.summary or {}
    if recording.summary is None:
        print(f"syspath: {path} has no summary line: the tracer stopped early (killed?); "
              "showing the events it had written", file=sys.stderr)
    if summary.get("undecoded"):
        print(f"syspath: the tracer was stopped with {summary['undecoded']:,} events undecoded: "
              "they are not in the recording", file=sys.stderr)
    lost, exit_code = int(summary.get("lost", 0)), int(summary.get("exit_code", -1))
    lost_steps = dict(summary.get("lost_steps", {}))
    findings = Findings()
    spool = trace_spool(args)
    outputs = 0
    if interactive(args):
        from tracer.views.explorer import run_explorer
        from tracer.views.feed import Feed

        feed = Feed(findings)
        observer, kept = explorer_views(feed, args, spool)

        def played() -> None:
            nonlocal outputs
            outputs = play(observer, recording.session, recording.played(), args.speed, lost, exit_code, lost_steps)

        run_explorer(feed, played, live=False)
    else:
        observers, kept = views_for(args, findings, spool)
        observers.started(recording.session)
        for item in recording.played():
            tell(observers, item)
            outputs += isinstance(item, OutputLine)
        if args.speed and not args.no_live:
            replay_live(findings, recording.played(), args.speed, console())
        observers.finished(lost, exit_code, lost_steps)
    show(findings, args, kept.events if kept else [], explored=interactive(args), spool=spool)
    if recording.session.get("scenario") and not outputs:
        print(f"syspath: {path} holds no line of the program's output (a recording made before syspath "
              "kept them): what the scenario itself observed is not shown", file=sys.stderr)
    return 0
