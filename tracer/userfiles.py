"""Output files with the user's rights: whatever syspath writes for the user behind sudo
(recordings, exports) is created with that user's file-system rights and owned by them,
exclusively, under an unpredictable name beside the target, then renamed into place: a
link planted at either name is replaced, never followed."""
from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import pwd
import stat
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from tracer.errors import SyspathError

LIBC = ctypes.CDLL(None, use_errno=True)
SETGROUPS_SYSCALL = {"x86_64": 116, "aarch64": 159, "riscv64": 159}


def invoking_user() -> tuple[int, int] | None:
    """(uid, gid) of the user behind sudo, if any."""
    uid, gid = os.environ.get("SUDO_UID"), os.environ.get("SUDO_GID")
    if uid and gid and uid.isdigit() and gid.isdigit():
        return int(uid), int(gid)
    return None


def _user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid {uid}"


def _groups(uid: int, gid: int) -> list[int]:
    try:
        return os.getgrouplist(pwd.getpwuid(uid).pw_name, gid)
    except KeyError:
        return [gid]


def _set_thread_groups(groups: list[int]) -> None:
    """setgroups(2) for this thread only: glibc's setgroups() changes every thread of the
    process (the tracer's other threads must keep root's), the raw system call does not."""
    number = SETGROUPS_SYSCALL.get(os.uname().machine)
    if number is None:
        raise SyspathError(f"cannot write files as the invoking user on {os.uname().machine}: "
                           "run syspath without sudo's SUDO_UID, or write to a root-owned place")
    array = (ctypes.c_uint * len(groups))(*groups)
    if LIBC.syscall(number, len(groups), array) != 0:
        raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))


@contextlib.contextmanager
def as_invoking_user() -> Iterator[None]:
    """File-system rights of the user behind sudo, for this thread (setfsuid/setfsgid and
    the user's groups): whatever is created here is the user's, and what the user may not
    create fails with EACCES. Root's own rights when syspath was not started through sudo."""
    owner = invoking_user()
    if owner is None or os.geteuid() != 0:
        yield
        return
    uid, gid = owner
    saved_groups = os.getgroups()
    _set_thread_groups(_groups(uid, gid))
    LIBC.setfsgid(gid)
    LIBC.setfsuid(uid)
    try:
        if LIBC.setfsuid(uid) != uid or LIBC.setfsgid(gid) != gid:     # returns the current value
            raise SyspathError("cannot take the invoking user's file-system rights (setfsuid)")
        yield
    finally:
        LIBC.setfsuid(0)
        LIBC.setfsgid(0)
        _set_thread_groups(saved_groups)


def _writer_uid() -> int:
    """Whose rights files are written with."""
    owner = invoking_user()
    return owner[0] if owner and os.geteuid() == 0 else os.geteuid()


def _fail(path: Path, what: str, reason: str) -> SyspathError:
    return SyspathError(f"cannot write the {what} {path}: {reason}")


def _reason(error: OSError) -> str:
    return error.strerror or str(error)


def ensure_writable(path: Path, what: str) -> None:
    """Fail before tracing, not after, when the user could not create the output path:
    the same exclusive create (then removed) and the same checks as the real write."""
    with as_invoking_user():
        _check_target(path, what)
        descriptor, temporary = _create_beside(path, what)
        os.close(descriptor)
        os.unlink(temporary)


def _check_target(path: Path, what: str) -> None:
    """What the user could not do at path, checked without following a link there
    (a link at the final name is replaced, never written through)."""
    folder = path.parent
    try:
        here = os.stat(folder)
    except OSError as error:
        raise _fail(path, what, f"cannot reach the directory {folder} ({_reason(error)})") from None
    if not stat.S_ISDIR(here.st_mode):
        raise _fail(path, what, f"{folder} is not a directory")
    try:
        old = os.lstat(path)
    except FileNotFoundError:
        return
    except OSError as error:
        raise _fail(path, what, _reason(error)) from None
    if stat.S_ISDIR(old.st_mode):
        raise _fail(path, what, "it is a directory")
    if not (stat.S_ISREG(old.st_mode) or stat.S_ISLNK(old.st_mode)):
        # the file is renamed into place: a device such as /dev/null would be replaced
        raise _fail(path, what, "it is not a regular file (a device, pipe or socket); name a file")
    if here.st_mode & stat.S_ISVTX and _writer_uid() not in (0, old.st_uid, here.st_uid):
        raise _fail(path, what, f"{path.name} belongs to someone else in the sticky directory {folder}")


def _create_beside(path: Path, what: str) -> tuple[int, str]:
    """A new file under an unpredictable name in the target's directory, created
    exclusively (O_CREAT|O_EXCL: a planted name, link or not, makes it fail)."""
    try:
        descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as error:
        refused = error.errno in (errno.EACCES, errno.EPERM)
        reason = f"{path.parent} is not writable by {_user_name(_writer_uid())}" if refused else _reason(error)
        raise _fail(path, what, reason) from None
    os.fchmod(descriptor, 0o666 & ~_umask())
    return descriptor, temporary


def _umask() -> int:
    current = os.umask(0o022)
    os.umask(current)
    return current


def create_in_place(path: Path, what: str) -> int:
    """Created as the invoking user under a temporary name, then renamed over the target
    (a symlink planted there is replaced, never followed): returns the open descriptor."""
    with as_invoking_user():
        _check_target(path, what)
        descriptor, temporary = _create_beside(path, what)
        try:
            os.replace(temporary, path)
        except OSError as error:
            os.close(descriptor)
            os.unlink(temporary)
            raise _fail(path, what, _reason(error)) from None
    return descriptor


def write_user_file(path: Path, text: str) -> None:
    """An export: written whole under a temporary name, then renamed into place, as the user."""
    write_user_chunks(path, [text.encode()])


def write_user_chunks(path: Path, chunks: Iterable[bytes]) -> None:
    """write_user_file for an export made of pieces (read from a spool as they are written)."""
    with as_invoking_user():
        _check_target(path, "file")
        descriptor, temporary = _create_beside(path, "file")
        try:
            with os.fdopen(descriptor, "wb") as stream:
                for chunk in chunks:
                    stream.write(chunk)
            os.replace(temporary, path)
        except OSError as error:
            os.unlink(temporary)
            raise _fail(path, "file", _reason(error)) from None
