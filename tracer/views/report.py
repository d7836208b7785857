"""--export-html: one self-contained, interactive report (no network, no external file).

The object graph is an SVG laid out here (owners left and right, the struct file between,
one arrow per fd and per mapping), so the export needs no graphviz. The events travel as
JSON inside the page; the page's script builds the timeline with filters and shows an
event's fields, path and narration on click. Text from the traced program is untrusted:
it reaches the page only as escaped SVG text or through textContent, never as markup.
"""
from __future__ import annotations

import html
import json
from collections.abc import Sequence
from typing import Any

from tracer.events import Event, in_call_order
from tracer.findings import Findings, Holder, SharedFile
from tracer.views.details import details
from tracer.views.hooks import hook_line, kernel_line, session_title
from tracer.views.narration import first_narrations
from tracer.views.summary import clone_lines, conclusion_lines
from tracer.views.timeline import detail_text, relative_ms

SHOWN_EVENTS = 5000         # events carried in the page; the rest are counted
BOX_W, BOX_H, FILE_W, GAP = 300, 92, 250, 90


def esc(text: object) -> str:
    return html.escape(str(text), quote=True)


def owner_lines(role: str, holder: Holder) -> list[str]:
    lines = [f"{role}: {holder.comm}", f"pid {holder.pid}  tgid {holder.tgid}", f"fd {holder.fd} (fd table)"]
    if holder.address:
        lines.append(f"vma {holder.vma or '?'}")
        lines.append(f"@ {holder.address}")
    return lines


def svg_box(x: int, y: int, w: int, lines: Sequence[str], css: str, title: str) -> str:
    h = 22 + 18 * len(lines)
    text = "".join(f'<tspan x="{x + 10}" dy="18">{esc(line)}</tspan>' for line in lines)
    return (f'<g class="{css}"><title>{esc(title)}</title><rect x="{x}" y="{y}" width="{w}" height="{h}" rx="8"/>'
            f'<text x="{x + 10}" y="{y + 4}">{text}</text></g>')


def arrow(x1: int, y1: int, x2: int, y2: int, label: str) -> str:
    return (f'<path class="edge" d="M{x1},{y1} C{(x1 + x2) // 2},{y1} {(x1 + x2) // 2},{y2} {x2},{y2}" '
            f'marker-end="url(#head)"/><text class="edge-label" x="{(x1 + x2) // 2}" y="{(y1 + y2) // 2 - 6}" '
            f'text-anchor="middle">{esc(label)}</text>')


def object_svg(story: SharedFile) -> str:
    """sender on the left, receivers on the right, the struct file in the middle: each fd and
    each vma an arrow to the one object."""
    owners = [("sender", story.creator), *(("receiver", holder) for holder in story.receivers)]
    right = owners[1:]
    height = max(1, len(right)) * (BOX_H + 40) + 20
    file_x = BOX_W + GAP
    right_x = file_x + FILE_W + GAP
    refcount = story.refcounts[-1][2] if story.refcounts else "?"
    file_lines = ["struct file", story.file, f"inode {story.inode} ({story.kind})", f"refcount {refcount} (last seen)",
                  f"{len(owners)} owners, 1 object"]
    file_y = height // 2 - 55
    parts = [svg_box(file_x, file_y, FILE_W, file_lines, "file", f"struct file {story.file}")]
    slots = [(20, file_y, "sender", story.creator)]
    slots += [(right_x, file_y if len(right) == 1 else 20 + i * (BOX_H + 40), role, holder)
              for i, (role, holder) in enumerate(right)]
    for x, y, role, holder in slots:
        parts.append(svg_box(x, y, BOX_W, owner_lines(role, holder), "owner", f"{role} {holder.comm}"))
        start, end = (x + BOX_W, file_x) if x < file_x else (x, file_x + FILE_W)
        parts.append(arrow(start, y + 58, end, file_y + 40, f"fd {holder.fd}"))
        if holder.address:
            parts.append(arrow(start, y + 94, end, file_y + 70, "vm_file"))
    width = right_x + BOX_W + 20
    return (f'<svg class="graph" viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" '
            f'aria-label="one struct file, {len(owners)} owners" xmlns="http://www.w3.org/2000/svg">'
            '<defs><marker id="head" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="8" markerHeight="8" '
            'orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z"/></marker></defs>'
            + "".join(parts) + "</svg>")


