"""memfd-share's sentences and drawings: every one rendered from the facts of story.py.

Text that is the kernel source's, not this run's, says so ("kernel source: ...").
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from tracer.events import Event, refcount_text
from tracer.story import Fact

from .story import (
    FRAME_STEP,
    MAPPING_STEP,
    OWN_WRITE_KEPT,
    ROUND_TRIP,
    SENDER_WRITE_SEEN,
    Allocated,
    Chapter,
    FileLifeStory,
    FrameAllocated,
    Holder,
    OtherLife,
    ProgramSaw,
    RefcountSeen,
    SharedFile,
    SharedNotShared,
    SharedTotal,
)

if TYPE_CHECKING:
    from rich.console import (
        Console,
        ConsoleOptions,
        Group,
        RenderableType,
        RenderResult,
    )
    from rich.panel import Panel
    from rich.table import Table
    from rich.text import Text

SHOWN_FINDINGS = 3          # shared files told in the conclusions
SHOWN_OBJECTS = 2           # drawn as objects
SHOWN_DIAGRAMS = 2          # drawn in the HTML report
SHOWN_LIVES = 3             # a loop can make thousands of memfds: the first few tell the story

# What the vm_flags of two mappings of one file mean: the kernel's rule, not this run's
# observation (mm/memory.c do_fault: do_shared_fault for VM_SHARED, do_cow_fault for a write to
# a private mapping not mapped yet, do_wp_page -> wp_page_copy for one mapped already).
PRIVATE_MAPPING = ("kernel source (mm/memory.c): VM_SHARED is what makes writes shared; a private mapping "
                   "(no VM_SHARED) reads the same page-cache page until it writes, then copy on write gives it "
                   "a page of its own")

# The article's claim the first touch corrects, quoted as the article's
ARTICLE_MMAP = "mmap requests shareable physical memory"
# Why a MAP_SHARED vma can lack VM_SHARED: the kernel's rule, not this run's observation
SHARED_READ_ONLY = ("kernel source (mm/mmap.c do_mmap): for MAP_SHARED, a file not open for writing "
                    "(no FMODE_WRITE) gets VM_MAYSHARE but loses VM_SHARED and VM_MAYWRITE: no write can ever "
                    "reach the file through that mapping, not even after mprotect")

STEP_STYLES = {"memfd_create": "bold green", "shmem_file_setup": "green", "do_mmap": "cyan",
               "unix_stream_sendmsg": "magenta", "scm_fp_copy": "bold magenta", "receive_fd": "bold yellow"}

# --follow-file: what each step means in the life of one struct file
CHAPTER = {"memfd_create": "created: memfd_create returned fd {fd}", "shmem_file_setup": "made by shmem_file_setup",
           "alloc_file_pseudo": "allocated by alloc_file_pseudo", "fd_install": "installed at fd {fd}",
           "do_mmap": "mapped at {address}", "scm_fp_copy": "sent: in flight in an SCM_RIGHTS message",
           "in_flight": "in flight: in skb {skb} on the receiving sock {sock}'s queue",
           "page": "physical page {pfn:#x} behind {addr}",
           FRAME_STEP: "frame {pfn:#x} allocated by a fault at {addr}",
           "receive_fd": "received", "fput": "released: the last reference is gone"}
CHAPTER_COLUMNS = ("ms", "process", "what happened to it", "ref", "seen at", "path (innermost frames)")


def shared_facts(facts: Sequence[Fact]) -> list[SharedFile]:
    return [fact for fact in facts if isinstance(fact, SharedFile)]


def total_shared(facts: Sequence[Fact]) -> int:
    return next((fact.total for fact in facts if isinstance(fact, SharedTotal)), len(shared_facts(facts)))


def life_facts(facts: Sequence[Fact]) -> list[FileLifeStory]:
    return [fact for fact in facts if isinstance(fact, FileLifeStory)]


# ---- the file in words ------------------------------------------------------------------

def what_file(story: SharedFile) -> str:
    """The file in a few words; "memfd" only for what memfd_create made in this recording."""
    name = f" {story.name!r}" if story.name else ""
    if story.made_by_memfd_create:
        text = f"memfd{name}"
    elif story.kind == "memfd":
        text = f"shmem file{name} named like a memfd (its memfd_create is not in the recording)"
    elif story.kind:
        text = f"{story.kind}{name}"
    else:
        text = f"file{name} of a kind this recording does not say (no file_kind)"
    return f"{text}, f_op {f_op_text(story)}" if story.f_op else text


def f_op_text(story: SharedFile) -> str:
    """The file's f_op symbol; an address where kallsyms lists no data, with the function in its read slot."""
    read = f" (read: {story.f_op_read})" if story.f_op_read and story.f_op.startswith("0x") else ""
    return story.f_op + read


