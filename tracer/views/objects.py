"""The object view: each process's fd table and vma pointing at one struct file.

Drawn so that the shared struct file is visibly a single object with two owners:
the sender's column on the left, the receivers' on the right, the file between.
"""
from __future__ import annotations

from collections.abc import Sequence

from rich.console import Console, ConsoleOptions, Group, RenderableType, RenderResult
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from tracer.findings import Holder, SharedFile


def owner_column(role: str, holder: Holder, left: bool) -> Text:
    def point(label: str) -> str:
        return f"{label} ──►" if left else f"◄── {label}"

    lines = Text(justify="right" if left else "left")
    lines.append(f"{role}: {holder.comm}  pid {holder.pid}  tgid {holder.tgid}\n", style="bold")
    lines.append(point(f"fd {holder.fd} (fd table)") + "\n", style="cyan")
    if holder.address:
        lines.append(point(f"vma {holder.vma or '?'} (vm_file)") + "\n", style="magenta")
        lines.append(f"@ {holder.address} {holder.sharing}\n", style="magenta")
    return lines


def file_box(story: SharedFile) -> Panel:
    refcount = story.refcounts[-1][2] if story.refcounts else None
    body = Text()
    body.append(f"{story.file}\n", style="bold reverse")
    body.append(f"f_inode -> inode {story.inode} ({story.kind} {story.name!r})\n" if story.name
                else f"f_inode -> inode {story.inode} ({story.kind})\n")
    if story.f_op:
        body.append(f"f_op {story.f_op}\n")
    body.append(f"refcount {refcount} (last seen)\n" if refcount is not None else "")
    same = story.same_page()
    if same:
        body.append(f"page cache: PFN {same[0]:#x} in {len(same[1])} processes\n", style="yellow")
    body.append(f"{1 + len(story.receivers)} owners, 1 object", style="bold green")
    return Panel(body, title="struct file", border_style="green", expand=False)


def side_by_side(story: SharedFile) -> Table:
    grid = Table.grid(padding=(0, 1), expand=False)
    grid.add_column(justify="right")
    grid.add_column(justify="center", vertical="middle")
    grid.add_column(justify="left")
    receivers = Group(*(owner_column("receiver", holder, left=False) for holder in story.receivers))
    grid.add_row(owner_column("sender", story.creator, left=True), file_box(story), receivers)
    return grid


def stacked(story: SharedFile) -> Group:
    """Owners above and below the file, two lines each, for terminals too narrow for three columns."""
    def owner(role: str, holder: Holder, arrow: str) -> Text:
        text = Text(f"{role}: {holder.comm}  pid {holder.pid}  tgid {holder.tgid}  ", style="bold")
        text.append(f"fd {holder.fd} (fd table) {arrow}", style="cyan")
        if holder.address:
            text.append(f"\nvma {holder.vma or '?'} (vm_file) {arrow} @ {holder.address} {holder.sharing}",
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
            yield stacked(self.story)


def object_view(story: SharedFile) -> ObjectView:
    return ObjectView(story)


SHOWN_OBJECTS = 2


def object_panels(stories: Sequence[SharedFile], total: int | None = None) -> list[Panel]:
    more = (len(stories) if total is None else total) - SHOWN_OBJECTS
    return [Panel(object_view(story), title="objects: fd -> struct file <- fd", border_style="cyan",
                  subtitle=f"and {more} more shared files like it" if more > 0 and i == SHOWN_OBJECTS - 1 else None)
            for i, story in enumerate(stories[:SHOWN_OBJECTS])]
