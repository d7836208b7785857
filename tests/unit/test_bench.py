"""What the benchmark concludes from its measurements (bench/run.py)."""
from bench.run import rates_without_loss


def row(events_per_s: float, lost: int) -> dict[str, float]:
    return {"events_per_s": events_per_s, "events": events_per_s, "lost": lost}


def test_a_loss_ends_the_rates_reached_even_when_a_faster_rate_lost_nothing() -> None:
    rows = [row(50_000, 0), row(200_000, 0), row(400_000, 142), row(800_000, 0), row(1_000_000, 0)]
    assert rates_without_loss(rows) == [50_000, 200_000]


def test_every_rate_counts_when_none_lost() -> None:
    rows = [row(50_000, 0), row(400_000, 0), row(1_000_000, 0)]
    assert max(rates_without_loss(rows)) == 1_000_000


def test_a_run_without_events_reaches_nothing() -> None:
    assert rates_without_loss([row(0, 0), row(400_000, 0)]) == []


def test_a_guest_says_its_timings_are_emulated() -> None:
    from bench.run import guest_note

    note = guest_note("BOOT_IMAGE=/vmlinuz console=ttyS0 virtme_link_mods=/x virtme.exec=`...`")
    assert note is not None and "not overhead figures" in note
    assert guest_note("BOOT_IMAGE=/boot/vmlinuz-6.18 root=/dev/vda ro") is None


def test_bpf_time_above_the_floor_pairs_each_run_with_the_floors_next_to_it() -> None:
    from bench.run import LOOP, bpf_summary

    untraced_loop_s = LOOP * 40e-6                   # a 40 us round
    runs = {"syspath": [8000.0, 9000.0, 7000.0], "floor: records": [4000.0, 6000.0, 4200.0]}
    found = bpf_summary({"ns_per_round": runs}, untraced_loop_s)
    # pairs (8000-4000, 9000-6000, 7000-4200) over 40000 ns: 0.1, 0.075, 0.07
    assert found["above_floor"] == {"median": 0.075, "min": 0.07, "max": 0.1}
    assert found["ns_per_round"]["floor: records"]["median"] == 4200.0
