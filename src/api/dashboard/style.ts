// The dashboard's stylesheet, inlined into each page (no build, no asset route).
export const css = `
:root {
  --bg: #f5f6f8; --panel: #fff; --ink: #1d2430; --muted: #667085; --line: #e4e7ec; --accent: #3b5bdb;
  --pending: #7048e8; --queued: #3b5bdb; --running: #b7791f; --completed: #2f855a; --failed: #c53030; --cancelled: #718096;
  --mono: ui-monospace, SFMono-Regular, Menlo, Consolas, "Liberation Mono", monospace;
}
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; color: var(--ink); background: var(--bg); }
a { color: var(--accent); text-decoration: none; }
a:hover { text-decoration: underline; }
header.top { background: #111827; color: #e5e7eb; }
header.top .bar { max-width: 1200px; margin: 0 auto; padding: 0 24px; display: flex; align-items: center; gap: 24px; height: 52px; }
header.top .brand { font-weight: 700; font-size: 16px; color: #fff; letter-spacing: .2px; display: flex; align-items: center; gap: 8px; }
header.top .brand::before { content: ""; width: 10px; height: 10px; border-radius: 50%; background: #34d399; box-shadow: 0 0 0 3px rgba(52,211,153,.25); }
header.top nav { display: flex; gap: 4px; flex: 1; }
header.top nav a { color: #cbd5e1; padding: 6px 12px; border-radius: 6px; }
header.top nav a:hover { background: #1f2937; color: #fff; text-decoration: none; }
header.top nav a.active { background: #374151; color: #fff; }
header.top .right { display: flex; align-items: center; gap: 12px; font-size: 12px; color: #9ca3af; }
header.top .right form { margin: 0; }
header.top .right button { background: transparent; border: 1px solid #4b5563; color: #d1d5db; padding: 4px 10px; border-radius: 6px; cursor: pointer; font-size: 12px; }
#live-status::before { content: "●"; margin-right: 4px; color: #34d399; }
#live-status.stale::before { color: #f87171; }
main { max-width: 1200px; margin: 0 auto; padding: 24px; }
h1 { font-size: 22px; margin: 0 0 16px; display: flex; align-items: center; gap: 12px; flex-wrap: wrap; }
h2 { font-size: 15px; margin: 28px 0 10px; color: #344054; text-transform: uppercase; letter-spacing: .6px; }
.panel { background: var(--panel); border: 1px solid var(--line); border-radius: 10px; overflow: hidden; }
.panel.pad { padding: 16px 20px; }
table { width: 100%; border-collapse: collapse; }
th, td { text-align: left; padding: 9px 14px; border-bottom: 1px solid var(--line); white-space: nowrap; }
th { font-size: 12px; font-weight: 600; color: var(--muted); background: #fafbfc; text-transform: uppercase; letter-spacing: .4px; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
tr:last-child td { border-bottom: 0; }
tbody tr:hover { background: #f9fafb; }
td.wrap { white-space: normal; word-break: break-word; }
.muted { color: var(--muted); }
.mono { font-family: var(--mono); font-size: 13px; }
.cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(150px, 1fr)); gap: 12px; margin-bottom: 8px; }
.card { background: var(--panel); border: 1px solid var(--line); border-radius: 10px; padding: 14px 18px; display: flex; flex-direction: column; justify-content: space-between; }
.card .label { font-size: 12px; color: var(--muted); text-transform: uppercase; letter-spacing: .4px; }
.card .value { font-size: 26px; font-weight: 650; font-variant-numeric: tabular-nums; }
.badge { display: inline-block; padding: 2px 9px; border-radius: 999px; font-size: 12px; font-weight: 600; color: #fff; line-height: 18px; }
.badge.pending { background: var(--pending); } .badge.queued { background: var(--queued); } .badge.running { background: var(--running); } .badge.completed { background: var(--completed); }
.badge.failed { background: var(--failed); } .badge.cancelled { background: var(--cancelled); }
.zero { color: #c0c6d0; }
.count-failed, .count-failed a { color: var(--failed); font-weight: 600; }
.progress { position: relative; height: 8px; background: #edf0f4; border-radius: 999px; overflow: hidden; min-width: 80px; }
.progress > span { position: absolute; inset: 0 auto 0 0; background: var(--accent); border-radius: 999px; transition: width .4s ease; }
.progress.pending > span { background: var(--pending); } .progress.completed > span { background: var(--completed); } .progress.failed > span { background: var(--failed); } .progress.cancelled > span { background: var(--cancelled); }
.progress-row { display: flex; align-items: center; gap: 12px; }
.progress-row .progress { flex: 1; height: 12px; }
.grid2 { display: grid; grid-template-columns: minmax(0, 1fr) minmax(0, 1fr); gap: 16px; }
@media (max-width: 800px) { .grid2 { grid-template-columns: 1fr; } }
dl.facts { display: grid; grid-template-columns: 150px 1fr; margin: 0; }
dl.facts dt, dl.facts dd { padding: 7px 0; border-bottom: 1px solid var(--line); margin: 0; }
dl.facts dt { color: var(--muted); }
dl.facts dd { word-break: break-word; }
pre { margin: 0; padding: 14px 16px; background: #0f172a; color: #e2e8f0; border-radius: 8px; overflow: auto; max-height: 420px; font: 12.5px/1.5 var(--mono); white-space: pre-wrap; word-break: break-word; }
.attempt { border-top: 1px solid var(--line); padding: 12px 20px; }
.attempt:first-child { border-top: 0; }
.attempt .head { display: flex; gap: 10px; align-items: baseline; flex-wrap: wrap; }
.attempt .err { font-weight: 600; color: var(--failed); }
.attempt details { margin-top: 8px; }
.attempt summary { cursor: pointer; color: var(--muted); font-size: 13px; }
.attempt pre { margin-top: 8px; }
.actions { display: flex; gap: 8px; margin-left: auto; }
.actions form { margin: 0; }
button, .button { font: inherit; font-size: 13px; font-weight: 600; border-radius: 7px; padding: 7px 14px; border: 1px solid var(--line); background: #fff; color: var(--ink); cursor: pointer; }
button.primary { background: var(--accent); border-color: var(--accent); color: #fff; }
button.danger { background: #fff; border-color: #f5c2c2; color: var(--failed); }
button:hover, .button:hover { filter: brightness(.96); }
.button { display: inline-flex; align-items: center; }
a.button:hover { text-decoration: none; }
.button.danger { border-color: #f5c2c2; color: var(--failed); }
details.more-filters { width: 100%; }
details.more-filters summary { cursor: pointer; color: var(--muted); font-size: 13px; }
details.more-filters .row { display: flex; gap: 10px; flex-wrap: wrap; margin-top: 10px; }
details.more-filters label { display: flex; flex-direction: column; font-size: 12px; color: var(--muted); gap: 4px; }
details.more-filters input.payload { min-width: 280px; font-family: var(--mono); font-size: 13px; }
.bulk-bar { display: flex; align-items: center; gap: 8px; margin: -4px 0 14px; font-size: 13px; }
.bulk-bar .button { padding: 4px 12px; }
.bulk-confirm p { margin: 0 0 12px; }
.bulk-confirm dl.facts { margin-bottom: 16px; }
.bulk-count { font-size: 16px; }
.bulk-count strong { font-size: 22px; }
.bulk-form { display: flex; align-items: center; gap: 10px; flex-wrap: wrap; }
label.check { display: flex; align-items: center; gap: 6px; width: 100%; }
label.check input { min-width: 0; height: auto; }
.notice { padding: 10px 14px; border-radius: 8px; margin-bottom: 16px; border: 1px solid; }
.notice.ok { background: #ecfdf3; border-color: #abefc6; color: #05603a; }
.notice.error { background: #fef3f2; border-color: #fecdca; color: #b42318; }
form.filters { display: flex; gap: 10px; align-items: end; flex-wrap: wrap; margin-bottom: 14px; }
form.filters label { display: flex; flex-direction: column; font-size: 12px; color: var(--muted); gap: 4px; }
input, select { font: inherit; height: 36px; padding: 0 10px; border: 1px solid #d0d5dd; border-radius: 7px; background: #fff; min-width: 160px; }
form.filters button, form.filters .button { height: 36px; display: inline-flex; align-items: center; }
h1 .job-id { color: var(--muted); font-weight: 500; font-variant-numeric: tabular-nums; }
td.id { font-weight: 600; font-variant-numeric: tabular-nums; }
.pager { display: flex; justify-content: space-between; padding: 10px 14px; border-top: 1px solid var(--line); background: #fafbfc; }
.empty { padding: 28px; text-align: center; color: var(--muted); }
.login { max-width: 380px; margin: 12vh auto; }
.login h1 { justify-content: center; }
.login form { display: flex; flex-direction: column; gap: 12px; }
.login input { width: 100%; }
.tag { display: inline-block; background: #eef2ff; color: #3730a3; border-radius: 5px; padding: 0 6px; margin: 1px 2px 1px 0; font-size: 12px; }
h2 .h2-note { font-size: 12px; font-weight: 500; color: var(--muted); text-transform: none; letter-spacing: 0; margin-left: 8px; }
h3 { font-size: 13px; margin: 0 0 8px; color: #344054; }
.graph-scroll { overflow: auto; max-height: 640px; background: #fafbfc; }
svg.graph { display: block; font: 12.5px system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
.gedge { fill: none; stroke-width: 1.5; }
.gedge.waiting { stroke: #98a2b3; stroke-dasharray: 5 4; } .gedge.settled { stroke: #667085; } .gedge.blocked { stroke: var(--failed); }
.arrow.waiting path { fill: #98a2b3; } .arrow.settled path { fill: #667085; } .arrow.blocked path { fill: var(--failed); }
.gnode { --c: var(--muted); }
.gnode.pending { --c: var(--pending); } .gnode.queued { --c: var(--queued); } .gnode.running { --c: var(--running); }
.gnode.completed { --c: var(--completed); } .gnode.failed { --c: var(--failed); } .gnode.cancelled { --c: var(--cancelled); }
.gnode .box { fill: #fff; stroke: var(--c); stroke-width: 1.5; }
.gnode .stripe, .gnode .gprogress { fill: var(--c); }
.gnode .task { fill: var(--ink); font-weight: 600; }
.gnode .sub { fill: var(--muted); font: 11.5px var(--mono); }
.gnode .halo { fill: none; stroke: var(--accent); stroke-width: 3; }
.gnode.current .box { fill: #eef2ff; stroke-width: 2; }
.gnode:hover .box, .gnode:focus .box { fill: #f5f7ff; stroke-width: 2.5; }
.gnode:focus { outline: none; }
.gnode:focus-visible .box { stroke: var(--accent); stroke-width: 3; }
.glabel { font-size: 11px; font-weight: 600; fill: #475467; paint-order: stroke; stroke: #fafbfc; stroke-width: 4px; stroke-linejoin: round; }
.edge-key { display: flex; flex-wrap: wrap; gap: 6px 18px; padding: 10px 16px; border-top: 1px solid var(--line); font-size: 12px; color: var(--muted); }
.edge-key strong { color: #475467; }
.key-line { display: inline-block; width: 22px; margin-right: 6px; vertical-align: middle; border-top: 2px solid; }
.key-line.waiting { border-top-style: dashed; border-color: #98a2b3; } .key-line.settled { border-color: #667085; } .key-line.blocked { border-color: var(--failed); }
.graph-note { margin: 0; padding: 10px 16px; color: var(--muted); font-size: 13px; }
.neighbours { padding: 0 16px 16px; }
.neighbours table { border: 1px solid var(--line); border-radius: 8px; }
table.logs th:not(:last-child), table.logs td:not(:last-child) { width: 1%; }
table.logs td { vertical-align: top; padding-top: 6px; padding-bottom: 6px; font-size: 13px; }
table.logs td.time { color: var(--muted); font-size: 12px; }
table.logs td.msg { font-family: var(--mono); font-size: 12.5px; white-space: pre-wrap; }
table.logs tr.new-attempt td { border-top: 2px solid #d0d5dd; }
table.logs .fields { display: block; color: var(--muted); font-size: 12px; }
.level { font-size: 11px; font-weight: 700; text-transform: uppercase; letter-spacing: .4px; }
.level.debug { color: #98a2b3; } .level.info { color: var(--queued); } .level.warn { color: var(--running); } .level.error { color: var(--failed); }
tr.log.debug td.msg { color: var(--muted); }
tr.log.error td.msg { color: var(--failed); }
tr.log-note td { font-style: italic; color: #5d4a00; background: #fffbeb; white-space: normal; }
.batch-head { display: flex; align-items: center; gap: 12px; margin-bottom: 10px; }
.progress.stacked { display: flex; height: 12px; }
.progress.stacked > span { position: static; border-radius: 0; transition: width .4s ease; }
.progress.stacked > .completed { background: var(--completed); } .progress.stacked > .failed { background: var(--failed); } .progress.stacked > .cancelled { background: var(--cancelled); }
dl.batch-counts { display: flex; flex-wrap: wrap; gap: 6px 22px; margin: 12px 0 0; }
dl.batch-counts div { display: flex; gap: 6px; align-items: baseline; }
dl.batch-counts dt { color: var(--muted); font-size: 12px; }
dl.batch-counts dd { margin: 0; font-weight: 650; font-variant-numeric: tabular-nums; }
dl.callbacks { margin-top: 12px; border-top: 1px solid var(--line); }
dl.callbacks dd { display: flex; gap: 8px; align-items: center; }
.attempt .head a { font-size: 13px; }
.badge.active { background: var(--completed); } .badge.paused { background: var(--running); }
table.compact th, table.compact td { padding: 9px 10px; }
table.compact th:first-child, table.compact td:first-child { padding-left: 14px; }
.row-actions { display: flex; gap: 6px; justify-content: flex-end; align-items: center; }
.row-actions form { margin: 0; }
.row-actions button, .row-actions .button { padding: 4px 10px; font-size: 12px; line-height: 18px; }
a.button { display: inline-block; text-decoration: none; }
a.button.danger { border-color: #f5c2c2; color: var(--failed); }
button.danger-solid { background: var(--failed); border-color: var(--failed); color: #fff; }
p.links { display: flex; gap: 16px; margin: 12px 0 0; }
form.fields { display: flex; flex-wrap: wrap; gap: 10px 14px; align-items: end; margin: 0; }
form.fields label { display: flex; flex-direction: column; font-size: 12px; color: var(--muted); gap: 4px; }
form.fields input { min-width: 120px; width: 150px; }
form.fields label.wide { flex-basis: 100%; }
form.fields textarea { font: 13px/1.4 var(--mono); padding: 8px 10px; border: 1px solid #d0d5dd; border-radius: 7px; width: 100%; resize: vertical; }
form.fields input[readonly] { background: #f2f4f7; color: var(--muted); }
form.fields button { height: 36px; }
form.fields .form-actions { display: flex; gap: 8px; flex-basis: 100%; }
.panel.pad > p.muted { margin: 12px 0 0; font-size: 13px; }
.panel.pad > p.muted:first-child { margin: 0 0 12px; }
.confirm p, .confirm ul { margin: 0 0 12px; }
.confirm-actions { display: flex; gap: 8px; margin-top: 16px; }
.queue-charts { padding: 12px 16px 4px; border-top: 1px solid var(--line); }
.queue-charts:first-child { border-top: 0; }
.queue-charts h3 { margin: 0 0 4px; font-size: 14px; }
.charts { display: grid; grid-template-columns: repeat(3, minmax(0, 1fr)); gap: 16px; }
@media (max-width: 900px) { .charts { grid-template-columns: 1fr; } }
.charts figure { margin: 0; }
.charts figcaption { font-size: 12px; color: var(--muted); margin-bottom: 2px; }
.key { display: inline-block; width: 10px; height: 10px; border-radius: 2px; vertical-align: -1px; }
.key.completed { background: var(--completed); } .key.failed { background: var(--failed); } .key.waiting { background: var(--queued); }
.key.avg { background: var(--accent); } .key.max { background: var(--running); }
svg.chart { display: block; width: 100%; height: auto; font: 10px system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; overflow: visible; }
svg.chart .grid line { stroke: #eef0f3; stroke-width: 1; } svg.chart .grid line.base { stroke: #c9ced6; }
svg.chart .grid text { fill: #8a94a6; }
svg.chart .bar.completed { fill: var(--completed); } svg.chart .bar.failed { fill: var(--failed); }
svg.chart .line { fill: none; stroke-width: 1.8; stroke-linejoin: round; stroke-linecap: round; }
svg.chart .line.waiting { stroke: var(--queued); } svg.chart .line.avg { stroke: var(--accent); } svg.chart .line.max { stroke: var(--running); stroke-dasharray: 3 2; }
svg.chart .dot.waiting { fill: var(--queued); } svg.chart .dot.avg { fill: var(--accent); } svg.chart .dot.max { fill: var(--running); }
svg.chart .chart-note { fill: #98a2b3; font-size: 11px; }
svg.chart .slots rect { fill: transparent; }
svg.chart .slots rect:hover { fill: rgba(59, 91, 219, .08); }
`;
