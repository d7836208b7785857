"""--export-html: one self-contained, interactive report (no network, no external file).

The object graphs are SVG the lessons draw (scenarios/<lesson>/views.py, with tracer/views/svg.py),
so the export needs no graphviz. The events travel as
JSON inside the page; the page's script builds the timeline with filters and shows an
event's fields, path and narration on click. Text from the traced program is untrusted:
it reaches the page only as escaped SVG text or through textContent, never as markup.
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from tracer.events import Event, in_call_order, refcount_text
from tracer.findings import Findings
from tracer.views.details import details
from tracer.views.hooks import hook_line, kernel_line, session_title
from tracer.views.narration import first_narrations
from tracer.views.summary import conclusion_lines
from tracer.views.svg import esc
from tracer.views.timeline import detail_text, relative_ms

SHOWN_EVENTS = 5000         # events carried in the page; the rest are counted


def event_record(event: Event, header: dict[str, Any]) -> dict[str, Any]:
    told = details(event, header)
    return {"ms": relative_ms(event, int(header.get("started_ns", 0))).strip(), "pid": event.pid,
            "process": f"{event.comm} [{event.pid}]", "step": event.step, "fd": event.fd, "file": event.file,
            "ref": refcount_text(event), "detail": detail_text(event), "fields": told.fields, "path": told.path,
            "path_from": told.path_from, "where": told.where, "why": told.why}


def page_data(findings: Findings, events: Sequence[Event]) -> str:
    """The events the page's timeline lists: those the terminal shows too (the loader's mappings and
    whatever else a story folds are counted, not listed)."""
    unfolded = [event for event in events if not findings.folds(event)]
    shown = in_call_order(unfolded[:SHOWN_EVENTS])
    data = {"events": [event_record(event, findings.header) for event in shown], "total": findings.events,
            "folded": "; ".join(findings.folded_notes())}
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
    diagrams = "".join(findings.diagrams()) or "<p>No object graph: nothing the lessons draw was seen.</p>"
    findings_text = "\n".join(conclusion_lines(findings))
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
    (data.total > data.events.length ?
     ' (' + data.total + ' in the session; the first ' + data.events.length + ' are in this page)' : '') +
    (data.folded ? '; not listed (the recording has them): ' +
     data.folded : '');
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
