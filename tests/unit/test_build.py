"""The probe build's own logic that needs no kernel: waiting for the symbols without starving the ring."""
from __future__ import annotations

import threading

from tracer.build import Probes


def test_the_ring_is_emptied_while_the_symbols_load() -> None:
    release = threading.Event()
    loading = threading.Thread(target=release.wait, daemon=True)
    loading.start()
    takes: list[int] = []

    def take() -> None:
        takes.append(1)
        if len(takes) == 5:
            release.set()

    probes = Probes(choices=[], layout=None, program=None, symbols=loading)   # type: ignore[arg-type]
    probes.wait_for_symbols(take)
    assert len(takes) >= 5 and not loading.is_alive()
    taken = len(takes)                       # 5, or more if the thread was slow to end (a loaded CI)
    probes.wait_for_symbols(take)            # loaded: no wait, no take
    assert len(takes) == taken