def short_kind(story: SharedFile) -> str:
    if story.made_by_memfd_create:
        return "memfd"
    return story.kind if story.kind and story.kind != "memfd" else "kind not recorded"


def sharing(holder: Holder) -> str:
    """How the vma maps the file, as its vm_flags say."""
    if not holder.vm_flags:
        return "?"
    if holder.private:
        return "private: no VM_SHARED"
    return "|".join(flag for flag in holder.vm_flags if "SHARE" in flag)


def holder_line(role: str, holder: Holder) -> str:
    who = holder.comm if holder.comm == role else f"{role} {holder.comm}"
    text = f"{who} (pid {holder.pid}, tgid {holder.tgid}) holds it as fd {holder.fd}"
    if holder.address:
        text += f", mapped at {holder.address}"
        if holder.vm_flags:
            text += f" ({sharing(holder)})"
        if holder.vma_allocated:
            text += f"; its vma {holder.vma} was allocated inside that mmap (kmem:kmem_cache_alloc, mmap_region)"
    return text


def allocated_lines(allocated: Allocated) -> list[str]:
    """The memfd's struct file and inode at their allocation inside memfd_create."""
    if not allocated.is_the_file:
        return [f"  the struct file allocated inside memfd_create ({allocated.filp}) is not the one it returned"]
    path = " <- ".join(allocated.path)
    text = "  allocated: memfd_create allocated this very struct file from the filp cache (kmem:kmem_cache_alloc"
    text += f" under {path})" if path else ")"
    lines = [text]
    if allocated.inode and allocated.is_the_inode:
        lines.append(f"  and its inode {allocated.inode} from shmem_inode_cache")
    return lines


def frame_lines(frame: FrameAllocated) -> list[str]:
    """A frame allocated in a fault on the memfd's mapping, and what pagemap showed there."""
    path = " <- ".join(frame.path[:4])
    via = f" ({path})" if path else ""
    if frame.pagemap_pfn is None:
        matched = ""
    elif frame.pagemap_pfn == frame.pfn:
        matched = "; /proc/PID/pagemap shows the same frame there"
    else:
        matched = f"; /proc/PID/pagemap showed {frame.pagemap_pfn:#x} there"
    access = "write" if frame.write else "read"
    if not frame.first_touch:
        return [f"  copy on write, in the kernel: {frame.comm}'s {access} fault at {frame.address} on a page present "
                f"allocated PFN {frame.pfn:#x}{via}{matched}"]
    lines = [f"  first touch: {frame.comm}'s {access} at {frame.address} faulted on a page not present (error code "
             f"{frame.error_code:#x}), and the kernel allocated PFN {frame.pfn:#x} then{via}{matched}"]
    if frame.mapped_before:
        lines.append(f"  correction to the article (\"{ARTICLE_MMAP}\"): mmap made the vma and no page; "
                     "the page came at the first touch")
    return lines


def shared_not_shared_lines(seen: SharedNotShared) -> list[str]:
    f_mode = "|".join(seen.f_mode) or "no FMODE_READ or FMODE_WRITE"
    return [f"{seen.name} mapped MAP_SHARED by {seen.comm} (pid {seen.pid}) at {seen.address} has no VM_SHARED "
            f"({'|'.join(seen.vm_flags)}): its struct file's f_mode is {f_mode}, without FMODE_WRITE",
            f"  {SHARED_READ_ONLY}"]


