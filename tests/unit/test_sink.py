"""The spool keeps undecoded records in order, in memory and then on disk; the plain view's
reordering puts a late call event back in call order."""
from __future__ import annotations

from tracer.events import RELEASE_CHUNK, REORDER_KEPT, REORDER_MAX, REORDER_WINDOW_NS, TWIN_OFFSET, CallOrder, Event
from tracer.observer import Observer
from tracer.pages import WatchedSteps
from tracer.ringbuf import HEADER, Block, record_stride
from tracer.sink import Spool, events_in

RECORD = 40           # long enough to hold the header's twin field


def ring_block(records: list[bytes], size: int) -> Block:
    """Records of `size` bytes laid out as the ring holds them (tracer/ringbuf.py)."""
    stride = record_stride(size)
    data = bytearray(stride * len(records))
    for n, record in enumerate(records):
        data[n * stride + HEADER:n * stride + HEADER + len(record)] = record
    return Block(bytes(data), [n * stride + HEADER for n in range(len(records))], size)


def block(first: int, count: int, twins: range = range(0)) -> Block:
    """Record i holds the number i, and a twin (probes/event.h) when i is in `twins`."""
    records = []
    for i in range(first, first + count):
        record = bytearray(i.to_bytes(RECORD, "little"))
        record[TWIN_OFFSET] = 2 if i in twins else 0
        records.append(bytes(record))
    return ring_block(records, RECORD)


def records(found: Block) -> list[int]:
    return [int.from_bytes(found.data[o:o + 8], "little") for o in found.offsets]


def test_spool_spills_past_its_memory_and_keeps_the_order() -> None:
    spool = Spool(memory_limit=1000)
    for first in range(0, 400, 20):          # 20 blocks of 960 bytes: most go to disk
        spool.put(block(first, 20, twins=range(0, 400, 7)))
    assert spool.disk is not None and spool.events == 400 + 58      # 58 records stand for two events
    seen: list[int] = []
    while (found := spool.get()) is not None:
        seen += records(found)
    assert seen == list(range(400)) and spool.events == 0
    spool.put(block(400, 3))                 # caught up: back to memory
    assert records(spool.get() or block(0, 0)) == [400, 401, 402]
    spool.close()


def test_the_events_still_to_decode_count_a_twin_as_two() -> None:
    found = block(0, 10, twins=range(3, 10, 3))              # twins at 3, 6, 9
    assert (events_in(found), events_in(found, 4), events_in(found, 9), events_in(found, 10)) == (13, 8, 2, 0)


def event(ts: int) -> Event:
    return Event(ts, 1, 1, "c", "memfd_create", "h")


def test_call_order_sorts_a_late_outer_call_back_in_place() -> None:
    order = CallOrder()
    stamps = list(range(1000, 1000 + 3 * REORDER_MAX))
    stamps[10], stamps[11] = stamps[11], stamps[10]          # the outer call arrives after its inner one
    out: list[Event] = []
    for ts in stamps:
        out += order.add(event(ts))
    out += order.drain()
    assert [e.ts_ns for e in out] == sorted(stamps)


