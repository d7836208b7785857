from __future__ import annotations

import json
import os
import re
import shutil
import struct
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pytest

from tracer.btf import Btf, BtfError, Member, resolve_offsets, resolve_type_ids

VMLINUX = "/sys/kernel/btf/vmlinux"
BPFTOOL = "/usr/sbin/bpftool"


# --- a tiny BTF writer -------------------------------------------------------

KIND = {"INT": 1, "PTR": 2, "ARRAY": 3, "STRUCT": 4, "UNION": 5, "TYPEDEF": 8, "VOLATILE": 9, "CONST": 10,
        "FUNC": 12, "FUNC_PROTO": 13}


@dataclass
class BtfBuilder:
    byteorder: str = "<"
    strings: bytearray = field(default_factory=lambda: bytearray(b"\0"))
    types: list[list[int]] = field(default_factory=list)

    def string(self, name: str) -> int:
        if not name:
            return 0
        offset = len(self.strings)
        self.strings += name.encode() + b"\0"
        return offset

    def add(self, kind: str, name: str, size_or_type: int, extra: Sequence[int] = (), vlen: int = 0,
            kind_flag: bool = False) -> int:
        info = (int(kind_flag) << 31) | (KIND[kind] << 24) | vlen
        self.types.append([self.string(name), info, size_or_type, *extra])
        return len(self.types)

    def int_(self, name: str, size: int, signed: bool = False) -> int:
        return self.add("INT", name, size, [(int(signed) << 24) | size * 8])

    def ptr(self, target: int) -> int:
        return self.add("PTR", "", target)

    def typedef(self, name: str, target: int) -> int:
        return self.add("TYPEDEF", name, target)

    def const(self, target: int) -> int:
        return self.add("CONST", "", target)

    def array(self, elem: int, index: int, nelems: int) -> int:
        return self.add("ARRAY", "", 0, [elem, index, nelems])

    def composite(self, kind: str, name: str, size: int, members: Sequence[tuple[str, int, int, int]]) -> int:
        kind_flag = any(bits for _, _, _, bits in members)
        words: list[int] = []
        for member_name, type_id, bit_offset, bits in members:
            words += [self.string(member_name), type_id, (bits << 24) | bit_offset if kind_flag else bit_offset]
        return self.add(kind, name, size, words, vlen=len(members), kind_flag=kind_flag)

    def func_proto(self, ret: int, params: Sequence[tuple[str, int]]) -> int:
        words: list[int] = []
        for name, type_id in params:
            words += [self.string(name), type_id]
        return self.add("FUNC_PROTO", "", ret, words, vlen=len(params))

    def func(self, name: str, proto: int) -> int:
        return self.add("FUNC", name, proto)

    def build(self) -> bytes:
        types = b"".join(struct.pack(f"{self.byteorder}{len(t)}I", *t) for t in self.types)
        header = struct.pack(f"{self.byteorder}HBBIIIII", 0xEB9F, 1, 0, 24, 0, len(types), len(types),
                             len(self.strings))
        return header + types + bytes(self.strings)


def synthetic(byteorder: str = "<") -> bytes:
    b = BtfBuilder(byteorder)
    int_ = b.int_("int", 4, signed=True)
    ulong = b.int_("long unsigned int", 8)
    uint = b.int_("unsigned int", 4)
    char = b.int_("char", 1, signed=True)
    myint = b.typedef("myint_t", b.const(int_))
    inner_struct = b.composite("STRUCT", "", 8, [("wanted", int_, 0, 0), ("other", myint, 32, 0)])
    anon_union = b.composite("UNION", "", 8, [("as_long", ulong, 0, 0), ("", inner_struct, 0, 0)])
    named_inner = b.composite("STRUCT", "inner", 16, [("x", char, 0, 0), ("y", ulong, 64, 0)])
    name_array = b.array(char, int_, 16)
    next_ptr = b.ptr(len(b.types) + 2)
    outer = b.composite("STRUCT", "outer", 56, [
        ("head", ulong, 0, 0),
        ("", anon_union, 64, 0),
        ("count", myint, 128, 0),
        ("next", next_ptr, 192, 0),
        ("in", named_inner, 256, 0),
        ("name", name_array, 384, 0),
    ])
    assert outer == next_ptr + 1
    b.composite("STRUCT", "bits", 12, [
        ("a", uint, 0, 3),
        ("b", uint, 3, 5),
        ("c", uint, 32, 0),
        ("e", uint, 72, 8),
    ])
    b.composite("UNION", "either", 8, [("i", int_, 0, 0), ("p", b.ptr(char), 0, 0)])
    callback = b.ptr(b.func_proto(int_, [("", int_)]))
    const_char_ptr = b.ptr(b.const(char))
    b.func("do_thing", b.func_proto(int_, [("o", b.ptr(outer)), ("n", ulong), ("s", const_char_ptr),
                                          ("cb", callback)]))
    b.func("say", b.func_proto(0, [("fmt", const_char_ptr), ("", 0)]))
    return b.build()


