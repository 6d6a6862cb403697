"""A self-contained HTML drift report: summary, per-column verdicts and inline SVG distribution charts.

Pure functions, no I/O: `render_drift_html` returns the page as a string. The page has no scripts and loads
nothing (no external CSS, fonts or images). Histograms are computed vectorised (`np.histogram`,
`value_counts`) on at most `NUM_BINS` shared bins or `TOP_CATEGORIES` categories per column, so the page size
depends on the number of columns, not rows. Every column name and category value is HTML-escaped.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from html import escape

import numpy as np
import pandas as pd

from tasks.drift.verdicts import ColumnDrift, DatasetDrift

NUM_BINS = 30
TOP_CATEGORIES = 12
MAX_LABEL_CHARS = 40

CHART_WIDTH = 640
CHART_HEIGHT = 220
MARGIN_LEFT, MARGIN_RIGHT, MARGIN_TOP, MARGIN_BOTTOM = 48, 12, 12, 56
REFERENCE_COLOUR = "#4c78a8"
CURRENT_COLOUR = "#f58518"

METHOD_NAMES = {
    "ks": "Kolmogorov-Smirnov p-value",
    "chisquare": "chi-square p-value",
    "z": "Z-test p-value",
    "wasserstein": "Wasserstein distance (normed)",
    "jensenshannon": "Jensen-Shannon distance",
    "psi": "PSI",
}

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;margin:24px;color:#222;
background:#fafafa}
h1{font-size:1.5em;margin:0 0 4px}h2{font-size:1.15em;margin:0 0 8px}.sub{color:#666;margin:0 0 16px}
.card{background:#fff;border:1px solid #ddd;border-radius:6px;padding:16px;margin:0 0 16px}
.summary{display:flex;flex-wrap:wrap;gap:24px}.summary div{min-width:120px}
.summary b{display:block;font-size:1.4em}
table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:4px 8px;border-bottom:1px solid #eee}
th{background:#f3f3f3}td.num{text-align:right;font-variant-numeric:tabular-nums}
.badge{display:inline-block;padding:1px 8px;border-radius:10px;font-size:.85em;color:#fff}
.drift{background:#c0392b}.ok{background:#27ae60}.err{background:#7f8c8d}
.legend span{display:inline-block;width:10px;height:10px;margin:0 4px 0 12px}
.error{color:#c0392b}svg text{font-size:10px;fill:#444}
"""


@dataclass(frozen=True)
class ChartData:
    """What one column's chart shows: bar labels and each side's share of its values per bar."""

    labels: tuple[str, ...]  # full bar names (tooltips)
    ticks: tuple[str, ...]  # short axis labels, one per bar
    reference_shares: tuple[float, ...]
    current_shares: tuple[float, ...]
    kind: str  # "histogram" (shared numeric bins) or "bars" (top categories)


def render_drift_html(
    result: DatasetDrift, reference: pd.DataFrame, current: pd.DataFrame, *, title: str, subtitle: str = ""
) -> str:
    """The drift report as one self-contained HTML page (inline CSS and SVG, no scripts, no external links)."""
    ref_labels = {str(label): label for label in reference.columns}
    cur_labels = {str(label): label for label in current.columns}
    sections = []
    for index, column in enumerate(result.columns):
        ref = reference[ref_labels[column.column]] if column.column in ref_labels else None
        cur = current[cur_labels[column.column]] if column.column in cur_labels else None
        sections.append(_column_section(index, column, ref, cur))
    verdict = _badge("drift", "drift") if result.dataset_drift else _badge("no drift", "ok")
    ok_columns = result.number_of_columns - result.number_of_failed_columns
    summary = (
        '<div class="card summary">'
        f"<div>Dataset<b>{verdict}</b></div>"
        f"<div>Drifted columns<b>{result.number_of_drifted_columns} / {ok_columns}</b></div>"
        f"<div>Share drifted<b>{result.drift_share:.1%}</b></div>"
        f"<div>Threshold<b>{result.drift_threshold:.1%}</b></div>"
        f"<div>Reference rows<b>{len(reference):,}</b></div>"
        f"<div>Current rows<b>{len(current):,}</b></div>"
        f"<div>Columns with errors<b>{result.number_of_failed_columns}</b></div>"
        "</div>"
    )
    rows = "".join(_table_row(index, column) for index, column in enumerate(result.columns))
    table = (
        '<div class="card"><h2>Columns</h2><table><thead><tr><th>Column</th><th>Type</th><th>Test</th>'
        "<th>Score</th><th>Threshold</th><th>Verdict</th><th>Reference values</th><th>Current values</th>"
        f"</tr></thead><tbody>{rows}</tbody></table></div>"
    )
    subtitle_html = f'<p class="sub">{escape(subtitle)}</p>' if subtitle else ""
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>{_CSS}</style></head><body>"
        f"<h1>{escape(title)}</h1>{subtitle_html}{summary}{table}{''.join(sections)}</body></html>\n"
    )


