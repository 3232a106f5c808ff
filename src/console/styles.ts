/**
 * The console's one stylesheet, served from our origin (`/console/static/console.css`). Kept as a
 * string so the build needs no asset step. One accent colour per agent status.
 */
export const CONSOLE_CSS = `
:root { --fg: #1d2330; --muted: #5b6475; --bg: #f7f8fa; --card: #fff; --line: #dfe3ea; --accent: #2454d6;
  --active: #1d7f4e; --narrowed: #a86b00; --contained: #c2410c; --revoked: #b42318; --focus: #ffbf47; }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Noto Sans", sans-serif; color: var(--fg); background: var(--bg); }
a { color: var(--accent); }
a:focus, button:focus, input:focus, select:focus, textarea:focus { outline: 3px solid var(--focus); outline-offset: 1px; }
header.top { display: flex; flex-wrap: wrap; gap: .5rem 1.25rem; align-items: center; padding: .6rem 1rem; background: #111827; color: #fff; }
header.top a { color: #fff; text-decoration: none; }
header.top a[aria-current="page"] { text-decoration: underline; text-underline-offset: 4px; }
header.top nav { display: flex; flex-wrap: wrap; gap: .25rem 1rem; }
header.top .brand { font-weight: 700; margin-right: .5rem; }
header.top .who { margin-left: auto; font-size: .9em; opacity: .9; display: flex; gap: .5rem; align-items: center; }
header.top form { display: inline; }
main { max-width: 1100px; margin: 0 auto; padding: 1rem; }
h1 { font-size: 1.45rem; margin: .4rem 0 1rem; }
h2 { font-size: 1.1rem; margin: 1.4rem 0 .5rem; }
section.card { background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: .8rem 1rem; margin-bottom: 1rem; overflow-x: auto; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: .35rem .5rem; border-bottom: 1px solid var(--line); vertical-align: top; }
th { font-size: .85em; color: var(--muted); font-weight: 600; }
code { font: .9em ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; background: #eef1f6; padding: 0 .25em; border-radius: 3px; word-break: break-all; }
.muted { color: var(--muted); }
.status { display: inline-block; padding: 0 .5em; border-radius: 999px; color: #fff; font-size: .85em; font-weight: 600; }
.status-active, .status-approved, .status-confirmed, .status-closed { background: var(--active); }
.status-narrowed, .status-pending { background: var(--narrowed); }
.status-contained, .status-open, .status-denied { background: var(--contained); }
.status-revoked, .status-expired, .status-cancelled, .status-suspended { background: var(--revoked); }
.counts { display: flex; flex-wrap: wrap; gap: .75rem; }
.counts a { flex: 1 1 8rem; text-decoration: none; color: inherit; background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: .6rem .8rem; }
.counts b { display: block; font-size: 1.6rem; }
form.action { display: flex; flex-wrap: wrap; gap: .5rem; align-items: flex-end; margin: .4rem 0; }
form.inline { display: inline; }
label { display: flex; flex-direction: column; font-size: .85em; color: var(--muted); gap: .15rem; }
input[type=text], input[type=search], select { font: inherit; padding: .35rem .5rem; border: 1px solid #b8c0cc; border-radius: 5px; min-width: 12rem; }
button { font: inherit; padding: .35rem .85rem; border-radius: 5px; border: 1px solid #1e3a8a; background: var(--accent); color: #fff; cursor: pointer; }
button.danger { background: var(--revoked); border-color: #7f1d1d; }
button.secondary { background: #fff; color: var(--fg); border-color: #b8c0cc; }
.banner { padding: .6rem .9rem; border-radius: 6px; margin-bottom: 1rem; border: 1px solid; }
.banner-success { background: #e8f5ee; border-color: #9fd3b5; }
.banner-info { background: #eaf0fd; border-color: #a9bff5; }
.banner-warning { background: #fff6e0; border-color: #f0cf7a; }
.banner-error { background: #fdecea; border-color: #f1a9a0; }
.chart svg { max-width: 100%; height: auto; }
.signin { max-width: 28rem; margin: 4rem auto; }
@media (max-width: 640px) { th.opt, td.opt { display: none; } header.top .who { margin-left: 0; } }
`;