def holders(story: SharedFile) -> list[tuple[str, Holder]]:
    return [("sender", story.creator), *(("receiver", holder) for holder in story.receivers)]


def finding_lines(story: SharedFile) -> list[str]:
    lines = [f"One struct file {story.file} (inode {story.inode}) in {story.processes} processes:",
             f"  it is a {what_file(story)}"]
    if story.allocated:
        lines += allocated_lines(story.allocated)
    lines += ["  " + holder_line(role, holder) for role, holder in holders(story)]
    fds = {holder.fd for _, holder in holders(story)}
    lines.append("  different fd numbers, same kernel object" if len(fds) > 1
                 else "  same fd number by chance; what they share is the kernel object")
    lines += refcount_lines(story)
    for flight in story.in_flight[:1]:
        lines.append(f"  in flight: skb {flight.skb} on the receiving sock {flight.sock}'s queue held this very "
                     "struct file pointer (UNIXCB(skb).fp), between sendmsg and recvmsg")
    lines += page_lines(story)
    lines += reuse_lines(story)
    if story.mapped_privately:
        lines.append(f"  {PRIVATE_MAPPING}")
    return lines


def count_text(seen: RefcountSeen) -> str:
    """One value of the count, at the step that took the reference where another step's read showed it."""
    if seen.taken_by:
        return f"{seen.count}: taken by {seen.taken_by} in {seen.taken_in}, read at {seen.step}"
    return f"{seen.count} ({seen.step} in {seen.comm}{', read before it ran' if seen.before else ''})"


def refcount_lines(story: SharedFile) -> list[str]:
    if not story.refcounts:
        return []
    lines = ["  refcount: " + " -> ".join(count_text(seen) for seen in story.refcounts)]
    taken = dict.fromkeys(seen.taken_how for seen in story.refcounts if seen.taken_how)
    lines += [f"  kernel source: {how}" for how in taken if how]
    return lines


def other_text(other: OtherLife) -> str:
    name = f" {other.name!r}" if other.name else ""
    return f"{other.kind or 'file'}{name}, first seen at {other.step} in {other.comm} [{other.pid}]"


def reuse_lines(story: SharedFile) -> list[str]:
    """The address named another struct file before or after this one: said once, from the recording."""
    seen = [f"{when} ({other_text(other)})" for when, other in (("earlier", story.earlier), ("later", story.later))
            if other is not None]
    if not seen:
        return []
    return [f"  this address also named another struct file {' and '.join(seen)}: a freed file's slab object "
            "reused, a different file, not this one shared"]


def compact_finding_lines(story: SharedFile) -> list[str]:
    """The finding beside the object view, which already draws each holder: a few short lines,
    so that objects and findings fit one 80x24 screen."""
    fds = " and ".join(str(holder.fd) for _, holder in holders(story))
    lines = [f"One struct file {story.file} in {story.processes} processes: fds {fds}, one object"]
    if story.refcounts:
        lines.append("  refcount " + " -> ".join(str(seen.count) for seen in story.refcounts))
    for flight in story.in_flight[:1]:
        lines.append(f"  in flight: in skb {flight.skb} on the receiver's queue")
    if story.same_page:
        lines.append(f"  one physical page behind both mappings: PFN {story.same_page.pfn:#x}")
    for copied in story.private_copies[:1]:
        lines.append(f"  {copied.copy.comm}'s write: copy on write, its own PFN {copied.copy.pfn:#x}")
    if story.earlier or story.later:
        lines.append("  its address also named another struct file (slab reuse), not this one")
    return lines


def page_lines(story: SharedFile) -> list[str]:
    lines = [line for frame in story.frames[:2] for line in frame_lines(frame)]
    if story.same_page:
        where = " and ".join(f"{page.comm} (tgid {page.tgid}) at {page.address}" for page in story.same_page.seen)
        lines.append(f"  same physical page: {where} map PFN {story.same_page.pfn:#x}, the file's page-cache page")
    for copied in story.private_copies[:2]:
        lines.append(f"  copy on write: {copied.copy.comm}'s write gave it PFN {copied.copy.pfn:#x} of its own in "
                     f"place of {copied.shared.pfn:#x}")
    return lines


