"""The HTML report: one self-contained file (inline CSS and SVG, no script, no network).

`render_report(analysis)` for one run; `render_comparison(a, b, rows)` for two side by side.
Every string that comes from the run (session and container ids, error messages) is escaped.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from html import escape

from reports import charts
from reports.metrics import Analysis
from reports.summary import (
    ERROR_CLASSES,
    LATENCY_STATES,
    PHASES,
    Latency,
    Summary,
)

CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:0;color:#222;
background:#fafafa}
main{max-width:1000px;margin:0 auto;padding:16px 20px 48px}
h1{font-size:22px;margin:8px 0 4px}h2{font-size:17px;margin:28px 0 8px;
border-bottom:1px solid #ddd;padding-bottom:4px}
p.meta{color:#555;margin:2px 0;font-size:13px}
.cards{display:flex;flex-wrap:wrap;gap:10px;margin:14px 0}
.card{background:#fff;border:1px solid #ddd;border-radius:6px;padding:10px 12px;
min-width:150px;flex:1}
.card .v{font-size:22px;font-weight:600}.card .k{font-size:12px;color:#555}
.card .d{font-size:11px;color:#777;margin-top:2px}
.bad{color:#b00020}.good{color:#1b7f3b}
table{border-collapse:collapse;font-size:12.5px;background:#fff;margin:6px 0}
th,td{border:1px solid #ddd;padding:3px 7px;text-align:right}
th{background:#f1f1f1}td.l,th.l{text-align:left}
figure{margin:8px 0;background:#fff;border:1px solid #ddd;border-radius:6px;padding:6px}
figcaption{font-size:12px;color:#555;margin:4px 6px}
.note{background:#fff8e1;border:1px solid #f0d98c;padding:6px 10px;font-size:13px;
margin:6px 0;border-radius:4px}
code{font-size:12px}
"""


# -- formatting --------------------------------------------------------------------------------


def pct(value: float | None, digits: int = 1) -> str:
    return "n/a" if value is None else f"{value * 100:.{digits}f}%"


def ci(interval: list[float] | None, digits: int = 1) -> str:
    if not interval:
        return ""
    return f"[{pct(interval[0], digits)}, {pct(interval[1], digits)}]"


def num(value: float | int | None, digits: int = 3) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:.{digits}g}"


def ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:,.1f}"


def when(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def table(head: Sequence[str], rows: Iterable[Sequence[object]], left: int = 1) -> str:
    """An HTML table; the first `left` columns are left-aligned text. Cells are escaped."""
    def cell(tag: str, i: int, value: object) -> str:
        cls = ' class="l"' if i < left else ""
        return f"<{tag}{cls}>{escape(str(value))}</{tag}>"
    head_html = "".join(cell("th", i, h) for i, h in enumerate(head))
    body = "".join("<tr>" + "".join(cell("td", i, v) for i, v in enumerate(row)) + "</tr>"
                   for row in rows)
    return f"<table><thead><tr>{head_html}</tr></thead><tbody>{body}</tbody></table>"


def card(label: str, value: str, detail: str = "", tone: str = "") -> str:
    cls = f' class="v {tone}"' if tone else ' class="v"'
    return (f'<div class="card"><div class="k">{escape(label)}</div><div{cls}>'
            f'{escape(value)}</div><div class="d">{escape(detail)}</div></div>')


def figure(svg: str, caption: str) -> str:
    return f"<figure>{svg}<figcaption>{escape(caption)}</figcaption></figure>"


def page(title: str, body: str) -> str:
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">"
            "<link rel=\"icon\" href=\"data:,\">"
            f"<title>{escape(title)}</title><style>{CSS}</style></head>"
            f"<body><main>{body}</main></body></html>\n")


# -- one run -----------------------------------------------------------------------------------


