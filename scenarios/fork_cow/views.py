"""fork-cow's sentences: every one rendered from the facts of story.py.

Frames are PFNs in hex, as /proc/PID/pagemap tools and the kernel's own messages print
them. What is the kernel source's rule, not this run's, says so ("kernel source: ...").
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from tracer.events import Event
from tracer.story import Fact, QuietView

from .story import (
    CowCopy,
    FirstTouch,
    MmCopied,
    NotCopied,
    OneWritableFrame,
    Page,
    SharedAfterFork,
    TablesNotRead,
    Task,
)

if TYPE_CHECKING:
    from rich.console import RenderableType

STEP_STYLES = {"mm_copy": "bold green", "pte": "cyan", "first_touch": "yellow", "cow_fault": "bold magenta"}
# mm/memory.c copy_page_range -> vma_needs_copy: the rule, not this run's observation
NOT_COPIED_RULE = ("kernel source (mm/memory.c copy_page_range -> vma_needs_copy): fork copies a mapping's page "
                   "table entries only when it has anonymous pages (an anon_vma) or maps raw frames; elsewhere the "
                   "child's first touch faults the page in")


def frame(pfn: int | None) -> str:
    return "no frame" if pfn is None else f"frame {pfn:#x}"


def who(task: Task) -> str:
    return f"{task.comm}[{task.pid}]"


PAGE_NAMES = {"private": "the private anonymous page", "shared": "the memfd page (MAP_SHARED)",
              "file": "the file page (MAP_PRIVATE)"}


def page_text(page: Page) -> str:
    return f"{PAGE_NAMES.get(page.kind or '', 'page')} {page.addr}"


def pages_named(facts: Sequence[Fact]) -> list[str]:
    """Which report named the pages: the program's word, cited once."""
    named: dict[str, list[str]] = {}
    for page in (getattr(fact, "page", None) for fact in facts):
        if isinstance(page, Page) and page.kind and page.cited and page.addr not in named.get(page.cited, []):
            named.setdefault(page.cited, []).append(page.addr)
    return [f"pages named by the program ({cited}): {', '.join(addrs)}" for cited, addrs in named.items()]


def mm_copy_line(fact: MmCopied) -> str:
    under = f", under {' <- '.join(fact.under)}" if fact.under else ""
    door = f"{fact.syscall}()" if fact.syscall else "a fork"
    return (f"{door} in {who(fact.parent)} allocated the child's mm_struct {fact.child_mm}, a new one beside the "
            f"parent's {fact.parent_mm}{under}")


def first_touch_line(fact: FirstTouch) -> str:
    access = "wrote" if fact.write else "read"
    before = "its page table had no entry for it, then " if fact.absent_before else ""
    path = f" ({fact.via})" if fact.via else ""
    after = ", and its entry then mapped that frame" if fact.mapped_after else ""
    return f"first touch: {who(fact.task)} {access} {page_text(fact.page)}: {before}the fault allocated " \
           f"{frame(fact.pfn)}{path}{after}"


def shared_line(fact: SharedAfterFork) -> str:
    one, other = fact.tasks
    return (f"after fork: one {frame(fact.pfn)} behind {page_text(fact.page)} in {who(one)} and {who(other)}, "
            "read-only in both (their page table entries, read at mincore)")


def not_copied_line(fact: NotCopied) -> str:
    return (f"after fork: {who(fact.parent)} maps {page_text(fact.page)} to {frame(fact.parent_pfn)}, "
            f"{who(fact.child)}'s page table had no entry for it: fork did not copy that entry")


def cow_line(fact: CowCopy) -> list[str]:
    old = f"{frame(fact.old_pfn)} (read-only)" if fact.old_pfn is not None else "an entry the probe did not read"
    path = f" under {fact.via}" if fact.via else ""
    lines = [f"copy on write: {who(fact.writer)} wrote {page_text(fact.page)}, mapped to {old}: the write "
             f"fault{path} allocated it {frame(fact.new_pfn)}"]
    if fact.writer_maps_new:
        lines.append(f"  {who(fact.writer)}'s entry then mapped {frame(fact.new_pfn)}, writable")
    if fact.kept_by is not None:
        lines.append(f"  {who(fact.kept_by)} kept {frame(fact.old_pfn)}: its entry read after the fault")
    return lines


def writable_line(fact: OneWritableFrame) -> str:
    one, other = fact.tasks
    copied = "" if fact.copied else ": no copy-on-write fault at this page in the recording"
    return (f"one {frame(fact.pfn)} behind {page_text(fact.page)} in {who(one)} and {who(other)}, writable in "
            f"both{copied}")


