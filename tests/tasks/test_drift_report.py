"""tasks.drift.report: the self-contained HTML drift page."""

from __future__ import annotations

from html import unescape
from html.parser import HTMLParser

import numpy as np
import pandas as pd
import pytest

from tasks.drift.report import NUM_BINS, TOP_CATEGORIES, chart_data, render_drift_html, svg_chart
from tasks.drift.verdicts import dataset_drift

VOID_ELEMENTS = {"meta", "link", "br", "hr", "img", "input", "col", "area", "base", "source", "wbr"}
SVG_SELF_CLOSING = {"rect", "line", "path", "circle"}


class StrictParser(HTMLParser):
    """Collects text and fails on unbalanced tags (the page must be well formed, not just tolerated)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.text: list[str] = []
        self.tags: list[str] = []
        self.attributes: list[tuple[str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attributes.extend(attrs)
        if tag not in VOID_ELEMENTS:
            self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attributes.extend(attrs)

    def handle_endtag(self, tag: str) -> None:
        assert self.stack and self.stack[-1] == tag, f"unbalanced </{tag}>, open: {self.stack[-5:]}"
        self.stack.pop()

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parse(page: str) -> StrictParser:
    parser = StrictParser()
    parser.feed(page)
    parser.close()
    assert parser.stack == [], parser.stack
    return parser


def frames(n: int, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    names = np.array([f"level_{k}" for k in range(30)], dtype=object)
    reference, current = {}, {}
    for i in range(20):
        reference[f"num_{i}"] = rng.normal(0, 1, n)
        current[f"num_{i}"] = rng.normal(0.3 if i % 3 == 0 else 0, 1, n)
    for i in range(5):
        reference[f"cat_{i}"] = names[rng.integers(0, 30 if i == 0 else 6, n)]
        current[f"cat_{i}"] = names[rng.integers(0, 30 if i == 0 else 8, n)]
    return pd.DataFrame(reference), pd.DataFrame(current)


class TestRenderDriftHtml:
    def test_page_parses_and_names_every_column_with_its_verdict(self) -> None:
        reference, current = frames(2000)
        result = dataset_drift(reference, current)
        page = render_drift_html(result, reference, current, title="Weekly drift", subtitle="model churn v3")
        parser = parse(page)
        text = " ".join(parser.text)
        for column in result.columns:
            assert column.column in text
        assert "Weekly drift" in text and "model churn v3" in text
        assert parser.tags.count("svg") == len(result.columns)
        assert f"{result.number_of_drifted_columns} / {result.number_of_columns}" in text

    def test_page_loads_nothing_from_outside(self) -> None:
        reference, current = frames(500)
        page = render_drift_html(dataset_drift(reference, current), reference, current, title="t")
        lowered = page.lower()
        assert "<script" not in lowered
        assert "http://" not in lowered and "https://" not in lowered
        assert "@import" not in lowered and "url(" not in lowered
        parser = parse(page)
        assert not [value for name, value in parser.attributes if name in ("src", "href") and value and "//" in value]

    def test_column_names_and_values_are_escaped(self) -> None:
        hostile = '<script>alert("x")</script>&'
        reference = pd.DataFrame({hostile: ["<b>a</b>", "b"] * 50, "n": np.arange(100.0)})
        current = pd.DataFrame({hostile: ["<b>a</b>", "<img src=x>"] * 50, "n": np.arange(100.0) + 5})
        page = render_drift_html(dataset_drift(reference, current), reference, current, title="<t>", subtitle="&")
        assert "<script>" not in page and "<b>a</b>" not in page and "<img" not in page
        text = " ".join(parse(page).text)
        assert hostile in unescape(text) and "<b>a</b>" in unescape(text)

    def test_errors_are_shown_without_a_chart(self) -> None:
        reference = pd.DataFrame({"a": np.arange(50.0), "gone": np.arange(50.0)})
        current = pd.DataFrame({"a": np.full(50, np.nan)})
        result = dataset_drift(reference, current)
        parser = parse(render_drift_html(result, reference, current, title="t"))
        text = " ".join(parser.text)
        assert "no non-missing values in current data" in text and "column missing in current data" in text
        assert parser.tags.count("svg") == 0

    def test_page_stays_small_for_200k_rows_and_25_columns(self) -> None:
        reference, current = frames(200_000, seed=1)
        result = dataset_drift(reference, current)
        page = render_drift_html(result, reference, current, title="big")
        assert len(page.encode()) < 1_000_000
        parse(page)


class TestChartData:
    def test_numerical_columns_share_bins_and_shares_sum_to_one(self) -> None:
        rng = np.random.default_rng(2)
        reference = pd.Series(np.r_[rng.normal(0, 1, 1000), np.nan, np.inf])
        data = chart_data("num", reference, pd.Series(rng.normal(3, 1, 500)))
        assert data is not None and data.kind == "histogram" and len(data.labels) == NUM_BINS
        assert sum(data.reference_shares) == pytest.approx(1.0) and sum(data.current_shares) == pytest.approx(1.0)

    def test_categorical_columns_keep_the_top_categories_and_group_the_rest(self) -> None:
        values = pd.Series([f"v{i % 40}" for i in range(4000)] + [None] * 10)
        data = chart_data("cat", values, values)
        assert data is not None and data.kind == "bars"
        assert len(data.labels) == TOP_CATEGORIES + 1 and data.labels[-1] == f"other ({40 - TOP_CATEGORIES})"
        assert sum(data.reference_shares) == pytest.approx(1.0)

    def test_constant_and_empty_columns(self) -> None:
        constant = chart_data("num", pd.Series(np.ones(10)), pd.Series(np.ones(5)))
        assert constant is not None and max(constant.reference_shares) == 1.0
        assert chart_data("num", pd.Series([np.nan, np.inf]), pd.Series([1.0])) is None
        assert chart_data("cat", pd.Series(["a"]), None) is None


class TestSvgChart:
    def test_one_group_of_bars_per_label(self) -> None:
        data = chart_data("cat", pd.Series(list("aabbc")), pd.Series(list("abccc")))
        assert data is not None
        svg = svg_chart(data)
        parser = parse(svg)
        assert parser.tags.count("g") == 3 and parser.tags.count("rect") == 6