def chart_data(column_type: str, reference: pd.Series | None, current: pd.Series | None) -> ChartData | None:
    """Shares per shared bin (numerical) or per top category (categorical); None when a side has no values."""
    if reference is None or current is None:
        return None
    if column_type == "num":
        return _numeric_chart(reference, current)
    return _categorical_chart(reference, current)


def _numeric_chart(reference: pd.Series, current: pd.Series) -> ChartData | None:
    ref, cur = _finite(reference), _finite(current)
    if ref is None or cur is None:
        return None
    low, high = float(min(ref.min(), cur.min())), float(max(ref.max(), cur.max()))
    if low == high:
        low, high = low - 0.5, high + 0.5
    ref_counts, edges = np.histogram(ref, bins=NUM_BINS, range=(low, high))  # uniform bins: the fast path
    cur_counts = np.histogram(cur, bins=NUM_BINS, range=(low, high))[0]
    labels = tuple(f"[{_short_number(a)}, {_short_number(b)}]" for a, b in itertools.pairwise(edges))
    ticks = tuple(_short_number(a) for a in edges[:-1])
    return ChartData(
        labels, ticks, tuple((ref_counts / ref.size).tolist()), tuple((cur_counts / cur.size).tolist()), "histogram"
    )


def _categorical_chart(reference: pd.Series, current: pd.Series) -> ChartData | None:
    ref_counts, cur_counts = _value_counts(reference), _value_counts(current)
    ref_total, cur_total = int(ref_counts.sum()), int(cur_counts.sum())
    if ref_total == 0 or cur_total == 0:
        return None
    both = ref_counts.div(ref_total).add(cur_counts.div(cur_total), fill_value=0).sort_values(ascending=False)
    top = both.index[:TOP_CATEGORIES]
    ref_top = ref_counts.reindex(top, fill_value=0).to_numpy() / ref_total
    cur_top = cur_counts.reindex(top, fill_value=0).to_numpy() / cur_total
    labels = [str(v) for v in top]
    ref_shares, cur_shares = ref_top.tolist(), cur_top.tolist()
    if len(both) > TOP_CATEGORIES:
        labels.append(f"other ({len(both) - TOP_CATEGORIES})")
        ref_shares.append(max(0.0, 1.0 - float(ref_top.sum())))
        cur_shares.append(max(0.0, 1.0 - float(cur_top.sum())))
    return ChartData(tuple(labels), tuple(labels), tuple(ref_shares), tuple(cur_shares), "bars")


