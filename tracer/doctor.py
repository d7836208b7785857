"""`syspath doctor`: what this kernel and machine allow, each tried, with remedies."""
from __future__ import annotations

import os
from dataclasses import asdict

from tracer import kernel
from tracer.btf import Btf, BtfError

# include/uapi/linux/capability.h
CAPABILITIES = {"CAP_SYS_ADMIN": 21, "CAP_PERFMON": 38, "CAP_BPF": 39}


# A doctor line is a capability found or missing, with its remedy.
Check = kernel.Capability


def _effective_capabilities() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("CapEff:"):
                return int(line.split()[1], 16)
    return 0


def privileges_check() -> Check:
    effective = _effective_capabilities()
    held = [name for name, bit in CAPABILITIES.items() if effective >> bit & 1]
    ok = os.geteuid() == 0 and "CAP_SYS_ADMIN" in held
    holds = ", ".join(held) or "none of CAP_BPF/CAP_PERFMON/CAP_SYS_ADMIN"
    return Check("privileges", ok, f"uid {os.geteuid()}, holds {holds}", "" if ok else "run as root: sudo syspath ...")


def btf_check() -> Check:
    if not kernel.BTF_PATH.exists():
        return Check("btf", False, f"{kernel.BTF_PATH} is missing", "use a kernel with CONFIG_DEBUG_INFO_BTF=y")
    try:
        member = Btf.load(str(kernel.BTF_PATH)).first_member("file", ("f_ref", "f_count"))
    except (BtfError, OSError) as error:
        return Check("btf", False, f"unreadable: {error}", "check the kernel's BTF")
    return Check("btf", True, f"{kernel.BTF_PATH} readable; struct file refcount is {member.path} at +{member.offset}")


def headers_check() -> Check:
    headers = kernel.headers_dir()
    if headers is None:
        return Check("headers", False, f"no headers tree for {kernel.release()}",
                     "sudo make setup (installs the nearest distro linux-headers)")
    return Check("headers", True, f"{headers} ({kernel.headers_origin(headers)})")


def tracefs_check() -> Check:
    tracefs = kernel.tracefs_dir()
    if tracefs is None:
        return Check("tracefs", False, "not mounted", "mount -t tracefs tracefs /sys/kernel/tracing")
    return Check("tracefs", True, str(tracefs))


def bcc_check() -> Check:
    version = kernel.bcc_version()
    return Check("bcc", version is not None, f"bcc {version}" if version else "python module not importable",
                 "" if version else "sudo make setup (Debian/Ubuntu: python3-bpfcc)")


def machine_check() -> Check:
    """What resolution takes from the machine (tracer/arch.py): wrappers, argument registers."""
    from tracer import arch

    on = arch.machine()
    known = on in arch.SYSCALL_PREFIX
    return Check("machine", known, arch.describe(on, kernel.release()),
                 "" if known else "syspath knows x86_64 and aarch64; other machines are untested")


def tier_checks() -> list[Check]:
    if os.geteuid() != 0 or kernel.bcc_version() is None or kernel.headers_dir() is None:
        why = "needs root, bcc and a headers tree to try"
        return [Check(name, False, f"not tried: {why}", "sudo syspath doctor")
                for name in kernel.CAPABILITIES]
    return list(kernel.probe_capabilities(refresh=True).values())


def run_checks() -> list[Check]:
    return [Check("kernel", True, f"{kernel.release()} ({os.uname().version})"),
            machine_check(), privileges_check(), btf_check(), tracefs_check(), bcc_check(), headers_check(),
            *tier_checks()]


def as_json(checks: list[Check]) -> list[dict[str, object]]:
    return [asdict(check) for check in checks]