SAW = {ROUND_TRIP: ("the receiver read, through its own mapping, the text the sender wrote",
                    "the receiver read something else than the text the sender wrote"),
       SENDER_WRITE_SEEN: ("the receiver's private mapping read the sender's later write too (no copy yet)",
                           "the receiver's private mapping did not read the sender's later write"),
       OWN_WRITE_KEPT: (("after the receiver wrote into its private mapping, the sender still read its own text: "
                         "the receiver's write went to a copy"),
                        "after the receiver wrote into its private mapping, the sender read something else")}


def saw_line(saw: ProgramSaw) -> str:
    yes, no = SAW[saw.what]
    return f"observed [{saw.cited}]: {yes if saw.seen else no}"


def conclusion_lines(facts: Sequence[Fact], compact: bool) -> list[str]:
    told = compact_finding_lines if compact else finding_lines
    stories = shared_facts(facts)
    lines = [line for story in stories[:SHOWN_FINDINGS] for line in told(story)]
    total = total_shared(facts)
    if total > SHOWN_FINDINGS:
        lines.append(f"... and {total - SHOWN_FINDINGS} more struct files shared the same way ({total} in all)")
    if not compact:
        lines += [line for fact in facts if isinstance(fact, SharedNotShared) for line in shared_not_shared_lines(fact)]
        lines += [saw_line(fact) for fact in facts if isinstance(fact, ProgramSaw)]
    return lines


# ---- the object view --------------------------------------------------------------------

def owner_column(role: str, holder: Holder, left: bool) -> Text:
    from rich.text import Text

    def point(label: str) -> str:
        return f"{label} ──►" if left else f"◄── {label}"

    lines = Text(justify="right" if left else "left")
    lines.append(f"{role}: {holder.comm}  pid {holder.pid}  tgid {holder.tgid}\n", style="bold")
    lines.append(point(f"fd {holder.fd} (fd table)") + "\n", style="cyan")
    if holder.address:
        lines.append(point(f"vma {holder.vma or '?'} (vm_file)") + "\n", style="magenta")
        lines.append(f"@ {holder.address} {sharing(holder)}\n", style="magenta")
    return lines


def file_box(story: SharedFile) -> Panel:
    from rich.panel import Panel
    from rich.text import Text

    refcount = story.refcounts[-1].count if story.refcounts else None
    body = Text()
    body.append(f"{story.file}\n", style="bold reverse")
    name = f" {story.name!r}" if story.name else ""
    body.append(f"f_inode -> inode {story.inode} ({short_kind(story)}{name})\n")
    if story.f_op:
        body.append(f"f_op {f_op_text(story)}\n")
    body.append(f"refcount {refcount} (last seen)\n" if refcount is not None else "")
    if story.same_page:
        body.append(f"page cache: PFN {story.same_page.pfn:#x} in {len(story.same_page.seen)} processes\n",
                    style="yellow")
    body.append(f"{story.processes} owners, 1 object", style="bold green")
    return Panel(body, title="struct file", border_style="green", expand=False)


def side_by_side(story: SharedFile) -> Table:
    from rich.console import Group
    from rich.table import Table

    grid = Table.grid(padding=(0, 1), expand=False)
    grid.add_column(justify="right")
    grid.add_column(justify="center", vertical="middle")
    grid.add_column(justify="left")
    receivers = Group(*(owner_column("receiver", holder, left=False) for holder in story.receivers))
    grid.add_row(owner_column("sender", story.creator, left=True), file_box(story), receivers)
    return grid


