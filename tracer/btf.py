"""Read struct member offsets and function signatures from kernel BTF.

Format: include/uapi/linux/btf.h and Documentation/bpf/btf.rst.
"""
from __future__ import annotations

import hashlib
import json
import os
import sys
import tempfile
from array import array
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from struct import Struct

from tracer.errors import SyspathError

VMLINUX_BTF = "/sys/kernel/btf/vmlinux"
DEFAULT_CACHE_DIR = Path("/var/cache/syspath")
CACHE_FORMAT = 1

BTF_MAGIC = 0xEB9F
POINTER_SIZE = 8

KIND_INT = 1
KIND_PTR = 2
KIND_ARRAY = 3
KIND_STRUCT = 4
KIND_UNION = 5
KIND_ENUM = 6
KIND_FWD = 7
KIND_TYPEDEF = 8
KIND_VOLATILE = 9
KIND_CONST = 10
KIND_RESTRICT = 11
KIND_FUNC = 12
KIND_FUNC_PROTO = 13
KIND_VAR = 14
KIND_DATASEC = 15
KIND_FLOAT = 16
KIND_DECL_TAG = 17
KIND_TYPE_TAG = 18
KIND_ENUM64 = 19

# 32-bit words that follow the 3-word struct btf_type, per kind:
# a fixed part, plus a part repeated vlen times.
_FIXED_WORDS = (0, 1, 0, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 1, 0, 0)
_WORDS_PER_VLEN = (0, 0, 0, 0, 3, 3, 2, 0, 0, 0, 0, 0, 0, 2, 0, 3, 0, 0, 0, 3)
_MAX_KIND = len(_FIXED_WORDS) - 1

_QUALIFIERS = {KIND_TYPEDEF, KIND_VOLATILE, KIND_CONST, KIND_RESTRICT, KIND_TYPE_TAG}
_CV = {KIND_VOLATILE: "volatile", KIND_CONST: "const", KIND_RESTRICT: "restrict"}
_COMPOSITES = (KIND_STRUCT, KIND_UNION)
_SIZED = {KIND_INT, KIND_STRUCT, KIND_UNION, KIND_ENUM, KIND_ENUM64, KIND_FLOAT}
_NAMED_KEYWORD = {KIND_STRUCT: "struct", KIND_UNION: "union", KIND_ENUM: "enum", KIND_ENUM64: "enum"}
# GCC names ints word by word ("long unsigned int"); C code and clang-built BTF say "unsigned long".
_GCC_INT_NAMES = {
    "long unsigned int": "unsigned long",
    "long int": "long",
    "long long unsigned int": "unsigned long long",
    "long long int": "long long",
    "short unsigned int": "unsigned short",
    "short int": "short",
}
_HEADER = Struct("<HBBIIIII")
_HEADER_BE = Struct(">HBBIIIII")
_MAX_CHAIN = 64


class BtfError(SyspathError):
    """BTF is malformed, or lacks what was asked for."""


@dataclass(frozen=True)
class Member:
    struct: str
    path: str
    offset: int
    size: int


@dataclass(frozen=True)
class _RawMember:
    name_off: int
    type_id: int
    bit_offset: int