def event_record(event: Event, header: dict[str, Any]) -> dict[str, Any]:
    told = details(event, header)
    return {"ms": relative_ms(event, int(header.get("started_ns", 0))).strip(), "pid": event.pid,
            "process": f"{event.comm} [{event.pid}]", "step": event.step, "fd": event.fd, "file": event.file,
            "ref": event.refcount, "detail": detail_text(event), "fields": told.fields, "path": told.path,
            "path_from": told.path_from, "where": told.where, "why": told.why}


def page_data(findings: Findings, events: Sequence[Event]) -> str:
    shown = in_call_order(list(events)[:SHOWN_EVENTS])
    data = {"events": [event_record(event, findings.header) for event in shown], "total": findings.events}
    return json.dumps(data).replace("<", "\\u003c").replace("&", "\\u0026")     # safe inside <script>


def hooks_html(header: dict[str, Any]) -> str:
    rows = "".join(f"<tr><td>{esc(line.step)}</td><td><code>{esc(line.hook)}</code></td>"
                   f'<td class="{esc(line.status)}">{esc(line.status)}</td><td>{esc(line.reads)}</td></tr>'
                   for line in map(hook_line, header.get("hooks", [])))
    return f"<table class=hooks><tr><th>step<th>hook<th>status<th>what it reads</tr>{rows}</table>"


def narration_html(findings: Findings) -> str:
    items = "".join(f"<li><b>{esc(event.step)}</b> in {esc(event.comm)} <span class=dim>{esc(where)}</span>"
                    f"<p>{esc(text)}</p></li>"
                    for event, where, text in first_narrations(findings.first_events_by_step(), findings.header))
    return f"<ol class=narration>{items}</ol>"


def html_report(findings: Findings, events: Sequence[Event]) -> str:
    header = findings.header
    diagrams = ("".join(object_svg(story) for story in findings.shared_files()[:2])
                or "<p>No struct file was seen shared.</p>")
    findings_text = "\n".join(conclusion_lines(findings, clones=False) + clone_lines(findings))
    return PAGE.format(title=esc(session_title(header)), kernel=esc(kernel_line(header)), hooks=hooks_html(header),
                       diagrams=diagrams, findings=esc(findings_text), narration=narration_html(findings),
                       data=page_data(findings, events), css=CSS, script=SCRIPT)


CSS = """
:root { --bg: #fff; --fg: #1b1b1b; --dim: #666; --line: #ccc; --file: #e6f4ea; --owner: #eef3fb; --pick: #fff3bf; }
@media (prefers-color-scheme: dark) {
  :root { --bg: #16181d; --fg: #e8e8e8; --dim: #9a9a9a; --line: #444;
          --file: #1f3a2a; --owner: #1d2a3d; --pick: #4a4220; }
}
body { background: var(--bg); color: var(--fg); font: 15px/1.45 system-ui, sans-serif; margin: 1.5em; }
pre { white-space: pre-wrap; }
code, pre, td, .graph text { font-family: ui-monospace, monospace; }
h1 { font-size: 1.3em; margin: 0; } h2 { font-size: 1.1em; margin-top: 1.6em; }
.dim { color: var(--dim); }
table { border-collapse: collapse; }
td, th { padding: 2px 8px; border-bottom: 1px solid var(--line); text-align: left; vertical-align: top; }
.fallback { color: #b07800; } .attached { color: #2e7d32; } .unavailable { color: #c62828; }
.graph { max-width: 100%; height: auto; } .graph rect { stroke: var(--fg); stroke-width: 1.2; }
.graph .file rect { fill: var(--file); stroke-width: 2.5; } .graph .owner rect { fill: var(--owner); }
.graph text { fill: var(--fg); font-size: 13px; } .graph .edge { fill: none; stroke: var(--fg); stroke-width: 1.5; }
.graph marker path { fill: var(--fg); } .graph .edge-label { font-size: 12px; fill: var(--dim); }
#filters { display: flex; gap: .6em; flex-wrap: wrap; margin: .5em 0; }
#timeline { max-height: 26em; overflow: auto; display: block; } #timeline tr { cursor: pointer; }
#timeline tr.picked { background: var(--pick); } #timeline td { white-space: nowrap; }
#event { border: 1px solid var(--line); padding: .6em 1em; min-height: 4em; }
#event dt { color: var(--dim); float: left; width: 8em; } #event dd { margin-left: 9em; }
"""