@pytest.fixture(params=["<", ">"], ids=["little-endian", "big-endian"])
def fake(request: pytest.FixtureRequest) -> Btf:
    return Btf.from_bytes(synthetic(request.param))


def test_member_inside_anonymous_union_and_struct(fake: Btf) -> None:
    assert fake.member("outer", "wanted") == Member("outer", "wanted", 8, 4)
    assert fake.member("outer", "other") == Member("outer", "other", 12, 4)
    assert fake.member("outer", "as_long") == Member("outer", "as_long", 8, 8)


def test_dotted_path_and_sizes(fake: Btf) -> None:
    assert fake.member("outer", "in.y") == Member("outer", "in.y", 40, 8)
    assert fake.member("outer", "in") == Member("outer", "in", 32, 16)
    assert fake.member("outer", "count").size == 4
    assert fake.member("outer", "next").size == 8
    assert fake.member("outer", "head").size == 8
    assert fake.member("outer", "name") == Member("outer", "name", 48, 16)


def test_bitfield_struct_offsets(fake: Btf) -> None:
    assert fake.member("bits", "a") == Member("bits", "a", 0, 4)
    assert fake.member("bits", "c") == Member("bits", "c", 4, 4)
    assert fake.member("bits", "e") == Member("bits", "e", 9, 4)
    with pytest.raises(BtfError, match="bitfield"):
        fake.member("bits", "b")


def test_missing_members_and_structs(fake: Btf) -> None:
    with pytest.raises(BtfError, match="struct outer has no member nope"):
        fake.member("outer", "nope")
    with pytest.raises(BtfError, match=r"outer\.head is not a struct or union"):
        fake.member("outer", "head.x")
    with pytest.raises(BtfError, match="no struct or union named ghost"):
        fake.member("ghost", "x")
    assert not fake.has_member("outer", "in.z")
    assert fake.has_member("outer", "in.x")
    assert fake.has_struct("outer") and fake.has_struct("either") and fake.has_struct("inner")
    assert not fake.has_struct("int") and not fake.has_struct("")


def test_union_and_first_member(fake: Btf) -> None:
    assert fake.member("either", "p") == Member("either", "p", 0, 8)
    assert fake.first_member("outer", ("f_ref", "count", "head")) == Member("outer", "count", 16, 4)
    with pytest.raises(BtfError, match="struct outer has none of the members f_ref, f_count"):
        fake.first_member("outer", ("f_ref", "f_count"))


def test_func_params(fake: Btf) -> None:
    assert fake.func_params("do_thing") == [
        ("o", "struct outer *"),
        ("n", "unsigned long"),
        ("s", "const char *"),
        ("cb", "int (*)(int)"),
    ]
    assert fake.func_params("say") == [("fmt", "const char *"), ("", "...")]
    assert fake.func_params("missing") is None
    assert fake.has_func("do_thing") and not fake.has_func("outer")


def test_type_ids_of_structs_and_functions(fake: Btf) -> None:
    outer, do_thing = fake.type_id("struct", "outer"), fake.type_id("func", "do_thing")
    assert outer is not None and do_thing is not None and outer != do_thing
    assert fake.func_params("do_thing")[0] == ("o", "struct outer *")   # the same BTF, read another way
    assert fake.type_id("struct", "either") is None          # a union is not a struct
    assert fake.type_id("func", "outer") is None and fake.type_id("struct", "do_thing") is None
    assert fake.type_id("struct", "missing") is None


def test_rejects_garbage() -> None:
    with pytest.raises(BtfError, match="magic"):
        Btf.from_bytes(b"\x7fELF" + bytes(40))
    with pytest.raises(BtfError, match="too short"):
        Btf.from_bytes(b"\x9f\xeb")
    with pytest.raises(BtfError):
        Btf.from_bytes(synthetic()[:-200])


# --- resolve_offsets and its cache --------------------------------------------

REQUESTS = {
    "OUTER_WANTED": ("outer", ("missing", "wanted")),
    "INNER_Y": ("outer", ("in.y",)),
}


