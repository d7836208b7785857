from __future__ import annotations

import json

from tests.live.conftest import run_syspath


def test_doctor_tries_every_capability() -> None:
    done = run_syspath("doctor", "--json")
    assert done.returncode == 0, done.stderr
    checks = {c["name"]: c for c in json.loads(done.stdout)}
    assert set(checks) == {"kernel", "machine", "privileges", "btf", "tracefs", "bcc", "headers", "kprobe", "fentry",
                           "tracepoint", "ringbuf", "task_pt_regs", "typed_loads"}
    assert checks["tracepoint"]["available"] and checks["btf"]["available"]
    for name in ("kprobe", "fentry"):   # tried: either it attached/loaded, or the kernel's refusal is quoted
        check = checks[name]
        assert check["detail"] and (check["available"] or check["remedy"])