SCRIPT = """
const data = JSON.parse(document.getElementById('data').textContent);
const columns = ['ms', 'process', 'step', 'fd', 'file', 'ref', 'detail'];
const pick = { process: document.getElementById('process'), step: document.getElementById('step'),
               file: document.getElementById('file'), search: document.getElementById('search') };
function options(select, values) {
  for (const value of [...new Set(values)].filter(v => v !== null && v !== '').sort()) {
    const option = document.createElement('option'); option.value = option.textContent = value; select.append(option);
  }
}
options(pick.process, data.events.map(e => e.process));
options(pick.step, data.events.map(e => e.step));
options(pick.file, data.events.map(e => e.file));
function cell(row, text) { const td = document.createElement('td'); td.textContent = text ?? ''; row.append(td); }
function show(event, row) {
  document.querySelectorAll('#timeline tr.picked').forEach(r => r.classList.remove('picked'));
  row.classList.add('picked');
  const box = document.getElementById('event'); box.replaceChildren();
  const list = document.createElement('dl');
  for (const [name, value] of event.fields) {
    const dt = document.createElement('dt'); dt.textContent = name;
    const dd = document.createElement('dd'); dd.textContent = value; list.append(dt, dd);
  }
  box.append(list);
  if (event.path.length) {
    const path = document.createElement('pre');
    path.textContent = 'path' + (event.path_from ? ' (caught at ' + event.path_from + ')' : '') + ':\\n' +
      [...event.path].reverse().map((frame, depth) => '  '.repeat(depth + 1) + frame).join('\\n');
    box.append(path);
  }
  if (event.why) {
    const where = document.createElement('p'); where.className = 'dim'; where.textContent = event.where;
    const why = document.createElement('p'); why.textContent = event.why; box.append(where, why);
  }
}
function render() {
  const body = document.querySelector('#timeline tbody'); body.replaceChildren();
  const text = pick.search.value.toLowerCase();
  let shown = 0;
  for (const event of data.events) {
    if (pick.process.value && event.process !== pick.process.value) continue;
    if (pick.step.value && event.step !== pick.step.value) continue;
    if (pick.file.value && event.file !== pick.file.value) continue;
    if (text && !columns.map(c => String(event[c] ?? '')).join(' ').toLowerCase().includes(text)) continue;
    const row = document.createElement('tr');
    for (const column of columns) cell(row, event[column]);
    row.addEventListener('click', () => show(event, row));
    body.append(row); shown++;
  }
  document.getElementById('count').textContent = shown + ' of ' + data.events.length + ' events shown' +
    (data.total > data.events.length
     ? ' (' + data.total + ' in the session; the first ' + data.events.length + ' are in this page)' : '');
}
Object.values(pick).forEach(input => input.addEventListener('input', render));
render();
"""

PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<meta http-equiv="Content-Security-Policy"
      content="default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'">
<title>{title}</title><style>{css}</style></head>
<body>
<h1>{title}</h1><p class="dim">{kernel}</p>
<h2>Objects: fd &rarr; struct file &larr; fd</h2>
{diagrams}
<h2>What the kernel did</h2><pre id="findings">{findings}</pre>
<h2>Timeline</h2>
<div id="filters"><select id="process"><option value="">every process</option></select>
<select id="step"><option value="">every step</option></select>
<select id="file"><option value="">every struct file</option></select>
<input id="search" type="search" placeholder="search"><span id="count" class="dim"></span></div>
<table id="timeline"><thead>
<tr><th>ms<th>process<th>step<th>fd<th>struct file<th>ref<th>detail</tr></thead><tbody></tbody></table>
<h2>Selected event: fields, path, narration</h2><div id="event" class="dim">click an event in the timeline</div>
<h2>Step by step</h2>{narration}
<h2>Hooks on this kernel</h2>{hooks}
<script id="data" type="application/json">{data}</script>
<script>{script}</script>
</body></html>
"""