def stacked(story: SharedFile) -> Group:
    """Owners above and below the file, two lines each, for terminals too narrow for three columns."""
    from rich.console import Group
    from rich.text import Text

    def owner(role: str, holder: Holder, arrow: str) -> Text:
        text = Text(f"{role}: {holder.comm}  pid {holder.pid}  tgid {holder.tgid}  ", style="bold")
        text.append(f"fd {holder.fd} (fd table) {arrow}", style="cyan")
        if holder.address:
            text.append(f"\nvma {holder.vma or '?'} (vm_file) {arrow} @ {holder.address} {sharing(holder)}",
                        style="magenta")
        return text

    return Group(owner("sender", story.creator, "──▼"), file_box(story),
                 *(owner("receiver", holder, "──▲") for holder in story.receivers))


class ObjectView:
    """fd -> struct file <- fd: side by side where it fits, else stacked; never cropped."""

    def __init__(self, story: SharedFile) -> None:
        self.story = story

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        story = self.story
        parts: list[RenderableType] = [owner_column("sender", story.creator, left=True), file_box(story),
                 *(owner_column("receiver", holder, left=False) for holder in story.receivers)]
        widths = [console.measure(part, options=options.update(width=10_000)).maximum for part in parts]
        if widths[0] + widths[1] + max(widths[2:], default=0) + 2 <= options.max_width:
            yield side_by_side(story)
        else:
            yield stacked(story)


def object_panels(stories: Sequence[SharedFile], total: int | None = None) -> list[Panel]:
    from rich.panel import Panel

    more = (len(stories) if total is None else total) - SHOWN_OBJECTS
    return [Panel(ObjectView(story), title="objects: fd -> struct file <- fd", border_style="cyan",
                  subtitle=f"and {more} more shared files like it" if more > 0 and i == SHOWN_OBJECTS - 1 else None)
            for i, story in enumerate(stories[:SHOWN_OBJECTS])]


# ---- the HTML report's diagram ------------------------------------------------------------

BOX_W, BOX_H, FILE_W, GAP = 300, 92, 250, 90


def owner_lines(role: str, holder: Holder) -> list[str]:
    lines = [f"{role}: {holder.comm}", f"pid {holder.pid}  tgid {holder.tgid}", f"fd {holder.fd} (fd table)"]
    if holder.address:
        lines.append(f"vma {holder.vma or '?'}")
        lines.append(f"@ {holder.address}")
    return lines


def object_svg(story: SharedFile) -> str:
    """sender on the left, receivers on the right, the struct file in the middle: each fd and
    each vma an arrow to the one object."""
    from tracer.views.svg import arrow, svg_box, svg_graph

    right = list(story.receivers)
    height = max(1, len(right)) * (BOX_H + 40) + 20
    file_x = BOX_W + GAP
    right_x = file_x + FILE_W + GAP
    refcount = story.refcounts[-1].count if story.refcounts else "?"
    file_lines = ["struct file", story.file, f"inode {story.inode} ({short_kind(story)})",
                  f"refcount {refcount} (last seen)", f"{story.processes} owners, 1 object"]
    file_y = height // 2 - 55
    parts = [svg_box(file_x, file_y, FILE_W, file_lines, "file", f"struct file {story.file}")]
    slots = [(20, file_y, "sender", story.creator)]
    slots += [(right_x, file_y if len(right) == 1 else 20 + i * (BOX_H + 40), "receiver", holder)
              for i, holder in enumerate(right)]
    for x, y, role, holder in slots:
        parts.append(svg_box(x, y, BOX_W, owner_lines(role, holder), "owner", f"{role} {holder.comm}"))
        start, end = (x + BOX_W, file_x) if x < file_x else (x, file_x + FILE_W)
        parts.append(arrow(start, y + 58, end, file_y + 40, f"fd {holder.fd}"))
        if holder.address:
            parts.append(arrow(start, y + 94, end, file_y + 70, "vm_file"))
    return svg_graph(right_x + BOX_W + 20, height, f"one struct file, {story.processes} owners", parts)


# ---- --follow-file: the life of each memfd ---------------------------------------------------