def render_report(analysis: Analysis, timeline_points: int = 600) -> str:
    s = analysis.summary
    index = {name: i for i, name in enumerate(analysis.container_names)}
    parts = [
        f"<h1>Stickiness report: {escape(s.prefix)}</h1>",
        meta(s),
        "".join(f'<p class="note">{escape(n)}</p>' for n in s.notes),
        headline_cards(s),
        gates_section(s),
        "<h2>Timeline</h2>",
        figure(charts.timeline_chart(analysis.timeline, s.membership_changes, timeline_points),
               "Per second: requests and active sessions (and Locust's users when its CSVs "
               "are present), errors by class, live containers. Dashed red lines: membership "
               "changes (+added -removed)."),
        changes_section(s),
        "<h2>Sessions over time</h2>",
        figure(charts.swimlane_chart(analysis.swimlane, analysis.container_names,
                                     s.membership_changes),
               "Each row is one sampled session (half of them, when there are any, sessions "
               "that switched), coloured by the container that answered it. A sticky run is "
               "one colour per row, changing only at a membership change."),
        "<h2>Containers</h2>",
        figure(charts.containers_chart(s.per_container, index),
               "Sessions each container is the main container of (solid) and answered at all "
               "(light), and successful requests it answered. Dashed: the mean."),
        balance_section(s),
        "<h2>Latency</h2>",
        figure(charts.latency_chart(analysis.cdf),
               "Cumulative distribution of response times by state: a session's first "
               "request, repeats on the same container, the first request after a switch."),
        latency_section(s),
        errors_section(s),
        classes_section(s),
        epochs_section(s),
        locust_section(s),
        glossary(),
    ]
    return page(f"Stickiness report: {s.prefix}", "".join(parts))


def meta(s: Summary) -> str:
    events = (f"event log {s.events_file}" if s.events_file
              else "no event log: membership inferred from the containers seen")
    return (f'<p class="meta">{escape(when(s.start))}, {s.duration_s:,.1f} s; '
            f"{s.requests:,} requests from {escape(s.request_file)}; {escape(events)}; "
            f"{s.workers} worker(s).</p>")


def headline_cards(s: Summary) -> str:
    def tone(figure: str) -> str:  # colours follow the verdicts (reports.gates.verdicts)
        return {"good": "good", "bad": "bad"}.get(s.verdicts.get(figure, ""), "")

    p95 = s.latency["all"].p95_ms
    collateral = sum(c.collateral for c in s.membership_changes)
    cards = [
        card("session stickiness", pct(s.session_stickiness, 2),
             f"{ci(s.session_stickiness_ci)}; {s.sessions_multi_container:,} of "
             f"{s.sessions_multi_request:,} judged sessions saw 2+ containers",
             tone("session_stickiness")),
        card("settled stickiness", pct(s.settled_stickiness, 2),
             f"{ci(s.settled_stickiness_ci)}; (session, settled epoch) pairs on one "
             f"container; same-container rate {pct(s.same_container_rate, 2)}",
             tone("settled_stickiness")),
        card("request stickiness", pct(s.request_stickiness, 2),
             f"{ci(s.request_stickiness_ci)} on the main container"),
        card("switches", f"{s.switches:,}",
             f"{s.forced_switches:,} at membership changes, {s.flaps:,} flaps",
             tone("flaps")),
        card("error rate", pct(s.error_rate, 2),
             f"{s.errors:,} errors; {s.errors_no_live_replica:,} 503s with no live replica "
             "apart", tone("error_rate")),
        card("membership changes", f"{len(s.membership_changes)}",
             f"collateral remaps: {collateral}", tone("collateral")),
        card("warm-hit upper bound", pct(s.warm_hit_upper_bound),
             f"ideal {pct(s.warm_hit_ideal)}"),
        card("latency p95", f"{ms(p95)} ms", f"p50 {ms(s.latency['all'].p50_ms)} ms"),
        card("sessions / containers", f"{s.sessions:,} / {s.containers:,}",
             f"{s.ok_requests:,} successful requests"),
    ]
    return f'<div class="cards">{"".join(cards)}</div>'


