"""Resolution against saved kernel facts (tests/unit/kernels/*.json), not the running kernel.

6.18.44-fc is this project's machine: tracepoints only. 6.12.117+deb12 is Debian's
distro kernel (the VM tier): kprobes and fentry, scm_fp_copy inlined, __receive_fd
renamed receive_fd, __do_sys_memfd_create out of line but notrace.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from tracer import catalog, lessons
from tracer.catalog import HookChoice, resolve
from tracer.errors import SyspathError
from tracer.facts import KernelFacts, saved_view

KERNELS = Path(__file__).parent / "kernels"
MACHINE = KernelFacts.load(KERNELS / "6.18.44-fc-v1272.json")
DEBIAN = KernelFacts.load(KERNELS / "6.12.117+deb12-amd64.json")
BOOKWORM = KernelFacts.load(KERNELS / "6.1.0-57-amd64.json")
STORY = ("memfd_create", "shmem_file_setup", "do_mmap", "unix_stream_sendmsg", "scm_fp_copy", "receive_fd")


def choices(facts: KernelFacts, mode: str = "auto", scenario: str = "memfd-share") -> dict[str, HookChoice]:
    return {c.step: c for c in resolve(lessons.hooked_steps_for(scenario), mode, saved_view(facts))}


def test_machine_observes_every_step_on_the_syscall_tier() -> None:
    chosen = choices(MACHINE)
    assert chosen["memfd_create"].hook == "tracepoint:syscalls:sys_exit_memfd_create"
    assert chosen["memfd_create"].status == "attached"
    for step in STORY[1:]:
        assert chosen[step].status == "fallback"
        assert chosen[step].tier == "syscall"
        assert f"{step} is not hooked as a function here (kprobe tier: " in chosen[step].reason
    for extra in ("fd_install", "alloc_file_pseudo"):
        assert chosen[extra].status == "unavailable"
        assert "kprobe_events" in chosen[extra].reason


def test_debian_kprobe_tier_hooks_the_functions_and_falls_back_where_inlined() -> None:
    chosen = choices(DEBIAN, "kprobe")
    assert {step: chosen[step].hook for step in STORY} == {
        "memfd_create": "kretprobe:__x64_sys_memfd_create",
        "shmem_file_setup": "kretprobe:shmem_file_setup",
        "do_mmap": "kretprobe:do_mmap",
        "unix_stream_sendmsg": "kretprobe:unix_stream_sendmsg",
        "scm_fp_copy": "kretprobe:__scm_send",
        "receive_fd": "kretprobe:receive_fd",
    }
    assert chosen["scm_fp_copy"].status == "fallback"
    assert chosen["scm_fp_copy"].reason.startswith(
        "scm_fp_copy is not hooked as a function here (scm_fp_copy is not in kallsyms")
    assert "__receive_fd is not in kallsyms" in chosen["receive_fd"].reason
    assert chosen["fd_install"].hook == "kprobe:fd_install"
    # trace_kprobe.c refuses notrace functions as fentry does: __do_sys_* are inline, hence notrace
    assert "__do_sys_memfd_create is notrace here" in chosen["memfd_create"].reason


def test_argument_positions_come_from_btf() -> None:
    chosen = choices(DEBIAN, "kprobe")
    do_mmap = chosen["do_mmap"]
    assert dict(do_mmap.arg_index) == {"file": 0, "len": 2, "prot": 3, "flags": 4, "pgoff": 6}
    assert do_mmap.nargs == 9                      # 6.12: do_mmap(file, ..., populate, uf)
    assert dict(chosen["scm_fp_copy"].arg_index) == {"msg": 1, "p": 2}
    assert chosen["receive_fd"].entry and chosen["receive_fd"].exit


def test_debian_fentry_tier_skips_notrace_functions() -> None:
    chosen = choices(DEBIAN, "fentry")
    assert chosen["memfd_create"].hook == "fexit:__x64_sys_memfd_create"
    assert "__do_sys_memfd_create is notrace here" in chosen["memfd_create"].reason
    assert chosen["memfd_create"].nargs == 1       # the return value follows pt_regs
    assert chosen["do_mmap"].hook == "fexit:do_mmap"
    assert chosen["fd_install"].hook == "fentry:fd_install"


def test_auto_uses_one_function_tier_and_says_so() -> None:
    chosen = choices(DEBIAN, "auto")
    # in_flight's tracepoint serves every tier: no function stands for it there
    assert chosen.pop("in_flight").hook == "tracepoint:sock:sk_data_ready"
    # memfd_page is seen at tracepoints on every tier too; these facts predate it and list neither
    # of its tracepoints, so it is unavailable here, with the reason
    page = chosen.pop("memfd_page")
    assert page.status == "unavailable" and "kmem:mm_page_alloc does not exist here" in page.reason
    assert {c.tier for c in chosen.values()} == {"kprobe"}


def test_auto_falls_back_to_the_syscall_tier_per_step() -> None:
    no_do_mmap = dataclasses.replace(DEBIAN, symbols={k: v for k, v in DEBIAN.symbols.items() if k != "do_mmap"})
    chosen = choices(no_do_mmap, "auto")
    assert chosen["do_mmap"].hook == "tracepoint:syscalls:sys_exit_mmap"
    assert "kretprobe:do_mmap: do_mmap is not in kallsyms" in chosen["do_mmap"].reason
    assert chosen["shmem_file_setup"].tier == "kprobe"


def test_a_moved_or_missing_argument_is_not_guessed() -> None:
    functions = dict(DEBIAN.functions, receive_fd=["fd", "ufd", "o_flags"], do_mmap=["file"] + ["x"] * 9)
    chosen = choices(dataclasses.replace(DEBIAN, functions=functions), "kprobe")
    assert "has no parameter 'file' on this kernel" in chosen["receive_fd"].reason
    assert chosen["receive_fd"].hook == "kprobe:security_file_receive"
    assert chosen["do_mmap"].status == "unavailable"


def test_a_clone_serves_a_return_probe_but_not_argument_reads() -> None:
    symbols = dict(DEBIAN.symbols, __x64_sys_memfd_create="__x64_sys_memfd_create.isra.0",
                   __do_sys_memfd_create="__do_sys_memfd_create.constprop.0")
    chosen = choices(dataclasses.replace(DEBIAN, symbols=symbols), "kprobe")
    assert chosen["memfd_create"].hook == "kretprobe:__x64_sys_memfd_create"
    assert chosen["memfd_create"].symbol == "__x64_sys_memfd_create.isra.0"
    assert "only the compiler's clone __do_sys_memfd_create.constprop.0" in chosen["memfd_create"].reason


def test_a_kprobe_reads_two_stack_arguments_and_no_further() -> None:
    functions = dict(DEBIAN.functions, fd_install=[f"a{i}" for i in range(6)] + ["fd", "file"])
    chosen = choices(dataclasses.replace(DEBIAN, functions=functions), "kprobe")
    assert chosen["fd_install"].status == "attached"
    assert dict(chosen["fd_install"].arg_index) == {"fd": 6, "file": 7}
    functions = dict(DEBIAN.functions, fd_install=[f"a{i}" for i in range(8)] + ["fd", "file"])
    chosen = choices(dataclasses.replace(DEBIAN, functions=functions), "kprobe")
    assert "argument 9, beyond what a kprobe reads" in chosen["fd_install"].reason


def test_missing_tracepoint_makes_the_step_unavailable_with_the_reason() -> None:
    facts = dataclasses.replace(MACHINE, tracepoints=[t for t in MACHINE.tracepoints if "exit_recvmsg" not in t])
    chosen = choices(facts)
    assert chosen["receive_fd"].status == "unavailable"
    assert "syscalls:sys_exit_recvmsg does not exist" in chosen["receive_fd"].reason
    assert chosen["memfd_create"].status == "attached"


def test_mode_the_kernel_cannot_do_names_what_it_can() -> None:
    with pytest.raises(SyspathError, match=r"mode kprobe is not available.*kprobe_events.*can do: syscall"):
        resolve(lessons.hooked_steps_for("memfd-share"), "kprobe", saved_view(MACHINE))


def test_no_tier_at_all() -> None:
    facts = dataclasses.replace(MACHINE, tiers={"kprobe": "a", "fentry": "b", "syscall": "c"})
    with pytest.raises(SyspathError, match="allows no tracing tier"):
        resolve(lessons.hooked_steps_for("memfd-share"), "auto", saved_view(facts))


def test_unknown_mode() -> None:
    with pytest.raises(SyspathError, match="unknown mode"):
        catalog.allowed_tiers("ebpf", saved_view(MACHINE))


def test_step_ids_follow_the_lessons_declarations_and_are_unique() -> None:
    """Step ids come from the lessons, in package order then as declared: nobody numbers them."""
    names = lessons.step_names()
    expected = [step.name for lesson in sorted(lessons.all_lessons(), key=lambda each: each.package)
                for step in lesson.steps]
    assert list(names) == expected and len(set(names)) == len(names)
    assert lessons.step_defines() == [f"-DSTEP_{name.upper()}={index}" for index, name in enumerate(expected)]



def test_debian_6_1_hooks_its_own_names() -> None:
    """Debian 12's stock kernel: __receive_fd by that name, no sock:sk_data_ready tracepoint."""
    chosen = choices(BOOKWORM, "kprobe")
    assert chosen["receive_fd"].hook == "kretprobe:__receive_fd"
    assert chosen["in_flight"].hook == "kprobe:sock_def_readable"
    assert "tracepoint sock:sk_data_ready does not exist here" in chosen["in_flight"].reason
    assert chosen["scm_fp_copy"].hook == "kretprobe:__scm_send" and chosen["scm_fp_copy"].status == "fallback"
    assert dict(chosen["do_mmap"].arg_index)["pgoff"] == 5 and chosen["do_mmap"].nargs == 8


