/** The report's stylesheet: a clean light theme, system fonts only (nothing is fetched). */
export const REPORT_CSS = `
:root{--bg:#f5f6f8;--panel:#fff;--ink:#1d2330;--muted:#6b7280;--line:#e2e5ea;--soft:#f0f2f5;
--gold:#f5b400;--gold-ink:#7a5a00;--gold-bg:#fff8e1;--blue:#2f6fde;--blue-bg:#e8f0fd;--red:#d93025;--red-bg:#fdecea;
--green:#2b8a3e;--green-bg:#e6f4ea;--radius:10px}
*{box-sizing:border-box}
html{-webkit-text-size-adjust:100%}
body{margin:0;background:var(--bg);color:var(--ink);font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif}
code{font:12px/1.3 ui-monospace,SFMono-Regular,Menlo,Consolas,"Liberation Mono",monospace}
a{color:var(--blue);text-decoration:none}a:hover{text-decoration:underline}
h2{font-size:18px;margin:0}
h4{margin:8px 0 3px;font-size:11px;text-transform:uppercase;letter-spacing:.04em;color:var(--muted);font-weight:600}
p{margin:0}
.muted{color:var(--muted)}.small{font-size:12px}
header.top{background:var(--panel);border-bottom:1px solid var(--line);padding:20px 28px 16px}
.kicker{font-size:12px;text-transform:uppercase;letter-spacing:.06em;color:var(--muted);display:flex;gap:10px;align-items:center}
.prompt-title{font-size:24px;line-height:1.3;margin:6px 0 12px;font-weight:650;overflow-wrap:anywhere}
.prompt-title::before{content:"\\201C";color:var(--muted)}.prompt-title::after{content:"\\201D";color:var(--muted)}
.params{display:flex;flex-wrap:wrap;gap:8px;align-items:center}
.strategy{background:var(--ink);color:#fff;border-radius:999px;padding:3px 12px;font-weight:600;font-size:13px}
.param{display:inline-flex;border:1px solid var(--line);border-radius:999px;overflow:hidden;font-size:13px}
.param span{background:var(--soft);color:var(--muted);padding:2px 8px}.param b{padding:2px 9px;font-weight:600}
.status{border-radius:999px;padding:1px 9px;font-weight:700;letter-spacing:.03em;text-transform:uppercase;font-size:11px}
.status.done{background:var(--green-bg);color:var(--green)}.status.running{background:var(--blue-bg);color:var(--blue)}
.status.failed{background:var(--red-bg);color:var(--red)}.status.interrupted{background:var(--gold-bg);color:var(--gold-ink)}
.status.unknown{background:var(--soft);color:var(--muted)}
.banner{margin-top:12px;background:var(--red-bg);color:var(--red);border:1px solid #f5c2bd;border-radius:8px;padding:8px 12px;overflow-wrap:anywhere}
main{padding:20px 28px;display:flex;flex-direction:column;gap:20px}
.overview{display:grid;grid-template-columns:minmax(0,1.1fr) minmax(0,1fr);gap:20px;align-items:start}
@media (max-width:1000px){.overview{grid-template-columns:1fr}}
.hero,.stats,.tree-section{background:var(--panel);border:1px solid var(--line);border-radius:var(--radius);padding:18px}
.hero{display:flex;gap:20px;align-items:flex-start;border:2px solid var(--gold);box-shadow:0 0 0 4px var(--gold-bg)}
.hero.empty{border:1px dashed var(--line);box-shadow:none}
.hero-img img,.hero-img .noimg{border-radius:8px;display:block;background:var(--soft)}
.hero-info{min-width:0;flex:1}
.hero-score{display:flex;align-items:center;gap:10px;margin:8px 0 4px}
.hero-score .score{font-size:34px;font-weight:700;line-height:1}
.stat-row{display:flex;gap:28px;flex-wrap:wrap;margin-bottom:12px}
.stat{min-width:160px}.stat-k{font-size:11px;text-transform:uppercase;letter-spacing:.04em;color:var(--muted);font-weight:600}
.stat-v{font-size:22px;font-weight:650}.stat-v .muted{font-size:14px;font-weight:400}
.bar{display:inline-block;height:6px;width:80px;background:var(--soft);border-radius:3px;overflow:hidden;vertical-align:middle}
.bar i{display:block;height:100%;background:var(--blue);border-radius:3px}
.bar.wide{display:block;width:100%;max-width:260px;margin-top:6px;height:8px}
table.roles{border-collapse:collapse;width:100%;font-size:13px}
table.roles th{text-align:left;font-size:11px;text-transform:uppercase;letter-spacing:.04em;color:var(--muted);font-weight:600;border-bottom:1px solid var(--line);padding:4px 8px 4px 0}
table.roles td{border-bottom:1px solid var(--soft);padding:5px 8px 5px 0}
table.roles .num{text-align:right;white-space:nowrap}.role{font-weight:600}.tbar{width:90px}
.chart{margin:14px 0 0}.chart figcaption{font-size:12px;font-weight:600;margin-bottom:4px}
.chart svg{max-width:100%;height:auto}.chart .axis{stroke:#c9ced6}.chart .tick{font-size:10px;fill:var(--muted)}
.chart .pooldot{fill:#b8bec8}
.section-head{display:flex;justify-content:space-between;align-items:center;gap:12px;flex-wrap:wrap;margin-bottom:14px}
.legend{display:flex;gap:8px;flex-wrap:wrap}
.badge{display:inline-block;border-radius:6px;padding:1px 7px;font-size:11px;font-weight:700;white-space:nowrap}
.badge.chosen{background:var(--gold);color:#3d2d00}.badge.cbest{background:var(--blue-bg);color:var(--blue)}
.badge.failed{background:var(--red-bg);color:var(--red)}.badge.big{font-size:13px;padding:3px 10px}
.tree-scroll{overflow-x:auto;padding-bottom:4px}
@media (min-width:800px){.tree>.corner,.tree>.rowhead{position:sticky;left:0;z-index:2;background:var(--panel)}}
.tree{display:grid;gap:12px;align-items:stretch}
.corner,.colhead{font-size:12px;color:var(--muted)}
.corner{align-self:stretch;display:flex;align-items:flex-end;padding-bottom:4px}
.colhead{display:flex;flex-direction:column;border-bottom:2px solid var(--line);padding-bottom:6px}
.colhead b{color:var(--ink);font-size:14px}
.rowhead{border-left:4px solid var(--chain,#999);padding:6px 0 6px 10px;display:flex;flex-direction:column;gap:2px;font-size:13px}
.rowhead>b{font-size:15px}
.delta{font-size:12px;font-weight:600}.delta.up{color:var(--green)}.delta.flat{color:var(--muted)}
.cell{position:relative;display:flex;flex-direction:column;gap:8px}
.cell.empty{border:1px dashed var(--line);border-radius:var(--radius);align-items:center;justify-content:center;color:var(--muted);font-size:12px;min-height:120px}
.tree .cell+.cell:not(.empty)::before{content:"\\2192";position:absolute;left:-12px;top:80px;width:12px;text-align:center;color:var(--chain,#999);font-weight:700}
.card{background:var(--panel);border:1px solid var(--line);border-top:3px solid var(--chain,var(--line));border-radius:var(--radius);padding:10px;display:flex;flex-direction:column;gap:3px;min-width:0;height:100%;overflow-wrap:anywhere}
.card.cbest{border-color:var(--blue);border-top-color:var(--blue);box-shadow:0 0 0 2px var(--blue-bg)}
.card.chosen{border:2px solid var(--gold);border-top:4px solid var(--gold);background:#fffdf5;box-shadow:0 0 0 4px var(--gold-bg)}
.card.failed{border-style:dashed;border-color:var(--red);background:#fffafa}
.badges{display:flex;gap:4px;flex-wrap:wrap}
.thumb{margin:2px 0 4px;display:flex;align-items:center;justify-content:center;background:var(--soft);border-radius:6px}
.thumb img{display:block;border-radius:4px}
.thumb.fit{aspect-ratio:1;width:100%}.thumb.fit>*{max-width:100%;max-height:100%;height:auto}
img.px{image-rendering:pixelated}
.noimg{display:flex;align-items:center;justify-content:center;background:repeating-linear-gradient(45deg,#f3f4f6,#f3f4f6 8px,#eceef1 8px,#eceef1 16px);color:var(--muted);font-size:12px;border-radius:4px}
.idline{display:flex;justify-content:space-between;align-items:baseline;gap:6px;flex-wrap:wrap}
.cid{font-weight:600;color:var(--ink)}.seed{font-size:12px;color:var(--muted)}
.scoreline{display:flex;align-items:center;gap:8px}
.score{font-size:20px;font-weight:700}.score.none{font-size:13px;color:var(--muted);font-weight:500}
.pill{border-radius:999px;padding:0 8px;font-size:12px;font-weight:700;text-transform:uppercase}
.pill.yes{background:var(--green-bg);color:var(--green)}.pill.no{background:var(--red-bg);color:var(--red)}
.aspects{list-style:none;margin:2px 0;padding:0;font-size:12px}
.aspects li{display:grid;grid-template-columns:minmax(0,1fr) 60px 26px;gap:6px;align-items:center}
.aspects .an{overflow:hidden;text-overflow:ellipsis;white-space:nowrap}.aspects .bar{width:60px}.aspects b{text-align:right}
.err{color:var(--red);font-size:12px;background:var(--red-bg);border-radius:6px;padding:4px 6px}
.from{font-size:12px;color:var(--muted)}
.sec{font-size:13px}
.prompt{font-size:13px;background:var(--soft);border-radius:6px;padding:4px 7px}
.tag{font-size:10px;border-radius:4px;padding:0 5px;background:var(--soft);color:var(--muted);text-transform:none;letter-spacing:0}
.tag.refined{background:var(--blue-bg);color:var(--blue)}
ul.refl{margin:0;padding-left:18px;font-size:13px}ul.refl li{margin:1px 0}
.refl-text{font-size:13px}
details{font-size:13px;margin-top:4px;border-top:1px solid var(--soft);padding-top:4px}
details summary{cursor:pointer;color:var(--muted);font-size:12px;font-weight:600}
details.raw p{white-space:pre-wrap;font-size:12px;color:var(--muted);margin-top:4px}
.pool{margin-top:18px;border-top:1px solid var(--line);padding-top:14px}
.pool-head{display:flex;gap:12px;align-items:baseline;flex-wrap:wrap;margin-bottom:10px}
.pool-cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(150px,1fr));gap:10px}
.card.compact{border-top-width:1px}.card.compact .score{font-size:16px}
footer{padding:8px 28px 24px;color:var(--muted);font-size:12px}
#lightbox{position:fixed;inset:0;background:rgba(20,24,32,.82);display:flex;flex-direction:column;align-items:center;justify-content:center;gap:10px;z-index:10;cursor:zoom-out}
#lightbox[hidden]{display:none}
#lightbox img{width:min(80vh,80vw);height:auto;background:#fff;border-radius:8px}
#lightbox p{color:#fff;font:13px ui-monospace,monospace}
html.js img.zoom{cursor:zoom-in}
@media print{#lightbox{display:none}.tree-scroll{overflow:visible}}
`;