def svg_chart(data: ChartData) -> str:
    """Reference and current shares as an inline SVG: overlaid histogram bars or grouped category bars."""
    n = len(data.labels)
    plot_w = CHART_WIDTH - MARGIN_LEFT - MARGIN_RIGHT
    plot_h = CHART_HEIGHT - MARGIN_TOP - MARGIN_BOTTOM
    top = max(max(data.reference_shares, default=0.0), max(data.current_shares, default=0.0)) or 1.0
    slot = plot_w / max(n, 1)
    parts = [
        f'<svg width="{CHART_WIDTH}" height="{CHART_HEIGHT}" viewBox="0 0 {CHART_WIDTH} {CHART_HEIGHT}" role="img">'
    ]
    for frac in (0.0, 0.5, 1.0):
        y = MARGIN_TOP + plot_h - frac * plot_h
        parts.append(
            f'<text x="{MARGIN_LEFT - 4}" y="{y + 3:.1f}" text-anchor="end">{top * frac:.0%}</text>'
            f'<line x1="{MARGIN_LEFT}" y1="{y:.1f}" x2="{MARGIN_LEFT + plot_w}" y2="{y:.1f}" stroke="#eee"/>'
        )
    parts.append(
        f'<line x1="{MARGIN_LEFT}" y1="{MARGIN_TOP + plot_h}" x2="{MARGIN_LEFT + plot_w}" '
        f'y2="{MARGIN_TOP + plot_h}" stroke="#999"/>'
    )
    for i, label in enumerate(data.labels):
        x0 = MARGIN_LEFT + i * slot
        shares = (data.reference_shares[i], data.current_shares[i])
        if data.kind == "histogram":
            bars = [(x0, slot, shares[0], REFERENCE_COLOUR, 0.55), (x0, slot, shares[1], CURRENT_COLOUR, 0.55)]
        else:
            width = slot * 0.4
            bars = [
                (x0 + slot * 0.1, width, shares[0], REFERENCE_COLOUR, 0.9),
                (x0 + slot * 0.5, width, shares[1], CURRENT_COLOUR, 0.9),
            ]
        tooltip = escape(f"{label}: reference {shares[0]:.2%}, current {shares[1]:.2%}")
        parts.append(f"<g><title>{tooltip}</title>")
        for x, w, share, colour, opacity in bars:
            h = share / top * plot_h
            parts.append(
                f'<rect x="{x:.1f}" y="{MARGIN_TOP + plot_h - h:.1f}" width="{max(w - 0.5, 0.5):.1f}" '
                f'height="{h:.1f}" fill="{colour}" fill-opacity="{opacity}"/>'
            )
        parts.append("</g>")
        if data.kind == "bars" or i % max(1, n // 6) == 0:
            text = escape(_truncate(data.ticks[i]))
            cx = x0 + slot / 2 if data.kind == "bars" else x0
            parts.append(
                f'<text x="{cx:.1f}" y="{MARGIN_TOP + plot_h + 12}" text-anchor="end" '
                f'transform="rotate(-35 {cx:.1f} {MARGIN_TOP + plot_h + 12})">{text}</text>'
            )
    parts.append("</svg>")
    return "".join(parts)


def _column_section(index: int, column: ColumnDrift, reference: pd.Series | None, current: pd.Series | None) -> str:
    name = escape(column.column)
    header = f'<div class="card" id="col-{index}"><h2>{name} {_verdict_badge(column)}</h2>'
    if column.error is not None:
        detail = f'<p class="error">{escape(column.error)}</p>'
    else:
        detail = (
            f"<p>{escape(method_label(column.method))}: <b>{_number(column.score)}</b> "
            f"(threshold {_number(column.threshold)})</p>"
        )
    data = chart_data(column.column_type, reference, current)
    chart = ""
    if data is not None:
        legend = (
            f'<div class="legend"><span style="background:{REFERENCE_COLOUR}"></span>reference'
            f'<span style="background:{CURRENT_COLOUR}"></span>current</div>'
        )
        chart = legend + svg_chart(data)
    return f"{header}{detail}{chart}</div>"


def _table_row(index: int, column: ColumnDrift) -> str:
    kind = "numerical" if column.column_type == "num" else "categorical"
    return (
        f'<tr><td><a href="#col-{index}">{escape(column.column)}</a></td><td>{kind}</td>'
        f"<td>{escape(method_label(column.method))}</td>"
        f'<td class="num">{_number(column.score)}</td><td class="num">{_number(column.threshold)}</td>'
        f"<td>{_verdict_badge(column)}</td>"
        f'<td class="num">{column.reference_count:,} (+{column.reference_missing:,} missing)</td>'
        f'<td class="num">{column.current_count:,} (+{column.current_missing:,} missing)</td></tr>'
    )


def method_label(method: str) -> str:
    """The display name of a test (Evidently's wording), or the name itself."""
    return METHOD_NAMES.get(method, method or "—")


def _verdict_badge(column: ColumnDrift) -> str:
    if column.error is not None:
        return _badge("error", "err")
    return _badge("drift", "drift") if column.drifted else _badge("no drift", "ok")


def _badge(text: str, css: str) -> str:
    return f'<span class="badge {css}">{escape(text)}</span>'


def _finite(values: pd.Series) -> np.ndarray | None:
    if not pd.api.types.is_numeric_dtype(values.dtype):
        return None
    array = values.to_numpy(dtype=np.float64, na_value=np.nan)
    array = array[np.isfinite(array)]
    return array if array.size else None


def _value_counts(values: pd.Series) -> pd.Series:
    """Counts per value, missing and infinite values left out (as the drift tests leave them out)."""
    counts = values.value_counts(dropna=True)
    return counts[~counts.index.isin([np.inf, -np.inf])]


def _number(value: float) -> str:
    if not math.isfinite(value):
        return "—"
    return f"{value:.4g}"


def _short_number(value: float) -> str:
    return f"{value:.3g}"


def _truncate(text: str) -> str:
    return text if len(text) <= MAX_LABEL_CHARS else text[: MAX_LABEL_CHARS - 1] + "…"