def gates_section(s: Summary) -> str:
    if not s.gates:
        return ""
    rows = [(g.gate, num(g.threshold, 4), "n/a" if g.value is None else num(g.value, 4),
             g.verdict, g.reason) for g in s.gates]
    return "<h2>Gates</h2>" + table(["gate", "threshold", "value", "result", "reason"], rows)


def changes_section(s: Summary) -> str:
    title = "<h2>Membership changes</h2>"
    if not s.membership_changes:
        return title + "<p>No membership change during the run.</p>"
    rows = [(f"{c.at_offset_s:.1f} s", ", ".join(c.causes), " ".join(c.added) or "-",
             " ".join(c.removed) or "-", f"{c.live_before} \u2192 {c.live_after}", c.sessions,
             pct(c.remapped_fraction), ci(c.remapped_fraction_ci), pct(c.expected_fraction),
             num(c.excess), num(c.z), c.collateral,
             "n/a" if c.restick_p50_s is None else f"{c.restick_p50_s:.2f}",
             "n/a" if c.restick_max_s is None else f"{c.restick_max_s:.2f}")
            for c in s.membership_changes]
    head = ["at", "cause", "added", "removed", "live", "sessions", "remapped", "95% CI",
            "rendezvous min", "excess", "z", "collateral", "restick p50 s", "max s"]
    return (title + table(head, rows, left=4)
            + "<p class=\"meta\">Sessions active on both sides: owner before = the last "
              "request answered before the change, after = the settled owner (the first "
              "request started once the change settled). "
              "Collateral = moves between two containers live on both sides: rendezvous "
              "hashing makes none.</p>")


def balance_section(s: Summary) -> str:
    b = s.balance
    if b is None:
        return ""
    rows = [
        ("sessions", b.sessions, num(b.max_over_mean), num(b.expected_max_over_mean),
         num(b.cv), num(b.expected_cv), num(b.chi2_p)),
        ("requests", b.requests, num(b.requests_max_over_mean), "", num(b.requests_cv), "",
         num(b.requests_chi2_p)),
    ]
    return (f"<p class=\"meta\">Balance over the {b.containers} live containers of epoch "
            f"{b.epoch} (the one with the most sessions):</p>"
            + table(["per container", "total", "max/mean", "expected (uniform hash)", "CV",
                     "expected CV", "chi-square p"], rows))


def latency_rows(latency: dict[str, Latency], states: Sequence[str]) -> list[tuple[object, ...]]:
    labels = charts.STATE_LABELS
    return [(labels.get(k, k), latency[k].count, ms(latency[k].mean_ms), ms(latency[k].p50_ms),
             ms(latency[k].p95_ms), ms(latency[k].p99_ms), ms(latency[k].max_ms))
            for k in states if k in latency]


def latency_section(s: Summary) -> str:
    head = ["state", "requests", "mean ms", "p50 ms", "p95 ms", "p99 ms", "max ms"]
    out = table(head, latency_rows(s.latency, LATENCY_STATES))
    if s.cache is not None:
        c = s.cache
        out += (f"<p class=\"meta\">Cache: {c.hits:,} hits, {c.misses:,} misses, hit rate "
                f"{pct(c.hit_rate)} {ci(c.hit_rate_ci)}.</p>"
                + table(head, latency_rows({f"cache {k}": v for k, v in c.latency.items()},
                                           ["cache hit", "cache miss"])))
    return out


def errors_section(s: Summary) -> str:
    rows = [(cls, *(s.errors_by_phase[p][cls] for p in PHASES), s.error_classes[cls])
            for cls in ERROR_CLASSES if s.error_classes[cls]]
    out = ("<h2>Errors</h2>"
           + table(["class", "steady", "near a change", "no live replica", "total"], rows)
           + "<p class=\"meta\">Status codes: "
           + escape(", ".join(f"{k}: {v:,}" for k, v in s.status_counts.items())) + "</p>")
    if s.top_errors:
        out += table(["error", "count"], [(e["error"], e["count"]) for e in s.top_errors])
    return out


