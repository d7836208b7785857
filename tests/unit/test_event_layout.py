"""The Python mirrors of probes/event.h and of the lessons' payloads are the C layout: every member's
offset and size, as gcc compiles it.

The C program is generated from the mirrors (tracer/events.py, each lesson's lesson.py) and includes the
union the loader generates from the lessons (tracer/lessons.py payload_header_text), so a member or a lesson
added is checked without touching this test; a member added to C only changes the struct's size, checked too.
"""
from __future__ import annotations

import inspect
import keyword
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tracer import lessons
from tracer.events import EVENT_HEADER, FILE_IDENTITY, CStruct
from tracer.loader import PAYLOADS_FILE

PROBES = Path(__file__).resolve().parents[2] / "probes"
EVENT_H = PROBES / "event.h"
LAYOUT = lessons.event_layout()
PAYLOADS = tuple(dict.fromkeys(payload.struct for payload in lessons.payload_members()))
STEP_PAYLOADS = lessons.step_payloads()
TYPES = "typedef unsigned char u8; typedef unsigned short u16; typedef unsigned int u32;\n" \
        "typedef unsigned long long u64; typedef int s32; typedef long long s64;\n"
UNION_MEMBERS = re.compile(r"union syspath_payload \{(?P<body>.*?)\};", re.DOTALL)


def _member_lines(mirror: CStruct) -> list[str]:
    c_type = f"struct {mirror.name}"
    lines = [f'printf("{mirror.name} sizeof %zu %zu\\n", (size_t)0, sizeof({c_type}));']
    for member, _ in mirror.members:
        lines.append(f'printf("{mirror.name} {member} %zu %zu\\n", offsetof({c_type}, {member}), '
                     f'sizeof((({c_type} *)0)->{member}));')
    return lines


def _program() -> str:
    lines = [line for mirror in (EVENT_HEADER, *PAYLOADS, FILE_IDENTITY) for line in _member_lines(mirror)]
    lines += ['printf("syspath_event payload %zu %zu\\n", offsetof(struct syspath_event, payload), '
              'sizeof(union syspath_payload));']
    lines += ['printf("syspath_event identity %zu %zu\\n", offsetof(struct syspath_event, identity), '
              'sizeof(struct file_identity));']
    body = "\n    ".join(lines)
    return f"#include <stddef.h>\n#include <stdio.h>\n{TYPES}#include \"{EVENT_H}\"\n" \
           f"int main(void)\n{{\n    {body}\n    return 0;\n}}\n"


@pytest.fixture(scope="module")
def compiled(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str], tuple[int, int]]:
    """(struct, member) -> (offset, size) as gcc lays out probes/event.h ("sizeof": (0, struct size))."""
    gcc = shutil.which("gcc")
    if gcc is None:
        pytest.skip("gcc is not installed: the C layout of probes/event.h cannot be compiled to compare")
    directory = tmp_path_factory.mktemp("layout")
    (directory / "layout.c").write_text(_program())
    (directory / PAYLOADS_FILE).write_text(lessons.payload_header_text())
    subprocess.run([gcc, "-Wall", "-Werror", f"-I{directory}", f"-I{PROBES}", "-o", str(directory / "layout"),
                    str(directory / "layout.c")],
                   check=True, capture_output=True, text=True)
    output = subprocess.run([str(directory / "layout")], check=True, capture_output=True, text=True).stdout
    layout = {}
    for line in output.splitlines():
        struct_name, member, offset, size = line.split()
        layout[(struct_name, member)] = (int(offset), int(size))
    return layout


@pytest.mark.parametrize("mirror", (EVENT_HEADER, *PAYLOADS, FILE_IDENTITY), ids=lambda mirror: mirror.name)
def test_every_member_sits_where_c_puts_it(compiled: dict[tuple[str, str], tuple[int, int]], mirror: CStruct) -> None:
    for member, placed in mirror.offsets().items():
        assert compiled[(mirror.name, member)] == placed, f"struct {mirror.name}.{member}: C (offset, size) " \
                                                          f"{compiled[(mirror.name, member)]}, mirror {placed}"
    if mirror is not EVENT_HEADER:          # the header is followed by the union, not padding
        assert compiled[(mirror.name, "sizeof")][1] == mirror.layout.size


def test_the_payload_union_follows_the_header(compiled: dict[tuple[str, str], tuple[int, int]]) -> None:
    assert compiled[("syspath_event", "payload")] == (EVENT_HEADER.layout.size, LAYOUT.payload_size)
    assert compiled[("syspath_event", "sizeof")][1] == LAYOUT.size


def test_the_file_identity_follows_the_union(compiled: dict[tuple[str, str], tuple[int, int]]) -> None:
    assert compiled[("syspath_event", "identity")] == (LAYOUT.identity_offset, FILE_IDENTITY.layout.size)


def test_every_union_member_has_a_mirror_and_a_struct_in_its_lessons_header() -> None:
    match = UNION_MEMBERS.search(lessons.payload_header_text())
    assert match, "the generated header has no union syspath_payload"
    in_c = set(re.findall(r"struct (\w+) \w+;", match.group("body")))
    assert in_c == {mirror.name for mirror in PAYLOADS}
    headers = "".join((PROBES / each.package / each.payload_header).read_text()
                      for each in lessons.all_lessons() if each.payload_header)
    assert {name for name in in_c if f"struct {name} {{" not in headers} == set()


def _parameter(member: str) -> str:
    name = member.replace(".", "_")
    return f"{name}_" if keyword.iskeyword(name) else name


@pytest.mark.parametrize("step", sorted(STEP_PAYLOADS))
def test_each_detail_decoder_reads_its_payload_members_in_order(step: str) -> None:
    mirror, decode = STEP_PAYLOADS[step].struct, STEP_PAYLOADS[step].decode
    assert list(inspect.signature(decode).parameters) == [_parameter(member) for member, _ in mirror.members]