def chapter_text(chapter: Chapter) -> str | None:
    event = chapter.event
    template = CHAPTER.get(event.step)
    if template is None:
        return None
    detail = event.detail
    text = template.format(fd=event.fd, address=detail.get("address"), skb=detail.get("skb"), sock=detail.get("sock"),
                           pfn=int(detail.get("pfn", 0)), addr=detail.get("addr"))
    if event.step == MAPPING_STEP and chapter.mapped_by_another_before:
        text += " again, by another process"
    return text


def chapter_cells(chapter: Chapter, text: str, started_ns: int) -> list[str]:
    from tracer.views.path import chain_text
    from tracer.views.timeline import relative_ms

    event = chapter.event
    return [relative_ms(event, started_ns), f"{event.comm}[{event.pid}]", text,
            refcount_text(event), event.hook, chain_text(event)]


def told_chapters(life: FileLifeStory, started_ns: int) -> list[list[str]]:
    rows = []
    for chapter in life.chapters:
        text = chapter_text(chapter)
        if text is not None:
            rows.append(chapter_cells(chapter, text, started_ns))
    return rows


# ---- the timeline's detail column --------------------------------------------------------

def event_text(event: Event) -> str | None:
    detail: dict[str, Any] = event.detail
    if event.step == "memfd_create":
        return f"name={detail.get('name')!r} {'|'.join(detail.get('flags', [])) or ''}".strip()
    if event.step in ("scm_fp_copy", "receive_fd") and "count" in detail:
        return f"fd {detail.get('index', 0) + 1}/{detail.get('count')} sock={detail.get('sock')}"
    if event.step == "shmem_file_setup":
        return f"shmem inode, s_magic={detail.get('s_magic')}"
    if event.step == MAPPING_STEP:
        text = f"addr={detail.get('address')} len={detail.get('length')} {'|'.join(detail.get('flags', []))}"
        if detail.get("vma"):
            text += f" vma={detail['vma']} {'|'.join(detail.get('vm_flags', []))}"
        return text
    if event.step == "unix_stream_sendmsg":
        return f"sock={detail.get('sock')} peer={detail.get('peer')} SCM_RIGHTS fds={detail.get('scm_rights')}"
    return None


class MemfdView:
    """What the core's views call (tracer/story.py StoryView)."""

    def lines(self, facts: Sequence[Fact], compact: bool) -> list[str]:
        return conclusion_lines(facts, compact)

    def panels(self, facts: Sequence[Fact]) -> list[RenderableType]:
        return list(object_panels(shared_facts(facts), total_shared(facts)))

    def follow_lines(self, facts: Sequence[Fact], started_ns: int) -> list[str]:
        lines = []
        for life in life_facts(facts)[:SHOWN_LIVES]:
            lines.append(f"The life of struct file {life.file}:")
            lines += ["  " + "  ".join(cells) for cells in told_chapters(life, started_ns)]
        return lines

    def follow_panels(self, facts: Sequence[Fact], started_ns: int) -> list[RenderableType]:
        from rich.panel import Panel
        from rich.table import Table

        panels: list[RenderableType] = []
        for life in life_facts(facts)[:SHOWN_LIVES]:
            table = Table(*CHAPTER_COLUMNS, expand=True, box=None)
            for cells in told_chapters(life, started_ns):
                table.add_row(*cells)
            panels.append(Panel(table, title=f"the life of struct file {life.file}", border_style="magenta"))
        return panels

    def diagrams(self, facts: Sequence[Fact]) -> list[str]:
        return [object_svg(story) for story in shared_facts(facts)[:SHOWN_DIAGRAMS]]

    def highlighted_files(self, facts: Sequence[Fact]) -> set[str]:
        return {story.file for story in shared_facts(facts)}

    def event_text(self, event: Event) -> str | None:
        return event_text(event)

    def step_style(self, step: str) -> str | None:
        return STEP_STYLES.get(step)

    def nothing_seen(self) -> str:
        return "no struct file shared between two processes"

    def folded_note(self, count: int) -> str:
        return f"{count} private mappings of regular files (the loader's: libraries, ld.so.cache, locale files)"


def view() -> MemfdView:
    """This lesson's renderer, for the core (tracer/stories.py)."""
    return MemfdView()