def test_call_order_releases_what_is_older_than_the_window() -> None:
    order = CallOrder()
    out: list[Event] = []
    for i in range(REORDER_MAX):
        out += order.add(event(i * REORDER_WINDOW_NS // 1000))      # a slow stream: ~8 s in all
    assert out and all(e.ts_ns < REORDER_MAX * REORDER_WINDOW_NS // 1000 - REORDER_WINDOW_NS for e in out)


def test_call_order_hands_a_dense_burst_over_in_small_chunks() -> None:
    """A sort makes thousands of events ready at once; they go out a chunk at a time, as
    fast as events come in, so that the view's work never blocks the ring's reader long."""
    order = CallOrder()
    chunks: list[int] = []
    for ts in range(10 * REORDER_MAX):
        if released := order.add(event(ts)):
            chunks.append(len(released))
    assert max(chunks) == RELEASE_CHUNK
    assert sum(chunks) >= 10 * REORDER_MAX - REORDER_KEPT - 2 * REORDER_MAX
    assert len(order.ready) <= REORDER_MAX and len(order.waiting) <= REORDER_KEPT + REORDER_MAX
    assert [e.ts_ns for e in order.drain()] == list(range(sum(chunks), 10 * REORDER_MAX))


class Watched:
    def __init__(self) -> None:
        self.ahead: list[Event] = []

    def read_ahead(self, event: Event) -> None:
        self.ahead.append(event)

    @property
    def steps(self) -> WatchedSteps:
        found = WatchedSteps.from_lessons()
        assert found is not None
        return found


def test_the_page_watch_reads_ahead_only_the_steps_it_follows_without_symbols() -> None:
    from tests.unit.test_events import LAYOUT, decoder, raw
    from tracer.events import FILE_IDENTITY
    from tracer.scenarios.memfd_share.lesson import MEMFD_PAYLOAD, MMAP_PAYLOAD
    from tracer.sink import PageReadAhead

    def no_symbols_yet(address: int) -> str:
        raise AssertionError("the read-ahead must not wait for the symbols")

    mapping = bytearray(raw("do_mmap", MMAP_PAYLOAD, ts_ns=2, tgid=10, file=0x1000, address=0x7f00, length=4096))
    FILE_IDENTITY.layout.pack_into(mapping, LAYOUT.identity_offset, 0xffffffff82444680, 0xffffffff81000100,
                                   0x01021994, 0o100777, 0, b"memfd:demo")
    records = [raw("memfd_create", MEMFD_PAYLOAD, ts_ns=1, tgid=10, file=0x1000, name=b"demo"), bytes(mapping),
               raw("receive_fd", ts_ns=3, tgid=11, file=0x1000)]
    watched = Watched()
    ahead = PageReadAhead(decoder({}, 0, symbol=no_symbols_yet), watched)   # type: ignore[arg-type]
    block = Block(b"".join(records), [i * LAYOUT.size for i in range(3)], LAYOUT.size)
    assert ahead.read(block, 1) == 1 and len(watched.ahead) == 1      # at most what it was given
    watched.ahead.clear()
    assert ahead.read(block, 10) == 2
    assert [(e.step, e.ts_ns, e.detail.get("address")) for e in watched.ahead] == [("do_mmap", 2, "0x7f00"),
                                                                                  ("receive_fd", 3, None)]
    assert watched.ahead[0].detail["file_kind"] == "memfd" and watched.ahead[0].detail["f_op"] == "0xffffffff82444680"


class Told(Observer):
    def __init__(self) -> None:
        self.events: list[Event] = []

    def event(self, event: Event) -> None:
        self.events.append(event)


def test_a_record_with_a_twin_becomes_two_events_the_inner_call_first() -> None:
    """memfd_create's record stands for shmem_file_setup too (probes/event.h `twin`): the
    same file at the same time, the fd only on memfd_create, and a record without a twin
    (an MFD_HUGETLB file, hugetlbfs') stays one event."""
    from tests.unit.test_events import LAYOUT, decoder, raw, step_id
    from tracer.scenarios.memfd_share.lesson import MEMFD_PAYLOAD
    from tracer.sink import EventSink

    shmem_twin = step_id("shmem_file_setup") + 1
    records = [raw("memfd_create", MEMFD_PAYLOAD, ts_ns=5, tgid=10, fd=3, file=0x1000, twin=shmem_twin, name=b"demo",
                   s_magic=0x01021994),
               raw("memfd_create", MEMFD_PAYLOAD, ts_ns=9, tgid=10, fd=4, file=0x2000, name=b"huge",
                   s_magic=0x958458f6)]
    told = Told()
    sink = EventSink(decoder({}, 0), told, None)
    sink.take_block(ring_block(records, LAYOUT.size))
    sink.decode()
    assert [(e.step, e.ts_ns, e.fd, e.file, e.detail["name"]) for e in told.events] == [
        ("shmem_file_setup", 5, None, "0x0000000000001000", "demo"),
        ("memfd_create", 5, 3, "0x0000000000001000", "demo"),
        ("memfd_create", 9, 4, "0x0000000000002000", "huge")]
    assert sink.count == 3


class StoppedAt(Told):
    """Raises KeyboardInterrupt once, when told its `stop_at`-th event: a Ctrl-C mid-batch."""

    def __init__(self, stop_at: int) -> None:
        super().__init__()
        self.stop_at = stop_at

    def event(self, event: Event) -> None:
        if len(self.events) == self.stop_at - 1 and self.stop_at:
            self.stop_at = 0
            raise KeyboardInterrupt
        super().event(event)


def test_a_stop_in_the_middle_of_a_batch_leaves_the_rest_to_decode() -> None:
    """The records after the one being decoded when the stop came are still to decode (the
    session decodes them for a second, and counts what is left as undecoded): none vanish."""
    from tests.unit.test_events import LAYOUT, decoder, raw
    from tracer.scenarios.memfd_share.lesson import MEMFD_PAYLOAD
    from tracer.sink import EventSink

    told = StoppedAt(5)
    sink = EventSink(decoder({}, 0), told, None)
    sink.take_block(ring_block([raw("memfd_create", MEMFD_PAYLOAD, ts_ns=i, fd=3) for i in range(10)], LAYOUT.size))
    try:
        sink.decode()
    except KeyboardInterrupt:
        pass
    assert sink.backlog == 5
    sink.decode()
    assert [e.ts_ns for e in told.events] == [0, 1, 2, 3, 5, 6, 7, 8, 9] and sink.backlog == 0