@pytest.fixture
def btf_file(tmp_path: Path) -> str:
    path = tmp_path / "vmlinux.btf"
    path.write_bytes(synthetic())
    return str(path)


class LoadCounter:
    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls = 0
        real: Callable[[type[Btf], str], Btf] = Btf.load.__func__  # type: ignore[attr-defined]

        def counting(cls: type[Btf], path: str = VMLINUX) -> Btf:
            self.calls += 1
            return real(cls, path)
        monkeypatch.setattr(Btf, "load", classmethod(counting))


def test_resolve_offsets_caches(btf_file: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = tmp_path / "cache" / "syspath"
    first = resolve_offsets(REQUESTS, btf_path=btf_file, cache_dir=cache)
    assert first == {"OUTER_WANTED": Member("outer", "wanted", 8, 4), "INNER_Y": Member("outer", "in.y", 40, 8)}
    assert cache.stat().st_mode & 0o777 == 0o700
    assert [p.name for p in cache.iterdir() if p.name.startswith(".")] == []

    def no_parse(cls: type[Btf], path: str = VMLINUX) -> Btf:
        raise AssertionError("BTF parsed although the cache should have answered")
    monkeypatch.setattr(Btf, "load", classmethod(no_parse))
    assert resolve_offsets(REQUESTS, btf_path=btf_file, cache_dir=cache) == first


def test_changed_requests_miss_the_cache(btf_file: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    counter = LoadCounter(monkeypatch)
    resolve_offsets(REQUESTS, btf_path=btf_file, cache_dir=tmp_path)
    resolve_offsets(REQUESTS, btf_path=btf_file, cache_dir=tmp_path)
    assert counter.calls == 1
    changed = {**REQUESTS, "INNER_X": ("outer", ("in.x",))}
    assert resolve_offsets(changed, btf_path=btf_file, cache_dir=tmp_path)["INNER_X"].offset == 32
    assert counter.calls == 2
    reordered = {"OUTER_WANTED": ("outer", ("wanted", "missing")), "INNER_Y": ("outer", ("in.y",))}
    resolve_offsets(reordered, btf_path=btf_file, cache_dir=tmp_path)
    assert counter.calls == 3


def test_changed_btf_misses_the_cache(btf_file: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    counter = LoadCounter(monkeypatch)
    resolve_offsets(REQUESTS, btf_path=btf_file, cache_dir=tmp_path)
    st = os.stat(btf_file)
    os.utime(btf_file, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    resolve_offsets(REQUESTS, btf_path=btf_file, cache_dir=tmp_path)
    assert counter.calls == 2


def test_corrupt_cache_is_ignored(btf_file: str, tmp_path: Path) -> None:
    first = resolve_offsets(REQUESTS, btf_path=btf_file, cache_dir=tmp_path)
    [entry] = tmp_path.glob("offsets-*.json")
    wrong_path = {"OUTER_WANTED": {"struct": "outer", "path": "elsewhere", "offset": 1, "size": 1},
                  "INNER_Y": {"struct": "outer", "path": "in.y", "offset": 40, "size": 8}}
    for content in (json.dumps(wrong_path), "{not json", "[]", '{"OUTER_WANTED": {"struct": 1}}'):
        entry.write_text(content)
        assert resolve_offsets(REQUESTS, btf_path=btf_file, cache_dir=tmp_path) == first


def test_cache_writable_by_others_is_ignored(btf_file: str, tmp_path: Path) -> None:
    first = resolve_offsets(REQUESTS, btf_path=btf_file, cache_dir=tmp_path)
    [entry] = tmp_path.glob("offsets-*.json")
    forged = {name: {**asdict(m), "offset": m.offset + 8} for name, m in first.items()}
    entry.write_text(json.dumps(forged))
    assert resolve_offsets(REQUESTS, btf_path=btf_file, cache_dir=tmp_path) != first
    entry.write_text(json.dumps(forged))
    entry.chmod(0o666)
    assert resolve_offsets(REQUESTS, btf_path=btf_file, cache_dir=tmp_path) == first


def test_unwritable_cache_dir_is_ignored(btf_file: str, tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    members = resolve_offsets(REQUESTS, btf_path=btf_file, cache_dir=blocker / "cache")
    assert members["INNER_Y"].offset == 40


def test_no_cache_dir(btf_file: str, monkeypatch: pytest.MonkeyPatch) -> None:
    counter = LoadCounter(monkeypatch)
    resolve_offsets(REQUESTS, btf_path=btf_file, cache_dir=None)
    resolve_offsets(REQUESTS, btf_path=btf_file, cache_dir=None)
    assert counter.calls == 2


def test_unresolvable_request_names_struct_and_candidates(btf_file: str, tmp_path: Path) -> None:
    requests = {**REQUESTS, "FILE_REF": ("outer", ("f_ref", "f_count"))}
    with pytest.raises(BtfError, match="outer") as err:
        resolve_offsets(requests, btf_path=btf_file, cache_dir=tmp_path)
    assert "f_ref" in str(err.value) and "f_count" in str(err.value)
    assert list(tmp_path.glob("offsets-*.json")) == []


def test_missing_btf_file(tmp_path: Path) -> None:
    with pytest.raises(BtfError, match="cannot read BTF"):
        resolve_offsets(REQUESTS, btf_path=str(tmp_path / "absent"), cache_dir=tmp_path)


# --- the running kernel, checked against bpftool -------------------------------

RAW_TYPE = re.compile(r"^\[(\d+)\] (\w+) '([^']*)'(.*)$")
RAW_MEMBER = re.compile(r"^\t'([^']*)' type_id=(\d+) bits_offset=(\d+)")
ATTR = re.compile(r"(\w+)=(\S+)")


@dataclass
class RawType:
    kind: str
    name: str
    attrs: dict[str, str]
    members: list[tuple[str, int, int]]


class BpftoolBtf:
    """An independent reading of BTF: bpftool's raw dump, parsed line by line."""

    def __init__(self, dump: str) -> None:
        self.types: dict[int, RawType] = {}
        self.by_name: dict[str, int] = {}
        current: RawType | None = None
        for line in dump.splitlines():
            if m := RAW_TYPE.match(line):
                current = RawType(m[2], m[3], dict(ATTR.findall(m[4])), [])
                self.types[int(m[1])] = current
                if m[2] in ("STRUCT", "UNION"):
                    self.by_name.setdefault(m[3], int(m[1]))
            elif (m := RAW_MEMBER.match(line)) and current is not None:
                current.members.append((m[1], int(m[2]), int(m[3])))

    def strip(self, type_id: int) -> int:
        while self.types[type_id].kind in ("TYPEDEF", "CONST", "VOLATILE", "RESTRICT", "TYPE_TAG"):
            type_id = int(self.types[type_id].attrs["type_id"])
        return type_id

    def size(self, type_id: int) -> int:
        t = self.types[self.strip(type_id)]
        if t.kind == "PTR":
            return 8
        if t.kind == "ARRAY":
            return int(t.attrs["nr_elems"]) * self.size(int(t.attrs["type_id"]))
        return int(t.attrs["size"])

    def find(self, type_id: int, name: str) -> tuple[int, int, bool] | None:
        for member_name, member_type, bits in self.types[type_id].members:
            if member_name == name:
                return member_type, bits, False
        for member_name, member_type, bits in self.types[type_id].members:
            inner = self.strip(member_type)
            if member_name == "(anon)" and self.types[inner].kind in ("STRUCT", "UNION"):
                found = self.find(inner, name)
                if found is not None:
                    return found[0], bits + found[1], True
        return None

    def member(self, struct_name: str, path: str) -> tuple[int, int, bool]:
        type_id, bits, via_anon = self.by_name[struct_name], 0, False
        for name in path.split("."):
            found = self.find(self.strip(type_id), name)
            assert found is not None, f"bpftool: {struct_name} has no {path}"
            type_id, bits, via_anon = found[0], bits + found[1], via_anon or found[2]
        return bits // 8, self.size(type_id), via_anon


@pytest.fixture(scope="module")
def kernel() -> Btf:
    if not os.path.exists(VMLINUX):
        pytest.skip(f"{VMLINUX} is absent: kernel built without CONFIG_DEBUG_INFO_BTF")
    return Btf.load(VMLINUX)


@pytest.fixture(scope="module")
def bpftool() -> BpftoolBtf:
    if not os.path.exists(VMLINUX):
        pytest.skip(f"{VMLINUX} is absent: kernel built without CONFIG_DEBUG_INFO_BTF")
    tool = BPFTOOL if os.path.exists(BPFTOOL) else shutil.which("bpftool")
    if tool is None:
        pytest.skip("bpftool is not installed")
    dump = subprocess.run([tool, "btf", "dump", "file", VMLINUX, "format", "raw"], check=True,
                          capture_output=True, text=True).stdout
    return BpftoolBtf(dump)


KERNEL_FIELDS = [
    ("task_struct", ("files",)), ("task_struct", ("mm",)), ("task_struct", ("fs",)),
    ("task_struct", ("sighand",)), ("task_struct", ("signal",)), ("task_struct", ("tgid",)),
    ("task_struct", ("pid",)), ("files_struct", ("fdt",)), ("fdtable", ("fd",)), ("fdtable", ("max_fds",)),
    ("file", ("f_inode",)), ("file", ("f_op",)), ("file", ("private_data",)), ("file", ("f_ref", "f_count")),
    ("inode", ("i_ino",)), ("inode", ("i_sb",)), ("super_block", ("s_magic",)),
    ("socket", ("ops",)), ("socket", ("sk",)), ("socket", ("type",)),
    ("vm_area_struct", ("vm_start",)), ("vm_area_struct", ("vm_end",)), ("vm_area_struct", ("vm_file",)),
    ("vm_area_struct", ("vm_flags", "__vm_flags")), ("mm_struct", ("mmap_base",)), ("mm_struct", ("pgd",)),
    ("sock", ("__sk_common.skc_family",)), ("vm_area_struct", ("shared.rb",)),
]


@pytest.mark.parametrize(("struct_name", "candidates"), KERNEL_FIELDS,
                         ids=[f"{s}.{c[0]}" for s, c in KERNEL_FIELDS])
def test_kernel_offsets_match_bpftool(kernel: Btf, bpftool: BpftoolBtf, struct_name: str,
                                      candidates: tuple[str, ...]) -> None:
    member = kernel.first_member(struct_name, candidates)
    offset, size, _ = bpftool.member(struct_name, member.path)
    assert (member.offset, member.size) == (offset, size)


def test_kernel_anonymous_members_are_exercised(kernel: Btf, bpftool: BpftoolBtf) -> None:
    via_anon = []
    for struct_name, candidates in KERNEL_FIELDS:
        path = kernel.first_member(struct_name, candidates).path
        if bpftool.member(struct_name, path)[2]:
            via_anon.append(f"{struct_name}.{path}")
    assert via_anon, "no checked member sits inside an anonymous struct or union on this kernel"


def test_kernel_member_sizes(kernel: Btf) -> None:
    assert kernel.member("task_struct", "files").size == 8
    assert kernel.member("task_struct", "tgid").size == 4
    assert kernel.member("vm_area_struct", "vm_start").size == 8
    assert kernel.first_member("vm_area_struct", ("vm_flags", "__vm_flags")).size == 8
    assert kernel.member("fdtable", "max_fds").size == 4


def test_kernel_func_params(kernel: Btf) -> None:
    params = kernel.func_params("vfs_read")
    assert params is not None
    assert params[0] == ("file", "struct file *")
    assert [name for name, _ in params] == ["file", "buf", "count", "pos"]
    assert kernel.has_func("vfs_read") and not kernel.has_func("no_such_function_here")


def test_kernel_parse_is_fast() -> None:
    if not os.path.exists(VMLINUX):
        pytest.skip(f"{VMLINUX} is absent")
    start = time.perf_counter()
    Btf.load(VMLINUX).member("task_struct", "files")
    assert time.perf_counter() - start < 1.0


def test_kernel_cached_resolve_is_fast(tmp_path: Path) -> None:
    if not os.path.exists(VMLINUX):
        pytest.skip(f"{VMLINUX} is absent")
    requests = {"TASK_FILES": ("task_struct", ("files",)), "FILE_REF": ("file", ("f_ref", "f_count"))}
    resolve_offsets(requests, cache_dir=tmp_path)
    start = time.perf_counter()
    resolve_offsets(requests, cache_dir=tmp_path)
    assert time.perf_counter() - start < 0.05


def test_resolve_type_ids_leaves_out_what_is_missing_and_caches(btf_file: str, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    cache = tmp_path / "cache"
    requests = {"BTF_TYPE_OUTER": ("struct", "outer"), "KFUNC_do_thing": ("func", "do_thing"),
                "KFUNC_absent": ("func", "absent")}
    found = resolve_type_ids(requests, btf_path=btf_file, cache_dir=cache)
    parsed = Btf.load(btf_file)
    assert found == {"BTF_TYPE_OUTER": parsed.type_id("struct", "outer"),
                     "KFUNC_do_thing": parsed.type_id("func", "do_thing")}

    def no_parse(cls: type[Btf], path: str = VMLINUX) -> Btf:
        raise AssertionError("BTF parsed although the cache should have answered")
    monkeypatch.setattr(Btf, "load", classmethod(no_parse))
    assert resolve_type_ids(requests, btf_path=btf_file, cache_dir=cache) == found