def conclusion_lines(facts: Sequence[Fact], compact: bool) -> list[str]:
    lines: list[str] = []
    for fact in facts:
        if isinstance(fact, MmCopied):
            lines.append(mm_copy_line(fact))
        elif isinstance(fact, FirstTouch):
            lines.append(first_touch_line(fact))
        elif isinstance(fact, SharedAfterFork):
            lines.append(shared_line(fact))
        elif isinstance(fact, NotCopied):
            lines.append(not_copied_line(fact))
        elif isinstance(fact, CowCopy):
            lines += cow_line(fact)
        elif isinstance(fact, OneWritableFrame):
            lines.append(writable_line(fact))
        elif isinstance(fact, TablesNotRead):
            lines.append(f"{fact.count} page table reads did not happen on this kernel (the pte events say "
                         "walked=false): frames come from the faults alone")
            if fact.why:
                lines.append(f"  {fact.why}")
    if any(isinstance(fact, NotCopied) for fact in facts) and not compact:
        lines.append("  " + NOT_COPIED_RULE)
    if lines and not compact:
        lines += pages_named(facts)
    return lines


SHORT_PAGE_NAMES = {"private": "private", "shared": "memfd", "file": "file"}


def page_cell(page: Page) -> str:
    """The page in a table cell: the program's word for it, then its address."""
    short = SHORT_PAGE_NAMES.get(page.kind or "")
    return f"{short} {page.addr}" if short else page.addr


def frame_rows(facts: Sequence[Fact]) -> list[tuple[str, str, str]]:
    """(page, frames, what happened): one row per fact about a page, in the facts' order."""
    rows: list[tuple[str, str, str]] = []
    for fact in facts:
        if isinstance(fact, SharedAfterFork):
            rows.append((page_cell(fact.page), f"{fact.pfn:#x} in both", "after fork: shared, read-only"))
        elif isinstance(fact, NotCopied):
            rows.append((page_cell(fact.page), f"{fact.parent_pfn:#x} / none", "after fork: the child has no entry"))
        elif isinstance(fact, CowCopy):
            old = f"{fact.old_pfn:#x}" if fact.old_pfn is not None else "?"
            rows.append((page_cell(fact.page), f"{old} -> {fact.new_pfn:#x}", f"{who(fact.writer)} wrote: copied"))
        elif isinstance(fact, OneWritableFrame):
            rows.append((page_cell(fact.page), f"{fact.pfn:#x} in both", "written: one frame, writable in both"))
    return rows


def frames_panel(facts: Sequence[Fact]) -> RenderableType | None:
    from rich.panel import Panel
    from rich.table import Table

    rows = frame_rows(facts)
    if not rows:
        return None
    table = Table("page", "frame (PFN)", "what the page tables showed", box=None, expand=True)
    for row in rows:
        table.add_row(*row)
    return Panel(table, title="one page, two processes, until one writes", border_style="magenta")


def event_text(event: Event) -> str | None:
    detail: dict[str, Any] = event.detail
    if event.step == "pte":
        if not detail.get("walked"):
            return f"addr={detail.get('addr')} page table not read"
        if not detail.get("present"):
            return f"addr={detail.get('addr')} no entry"
        access = "writable" if detail.get("writable") else "read-only"
        return f"addr={detail.get('addr')} frame {int(detail.get('pfn') or 0):#x} {access}"
    if event.step == "first_touch":
        return f"addr={detail.get('addr')} new frame {int(detail.get('pfn') or 0):#x}"
    if event.step == "cow_fault":
        old = detail.get("old_pfn")
        old_text = f"{old:#x}" if isinstance(old, int) else "?"
        return f"addr={detail.get('addr')} frame {old_text} -> {int(detail.get('pfn') or 0):#x}"
    if event.step == "mm_copy":
        return f"child mm={detail.get('mm')} parent mm={detail.get('parent_mm')}"
    return None


class CowView(QuietView):
    """What the core's views call (tracer/story.py StoryView)."""

    def lines(self, facts: Sequence[Fact], compact: bool) -> list[str]:
        return conclusion_lines(facts, compact)

    def panels(self, facts: Sequence[Fact]) -> list[RenderableType]:
        panel = frames_panel(facts)
        return [] if panel is None else [panel]

    def event_text(self, event: Event) -> str | None:
        return event_text(event)

    def step_style(self, step: str) -> str | None:
        return STEP_STYLES.get(step)

    def nothing_seen(self) -> str:
        return "no page table entry read, no fault on the lesson's pages"

    def folded_note(self, count: int) -> str:
        return f"{count} events folded"


def view() -> CowView:
    """This lesson's renderer, for the core (tracer/stories.py)."""
    return CowView()