def test_fentry_before_6_4_cannot_take_more_than_six_arguments() -> None:
    chosen = choices(BOOKWORM, "fentry")
    assert chosen["do_mmap"].status == "unavailable"
    assert "do_mmap takes 8 arguments, and this kernel's BPF trampolines take at most 6" in chosen["do_mmap"].reason
    assert chosen["shmem_file_setup"].hook == "fexit:shmem_file_setup"
    # 6.4 raised the limit to 12: Debian's 6.12 hooks do_mmap with fexit
    assert choices(DEBIAN, "fentry")["do_mmap"].hook == "fexit:do_mmap"


def test_a_raw_tracepoint_whose_arguments_changed_is_not_read() -> None:
    """fork-cow's mm_copy reads kmem_cache_alloc's struct kmem_cache *s, which the raw tracepoint
    passes from Linux 6.1 (5.10's passes bytes_req there): the kernel's BTF decides."""
    assert choices(MACHINE, "syscall", "fork-cow")["mm_copy"].status == "attached"
    functions = {k: v for k, v in MACHINE.functions.items() if k != "__bpf_trace_kmem_cache_alloc"}
    older = choices(dataclasses.replace(MACHINE, functions=functions), "syscall", "fork-cow")["mm_copy"]
    assert older.status == "unavailable"
    assert ("kmem:kmem_cache_alloc passes no 's' argument on this kernel (its BTF has no __bpf_trace_kmem_cache_alloc"
            in older.reason)
    renamed = dict(MACHINE.functions, __bpf_trace_kmem_cache_alloc=["__data", "call_site", "ptr", "cachep"])
    moved = choices(dataclasses.replace(MACHINE, functions=renamed), "syscall", "fork-cow")["mm_copy"]
    assert moved.status == "unavailable"
    assert "passes no 's' argument on this kernel (it passes (call_site, ptr, cachep))" in moved.reason


def test_an_unavailable_step_says_why_in_the_header() -> None:
    """The header's line for a step no hook can stand for gives the kernel's first refusal."""
    from tracer.views.hooks import hook_line

    functions = {k: v for k, v in MACHINE.functions.items() if k != "__bpf_trace_kmem_cache_alloc"}
    choice = choices(dataclasses.replace(MACHINE, functions=functions), "syscall", "fork-cow")["mm_copy"]
    line = hook_line(choice.as_record())
    assert line.hook == "-" and line.reads.startswith("no hook on this kernel can stand for it: kmem:kmem_cache_alloc "
                                                      "passes no 's' argument on this kernel")