def classes_section(s: Summary) -> str:
    rows = [(name, u.sessions, u.requests, pct(u.session_stickiness, 2),
             ci(u.session_stickiness_ci), u.sessions_multi_container, u.errors,
             pct(u.error_rate, 2)) for name, u in s.user_classes.items()]
    return "<h2>User classes</h2>" + table(
        ["class", "sessions", "requests", "stickiness", "95% CI", "multi-container", "errors",
         "error rate"], rows)


def epochs_section(s: Summary) -> str:
    rows = [(i, f"{e.start - s.start:.1f}", f"{e.end - s.start:.1f}", len(e.live),
             e.sessions, e.requests) for i, e in enumerate(s.epochs)]
    return (f"<h2>Epochs ({escape(s.epochs_source)})</h2>"
            + table(["epoch", "from s", "to s", "live", "sessions", "requests"], rows))


def locust_section(s: Summary) -> str:
    if s.locust is None:
        return ""
    lc = s.locust
    return ("<h2>Locust's own count</h2><p class=\"meta\">"
            f"Locust's stats CSV: {num(lc.requests)} requests, {num(lc.failures)} failures; "
            f"the request file: {lc.recorded:,} rows (Locust's CSV lags by up to a second)."
            "</p>")


def glossary() -> str:
    return ("<h2>Definitions</h2><p class=\"meta\">Session stickiness: share of sessions with "
            "2+ successful requests that one container answered; Wilson 95% intervals "
            "throughout. A switch: consecutive successful requests of a session answered by "
            "different containers; forced when a membership change lies between them, a flap "
            "otherwise. Warm-hit upper bound: 1 - sum of containers per session / successful "
            "requests. Errors exclude 503s while no replica was live. Full definitions: "
            "docs/metrics.md and docs/summary-json.md in the repository.</p>")


# -- two runs ----------------------------------------------------------------------------------


def render_comparison(a: Analysis, b: Analysis, rows: Sequence[tuple[str, str, str, str]],
                      names: tuple[str, str]) -> str:
    sa, sb = a.summary, b.summary
    sticky = charts.interval_chart([
        (f"{names[0]}: sessions", sa.session_stickiness, sa.session_stickiness_ci, "#4e79a7"),
        (f"{names[1]}: sessions", sb.session_stickiness, sb.session_stickiness_ci, "#f28e2b"),
        (f"{names[0]}: requests", sa.request_stickiness, sa.request_stickiness_ci, "#4e79a7"),
        (f"{names[1]}: requests", sb.request_stickiness, sb.request_stickiness_ci, "#f28e2b"),
    ], "Stickiness with 95% intervals")
    errors = charts.interval_chart([
        (f"{names[0]}: error rate", sa.error_rate, sa.error_rate_ci, "#4e79a7"),
        (f"{names[1]}: error rate", sb.error_rate, sb.error_rate_ci, "#f28e2b"),
    ], "Error rate with 95% intervals")
    states = ("first", "repeat", "after_switch")
    latency = charts.latency_chart({k: v for k, v in a.cdf.items() if k in states},
                                   {k: v for k, v in b.cdf.items() if k in states}, names)
    body = [
        f"<h1>Comparison: {escape(names[0])} vs {escape(names[1])}</h1>",
        f'<p class="meta">A = {escape(sa.prefix)} ({escape(when(sa.start))}, '
        f"{sa.requests:,} requests); B = {escape(sb.prefix)} ({escape(when(sb.start))}, "
        f"{sb.requests:,} requests). Difference = B - A.</p>",
        "".join(f'<p class="note">A: {escape(n)}</p>' for n in sa.notes),
        "".join(f'<p class="note">B: {escape(n)}</p>' for n in sb.notes),
        figure(sticky, "Session and request stickiness of each run."),
        figure(errors, "Errors (503s with no live replica apart) over all requests."),
        figure(latency, "Latency by state: A solid, B dashed."),
        "<h2>Side by side</h2>",
        table(["metric", f"A: {names[0]}", f"B: {names[1]}", "B - A"], rows),
    ]
    return page(f"Comparison: {names[0]} vs {names[1]}", "".join(body))
