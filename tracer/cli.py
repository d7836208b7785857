"""syspath's command line (argparse, bcc-tools conventions: examples in --help)."""
from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console

from tracer.catalog import MODES
from tracer.errors import SyspathError
from tracer.session import SCENARIOS

EXAMPLES = """examples:
    sudo syspath doctor                       # what this kernel allows, and how to fix what it does not
    sudo syspath probes memfd-share           # which hook stands for each step on this kernel
    sudo syspath run memfd-share              # the headline: two processes, one struct file, live
    sudo syspath run memfd-share --no-live --record out.jsonl
    sudo syspath trace -- ./my-program arg    # any program's process tree on the same steps
    syspath replay out.jsonl                  # play a recording back, no root needed
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="syspath", description="Watch the kernel path a program takes, with real pointers (eBPF).",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    doctor = commands.add_parser("doctor", help="what this kernel allows, with remedies")
    doctor.add_argument("--json", action="store_true", help="machine-readable output")

    probes = commands.add_parser("probes", help="which hook stands for each step here")
    probes.add_argument("scenario", nargs="?", choices=sorted(SCENARIOS), metavar="SCENARIO")
    probes.add_argument("--mode", default="auto", choices=MODES)
    probes.add_argument("--json", action="store_true", help="machine-readable output")

    run = commands.add_parser("run", help="run a scenario under the tracer")
    run.add_argument("scenario", metavar="SCENARIO", help=f"one of: {', '.join(SCENARIOS)}")
    _add_trace_options(run)

    trace = commands.add_parser("trace", help="trace any command's process tree")
    _add_trace_options(trace)
    trace.add_argument("argv", nargs=argparse.REMAINDER, metavar="-- CMD [ARGS...]")

    replay = commands.add_parser("replay", help="play a recording back (no root, no bcc)")
    replay.add_argument("recording", type=Path, metavar="F.jsonl")
    replay.add_argument("--no-live", action="store_true", help="plain text output")
    return parser


def _add_trace_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--mode", default="auto", choices=MODES,
                        help="auto (default): per step the best hook this kernel allows")
    parser.add_argument("--record", type=Path, metavar="F.jsonl", help="write a JSONL recording")
    parser.add_argument("--no-live", action="store_true", help="plain text at the end, for pipes and CI")


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return dispatch(args)
    except SyspathError as error:
        print(f"syspath: {error}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        print("syspath: interrupted", file=sys.stderr)
        return 130


def dispatch(args: argparse.Namespace) -> int:
    if args.command == "doctor":
        return cmd_doctor(args.json)
    if args.command == "probes":
        return cmd_probes(args.scenario, args.mode, args.json)
    if args.command == "replay":
        return cmd_replay(args.recording, args.no_live)
    if args.command == "trace":
        command = args.argv[1:] if args.argv[:1] == ["--"] else args.argv
        if not command:
            raise SyspathError("trace needs a command: syspath trace -- CMD [ARGS...]")
        return cmd_trace(None, command, args)
    return cmd_trace(args.scenario, [], args)


def cmd_doctor(as_json: bool) -> int:
    from tracer.doctor import as_json as checks_json, run_checks

    checks = run_checks()
    if as_json:
        print(json.dumps(checks_json(checks), indent=2))
    else:
        for check in checks:
            mark = "ok  " if check.available else "MISS"
            print(f"{mark} {check.name:<11} {check.detail}" + (f"\n     {'':<11} fix: {check.remedy}" if check.remedy else ""))
    return 0


def cmd_probes(scenario: str | None, mode: str, as_json: bool) -> int:
    from tracer import catalog, kernel
    from tracer.session import kernel_view

    kernel.require_root()
    kernel.require_bcc()
    kernel.use_headers()
    choices = catalog.resolve(scenario, mode, kernel_view())
    if as_json:
        print(json.dumps([choice.as_record() for choice in choices], indent=2))
        return 0
    from tracer.views.summary import hooks_table

    header = {"kernel": kernel.release(), "mode": mode, "scenario": scenario or "all steps",
              "hooks": [choice.as_record() for choice in choices]}
    Console().print(hooks_table(header))
    return 0


def cmd_trace(scenario: str | None, command: list[str], args: argparse.Namespace) -> int:
    from tracer.session import Observer, Session, scenario_command
    from tracer.views.live import LiveView, final_screen, program_lines, program_reports
    from tracer.views.plain import print_plain

    if scenario:
        scenario_command(scenario)              # unknown scenario: exit 2 before loading anything
    console = Console()
    view: Observer = Observer() if args.no_live else LiveView(console)
    try:
        result = Session(scenario, command, args.mode, args.record, view).run()
    finally:
        if isinstance(view, LiveView):
            view.stop()
    output = program_lines(result.output)
    startup = result.startup
    print(f"syspath: probes attached {startup.total_s:.2f} s after start (BTF offsets {startup.btf_s:.3f} s, "
          f"compile+load+attach {startup.compile_s:.2f} s)", file=sys.stderr)
    reports = program_reports(result.output)
    if args.no_live:
        print_plain(result.header, result.events, output, result.lost, sys.stdout, reports)
    else:
        console.print(final_screen(result.header, result.events, output, result.lost, reports))
    if scenario:
        return 0 if result.exit_code == 0 else 1
    return result.exit_code


def cmd_replay(path: Path, no_live: bool) -> int:
    from tracer.record import read_recording
    from tracer.views.live import final_screen
    from tracer.views.plain import print_plain

    recording = read_recording(path)
    lost = int((recording.summary or {}).get("lost", 0))
    if no_live:
        print_plain(recording.session, recording.events, [], lost, sys.stdout)
    else:
        Console().print(final_screen(recording.session, recording.events, [], lost))
    return 0