class Btf:
    def __init__(self, data: bytes, words: array[int], type_starts: list[int], strings: tuple[int, int],
                 composites: dict[int, int], funcs: dict[int, int]) -> None:
        self._data = data
        self._words = words
        self._starts = type_starts
        self._strings, self._strings_end = strings
        self._composites = composites
        self._funcs = funcs

    @classmethod
    def load(cls, path: str = VMLINUX_BTF) -> Btf:
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError as e:
            raise BtfError(f"cannot read BTF from {path}: {e.strerror}") from e
        return cls.from_bytes(data)

    @classmethod
    def from_bytes(cls, data: bytes) -> Btf:
        byteorder, types_at, types_len, strings_at, strings_len = _parse_header(data)
        if types_at + types_len > len(data) or strings_at + strings_len > len(data):
            raise BtfError("BTF sections extend past the end of the data")
        if types_len % 4:
            raise BtfError(f"BTF type section length {types_len} is not a multiple of 4")
        words = array("I")
        if words.itemsize != 4:
            words = array("L")
        words.frombytes(data[types_at:types_at + types_len])
        if byteorder != sys.byteorder:
            words.byteswap()
        starts, composites, funcs = _index_types(words)
        return cls(bytes(data), words, starts, (strings_at, strings_at + strings_len), composites, funcs)

    def member(self, struct: str, path: str) -> Member:
        type_id = self._composite_id(struct)
        if type_id is None:
            raise BtfError(f"no struct or union named {struct} in BTF")
        bit_offset = 0
        walked = struct
        for name in path.split("."):
            if self._kind(type_id) not in _COMPOSITES:
                raise BtfError(f"{struct}.{walked} is not a struct or union, cannot look up {name}")
            found = self._find_member(type_id, name.encode())
            if found is None:
                raise BtfError(f"{_NAMED_KEYWORD[self._kind(type_id)]} {walked} has no member {name}")
            bit_offset += found.bit_offset
            type_id = self._strip(found.type_id, _QUALIFIERS)
            walked = f"{walked}.{name}"
        if bit_offset % 8:
            raise BtfError(f"{struct}.{path} is a bitfield at bit {bit_offset}, not byte addressable")
        return Member(struct, path, bit_offset // 8, self._size(type_id))

    def has_member(self, struct: str, path: str) -> bool:
        try:
            self.member(struct, path)
        except BtfError:
            return False
        return True

    def first_member(self, struct: str, candidates: Sequence[str]) -> Member:
        for path in candidates:
            if self.has_member(struct, path):
                return self.member(struct, path)
        if not self.has_struct(struct):
            raise BtfError(f"no struct or union named {struct} in BTF "
                           f"(wanted one of its members {', '.join(candidates)})")
        raise BtfError(f"struct {struct} has none of the members {', '.join(candidates)}")

    def has_struct(self, name: str) -> bool:
        return self._composite_id(name) is not None

    def func_params(self, name: str) -> list[tuple[str, str]] | None:
        func_id = self._lookup(self._funcs, name)
        if func_id is None:
            return None
        proto = self._target(func_id)
        if self._kind(proto) != KIND_FUNC_PROTO:
            raise BtfError(f"BTF function {name} does not point at a FUNC_PROTO")
        return [(self._string(name_off), self._param_type(type_id)) for name_off, type_id in self._params(proto)]

    def has_func(self, name: str) -> bool:
        return self._lookup(self._funcs, name) is not None

    def type_id(self, kind: str, name: str) -> int | None:
        """The id of the struct or function named so (what the verifier knows a type by)."""
        if kind == "func":
            return self._lookup(self._funcs, name)
        type_id = self._composite_id(name)
        return type_id if type_id is not None and self._kind(type_id) == KIND_STRUCT else None

    def _param_type(self, type_id: int) -> str:
        # A last parameter of type 0 marks a variadic function.
        return self._type_name(type_id, 0) if type_id else "..."

    def _composite_id(self, name: str) -> int | None:
        return self._lookup(self._composites, name)

    def _lookup(self, index: dict[int, int], name: str) -> int | None:
        if not name:
            return None
        for name_off in self._string_offsets(name.encode()):
            type_id = index.get(name_off)
            if type_id is not None:
                return type_id
        return None

    def _string_offsets(self, name: bytes) -> Iterator[int]:
        needle = b"\0" + name + b"\0"
        at = self._data.find(needle, self._strings, self._strings_end)
        while at != -1:
            yield at + 1 - self._strings
            at = self._data.find(needle, at + 1, self._strings_end)

    def _string(self, name_off: int) -> str:
        start = self._strings + name_off
        end = self._data.find(b"\0", start, self._strings_end)
        if end == -1:
            raise BtfError(f"BTF string at offset {name_off} is not terminated")
        return self._data[start:end].decode("utf-8", "replace")

    def _name_is(self, name_off: int, name: bytes) -> bool:
        start = self._strings + name_off
        return self._data[start:start + len(name) + 1] == name + b"\0"

    def _start(self, type_id: int) -> int:
        if not 0 < type_id < len(self._starts):
            raise BtfError(f"BTF type id {type_id} is out of range")
        return self._starts[type_id]

    def _kind(self, type_id: int) -> int:
        if type_id == 0:
            return 0
        return (self._words[self._start(type_id) + 1] >> 24) & 0x1F

    def _vlen(self, type_id: int) -> int:
        return self._words[self._start(type_id) + 1] & 0xFFFF

    def _kind_flag(self, type_id: int) -> bool:
        return bool(self._words[self._start(type_id) + 1] >> 31)

    def _name_off(self, type_id: int) -> int:
        return self._words[self._start(type_id)]

    def _target(self, type_id: int) -> int:
        # size_or_type: a type id for PTR, TYPEDEF, qualifiers, FUNC, VAR; a byte size otherwise.
        return self._words[self._start(type_id) + 2]

    def _strip(self, type_id: int, kinds: set[int]) -> int:
        for _ in range(_MAX_CHAIN):
            if self._kind(type_id) not in kinds:
                return type_id
            type_id = self._target(type_id)
        raise BtfError(f"BTF type chain through id {type_id} is too long or circular")

    def _members(self, type_id: int) -> Iterator[_RawMember]:
        bitfields = self._kind_flag(type_id)
        at = self._start(type_id) + 3
        for i in range(self._vlen(type_id)):
            name_off, member_type, offset = self._words[at + 3 * i:at + 3 * i + 3]
            # With kind_flag set, offset packs bitfield_size << 24 | bit_offset.
            yield _RawMember(name_off, member_type, offset & 0xFFFFFF if bitfields else offset)

    def _find_member(self, type_id: int, name: bytes) -> _RawMember | None:
        for raw in self._members(type_id):
            if raw.name_off and self._name_is(raw.name_off, name):
                return raw
        for raw in self._members(type_id):
            if raw.name_off:
                continue
            inner = self._strip(raw.type_id, _QUALIFIERS)
            if self._kind(inner) not in _COMPOSITES:
                continue
            found = self._find_member(inner, name)
            if found is not None:
                return _RawMember(found.name_off, found.type_id, raw.bit_offset + found.bit_offset)
        return None

    def _size(self, type_id: int, depth: int = 0) -> int:
        if depth > _MAX_CHAIN:
            raise BtfError(f"BTF array type {type_id} nests too deeply")
        type_id = self._strip(type_id, _QUALIFIERS)
        kind = self._kind(type_id)
        if kind == KIND_PTR:
            return POINTER_SIZE
        if kind == KIND_ARRAY:
            elem, _, nelems = self._array(type_id)
            return nelems * self._size(elem, depth + 1)
        if kind in _SIZED:
            return self._target(type_id)
        return 0

    def _array(self, type_id: int) -> tuple[int, int, int]:
        at = self._start(type_id) + 3
        elem, index, nelems = self._words[at:at + 3]
        return elem, index, nelems

    def _params(self, proto_id: int) -> Iterator[tuple[int, int]]:
        at = self._start(proto_id) + 3
        for i in range(self._vlen(proto_id)):
            yield self._words[at + 2 * i], self._words[at + 2 * i + 1]

    def _type_name(self, type_id: int, depth: int) -> str:
        if depth > _MAX_CHAIN:
            raise BtfError(f"BTF type chain through id {type_id} is too long or circular")
        kind = self._kind(type_id)
        if kind == 0:
            return "void"
        if kind == KIND_INT:
            name = self._string(self._name_off(type_id))
            return _GCC_INT_NAMES.get(name, name)
        if kind in (KIND_FLOAT, KIND_TYPEDEF):
            return self._string(self._name_off(type_id))
        if kind in _NAMED_KEYWORD or kind == KIND_FWD:
            return self._tagged_name(type_id, kind)
        if kind == KIND_TYPE_TAG:
            return self._type_name(self._target(type_id), depth + 1)
        if kind in _CV:
            return _qualify(self._type_name(self._target(type_id), depth + 1), _CV[kind])
        if kind == KIND_PTR:
            return self._pointer_name(self._target(type_id), depth)
        if kind == KIND_ARRAY:
            elem, _, nelems = self._array(type_id)
            return f"{self._type_name(elem, depth + 1)}[{nelems}]"
        if kind == KIND_FUNC_PROTO:
            return self._proto_name(type_id, "", depth)
        return self._string(self._name_off(type_id)) or f"<BTF kind {kind}>"

    def _tagged_name(self, type_id: int, kind: int) -> str:
        if kind == KIND_FWD:
            keyword = "union" if self._kind_flag(type_id) else "struct"
        else:
            keyword = _NAMED_KEYWORD[kind]
        name = self._string(self._name_off(type_id))
        return f"{keyword} {name}" if name else f"{keyword} {{...}}"

    def _pointer_name(self, target: int, depth: int) -> str:
        if self._kind(self._strip(target, {KIND_TYPE_TAG})) == KIND_FUNC_PROTO:
            return self._proto_name(self._strip(target, {KIND_TYPE_TAG}), "(*)", depth)
        inner = self._type_name(target, depth + 1)
        return f"{inner}*" if inner.endswith("*") else f"{inner} *"

    def _proto_name(self, proto_id: int, declarator: str, depth: int) -> str:
        ret = self._type_name(self._target(proto_id), depth + 1)
        params = [self._type_name(t, depth + 1) if t else "..." for _, t in self._params(proto_id)]
        head = f"{ret} {declarator}" if declarator else ret
        return f"{head}({', '.join(params) or 'void'})"


def _qualify(inner: str, qualifier: str) -> str:
    # C puts a qualifier of the pointer itself after the '*': "char *const".
    return f"{inner}{qualifier}" if inner.endswith("*") else f"{qualifier} {inner}"


def _parse_header(data: bytes) -> tuple[str, int, int, int, int]:
    if len(data) < _HEADER.size:
        raise BtfError(f"BTF data is {len(data)} bytes, too short for a header")
    magic = int.from_bytes(data[:2], "little")
    if magic == BTF_MAGIC:
        byteorder = "little"
    elif magic == int.from_bytes(BTF_MAGIC.to_bytes(2, "little"), "big"):
        byteorder = "big"
    else:
        raise BtfError(f"not BTF: magic 0x{magic:04x}, expected 0x{BTF_MAGIC:04x}")
    fmt = _HEADER if byteorder == "little" else _HEADER_BE
    _, version, _, hdr_len, type_off, type_len, str_off, str_len = fmt.unpack_from(data)
    if version != 1:
        raise BtfError(f"unsupported BTF version {version}")
    return byteorder, hdr_len + type_off, type_len, hdr_len + str_off, str_len


def _index_types(words: array[int]) -> tuple[list[int], dict[int, int], dict[int, int]]:
    # Type ids start at 1; id 0 is void. starts[id] is the word index of that btf_type.
    starts = [0]
    composites: dict[int, int] = {}
    funcs: dict[int, int] = {}
    fixed, per_vlen = _FIXED_WORDS, _WORDS_PER_VLEN
    end = len(words)
    at = 0
    type_id = 0
    while at < end:
        if at + 3 > end:
            raise BtfError(f"BTF type {type_id + 1} is truncated")
        info = words[at + 1]
        kind = (info >> 24) & 0x1F
        if kind > _MAX_KIND or kind == 0:
            raise BtfError(f"BTF type {type_id + 1} has unknown kind {kind}")
        type_id += 1
        starts.append(at)
        if kind in (KIND_STRUCT, KIND_UNION):
            composites.setdefault(words[at], type_id)
        elif kind == KIND_FUNC:
            funcs.setdefault(words[at], type_id)
        at += 3 + fixed[kind] + (info & 0xFFFF) * per_vlen[kind]
    if at != end:
        raise BtfError(f"BTF type {type_id} runs past the end of the type section")
    composites.pop(0, None)
    funcs.pop(0, None)
    return starts, composites, funcs


def resolve_offsets(requests: Mapping[str, tuple[str, Sequence[str]]], btf_path: str = VMLINUX_BTF,
                    cache_dir: Path | None = DEFAULT_CACHE_DIR) -> dict[str, Member]:
    normalized = {name: [struct, list(candidates)] for name, (struct, candidates) in requests.items()}
    cache_file = _cache_file(cache_dir, "offsets", normalized, btf_path) if cache_dir is not None else None
    if cache_file is not None:
        cached = _read_cache(cache_file, requests)
        if cached is not None:
            return cached
    btf = Btf.load(btf_path)
    members = {name: btf.first_member(struct, candidates) for name, (struct, candidates) in requests.items()}
    if cache_file is not None:
        _write_cache(cache_file, members)
    return members


def resolve_type_ids(requests: Mapping[str, tuple[str, str]], btf_path: str = VMLINUX_BTF,
                     cache_dir: Path | None = DEFAULT_CACHE_DIR) -> dict[str, int]:
    """define name -> BTF id of ("struct" | "func", name); a name this BTF lacks is left out."""
    normalized = {name: list(wanted) for name, wanted in requests.items()}
    cache_file = _cache_file(cache_dir, "types", normalized, btf_path) if cache_dir is not None else None
    if cache_file is not None:
        cached = _read_json_cache(cache_file)
        if isinstance(cached, dict) and set(cached) <= set(requests) \
                and all(type(value) is int for value in cached.values()):
            return cached
    btf = Btf.load(btf_path)
    found = {name: btf.type_id(kind, type_name) for name, (kind, type_name) in requests.items()}
    ids = {name: type_id for name, type_id in found.items() if type_id is not None}
    if cache_file is not None:
        _write_cache(cache_file, ids)
    return ids


def _cache_file(cache_dir: Path, kind: str, request: object, btf_path: str) -> Path | None:
    try:
        st = os.stat(btf_path)
    except OSError:
        return None
    uname = os.uname()
    material = json.dumps([CACHE_FORMAT, st.st_size, st.st_mtime_ns, uname.release, uname.version, request],
                          sort_keys=True)
    return cache_dir / f"{kind}-{hashlib.sha256(material.encode()).hexdigest()}.json"


def _read_json_cache(cache_file: Path) -> object:
    """A cache file's content, if this user wrote it and nobody else can; None otherwise."""
    try:
        with open(cache_file, "rb") as f:
            st = os.fstat(f.fileno())
            if st.st_uid != os.geteuid() or st.st_mode & 0o022:
                return None
            return json.load(f)
    except (OSError, ValueError):
        return None


def _read_cache(cache_file: Path, requests: Mapping[str, tuple[str, Sequence[str]]]) -> dict[str, Member] | None:
    content = _read_json_cache(cache_file)
    if not isinstance(content, dict):
        return None
    try:
        members = {name: _member_from_json(fields) for name, fields in content.items()}
    except (ValueError, TypeError, AttributeError):
        return None
    if members.keys() != requests.keys():
        return None
    for name, (struct, candidates) in requests.items():
        if members[name].struct != struct or members[name].path not in candidates:
            return None
    return members


def _member_from_json(fields: dict[str, object]) -> Member:
    member = Member(**fields)  # type: ignore[arg-type]
    if not (isinstance(member.struct, str) and isinstance(member.path, str)
            and type(member.offset) is int and type(member.size) is int):
        raise ValueError(f"malformed cached member {fields!r}")
    return member


def _write_cache(cache_file: Path, data: Mapping[str, Member] | Mapping[str, int]) -> None:
    content = json.dumps({name: asdict(v) if isinstance(v, Member) else v for name, v in data.items()},
                         indent=1, sort_keys=True)
    tmp = None
    try:
        os.makedirs(cache_file.parent, mode=0o700, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".offsets-", suffix=".tmp", dir=cache_file.parent)
        with os.fdopen(fd, "w") as f:
            f.write(content + "\n")
        os.replace(tmp, cache_file)
    except OSError:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass
