"""The HTML model report is self-contained, complete, and states numbers that match the data."""

from __future__ import annotations

import base64
import html
import re

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure
from threadpoolctl import threadpool_limits

from clvcast import plots
from clvcast.churn import ChurnModel
from clvcast.churn.simulate import simulate_fading_transactions
from clvcast.data import read_transactions
from clvcast.errors import InputError
from clvcast.html_report import REPORT_FILE, SECTIONS, write_report
from clvcast.pipeline import CLVPipeline

AS_OF = "2024-06-30"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
EVALUATION_FIGURES = {
    "tracking_cumulative.png",
    "tracking_weekly.png",
    "calibration_vs_holdout.png",
    "churn_roc.png",
    "churn_calibration.png",
}


@pytest.fixture(scope="module")
def fitted():
    """One pipeline on 3,000 simulated contacts, evaluated on a 90-day holdout, and its
    scored table with two prospects (contacts without purchases) at the end."""
    transactions, _ = simulate_fading_transactions(3000, seed=1)
    log = read_transactions(transactions, as_of=AS_OF)
    pipeline = CLVPipeline(churn_model=ChurnModel(n_cutoffs=4))
    # One OpenMP thread for the churn booster: on a busy 2-core machine its spinning
    # threads made this fixture take 100 s instead of 7 s.
    with threadpool_limits(limits=1, user_api="openmp"):
        evaluation = pipeline.evaluate(log, AS_OF, 90)
        pipeline.fit(log, AS_OF)
    ids = transactions["contact_id"].drop_duplicates().head(3).tolist()
    contacts = pd.DataFrame(
        {"contact_id": [*ids, "prospect-1", "prospect-2"], "email": list("abcde")}
    )
    scored = pipeline.score(log, AS_OF, contacts=contacts)
    return pipeline, scored, evaluation


@pytest.fixture(scope="module")
def report(fitted, tmp_path_factory):
    pipeline, scored, evaluation = fitted
    folder = tmp_path_factory.mktemp("report")
    path = write_report(
        pipeline,
        scored,
        folder,
        evaluation=evaluation,
        model_name="clvcast",
        model_version="7",
    )
    return path, path.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def report_without_evaluation(fitted, tmp_path_factory):
    pipeline, scored, _ = fitted
    path = write_report(pipeline, scored, tmp_path_factory.mktemp("plain") / "new folder")
    return path, path.read_text(encoding="utf-8")


def embedded_images(text: str) -> dict[str, bytes]:
    """File name -> PNG bytes of every figure embedded in the report."""
    found = re.findall(
        r'<figure id="fig-([^"]+)"><img src="data:image/png;base64,([A-Za-z0-9+/=]+)"', text
    )
    return {f"{name}.png": base64.b64decode(data, validate=True) for name, data in found}


def test_report_has_every_section_heading_and_the_header(report):
    path, text = report
    assert path.name == REPORT_FILE
    for key, heading in SECTIONS.items():
        assert f'<section id="{key}"><h2>{html.escape(heading)}</h2>' in text
    assert "<strong>As of:</strong> 2024-06-30" in text
    assert "<strong>Model:</strong> clvcast" in text
    assert "<strong>Version:</strong> 7" in text
    assert "R5 = last purchase 0-" in text  # the R boundaries in days
    assert "se(coef)" in text and "log-likelihood" in text  # parameter and fit tables
    assert "Not evaluated" not in text


def test_report_is_self_contained(report):
    _, text = report
    lowered = text.lower()
    assert "<script" not in lowered
    assert "<link" not in lowered and "@import" not in lowered and "url(" not in lowered
    assert "<iframe" not in lowered and "<object" not in lowered
    references = re.findall(r'(?:src|href)\s*=\s*"([^"]*)"', text)
    assert references
    for reference in references:
        assert reference.startswith(("data:image/png;base64,", "#")), reference[:60]


def test_every_embedded_image_is_a_png_and_equals_its_file(report):
    path, text = report
    images = embedded_images(text)
    assert len(images) == text.count("<img ")
    files = {p.name: p.read_bytes() for p in path.parent.glob("*.png")}
    assert set(images) == set(files)
    for name, data in images.items():
        assert data.startswith(PNG_SIGNATURE), name
        assert data == files[name], name
    heatmaps = [
        f"rfm_heatmap_{p}_{k}.png" for p in ("r_f", "f_m", "r_m") for k in ("contacts", "clv_12m")
    ]
    expected = {*EVALUATION_FIGURES, *heatmaps, "segment_summary.png", "clv_distribution.png"}
    assert expected.issubset(files)
    assert sorted(p.name for p in path.parent.iterdir()) == sorted([*files, REPORT_FILE])


def test_pareto_sentence_matches_a_direct_computation(fitted, report):
    _, scored, _ = fitted
    _, text = report
    buyers = scored[scored["rfm_group"] != "prospect"]  # prospects have 0, not a forecast
    values = np.sort(buyers["clv_12m"].to_numpy(dtype=float))[::-1]
    top = round(0.2 * len(values))
    share = values[:top].sum() / values.sum()
    match = re.search(
        r"The 20% of contacts with the highest predicted value \(([\d,]+) of ([\d,]+)\) "
        r"hold <strong>([\d.]+)%</strong>",
        text,
    )
    assert match is not None
    assert int(match.group(1).replace(",", "")) == top
    assert int(match.group(2).replace(",", "")) == len(values) == len(scored) - 2
    assert float(match.group(3)) == pytest.approx(100 * share, abs=0.051)
    assert f"{values.sum():,.0f}" in text  # the total predicted value is stated


def test_glance_counts_and_segment_table_match_the_scored_table(fitted, report):
    _, scored, _ = fitted
    _, text = report
    assert f"{len(scored):,}: {len(scored) - 2:,} with purchases and 2 prospects" in text
    for segment, count in scored["rfm_segment"].value_counts().items():
        assert f"<td>{html.escape(segment)}</td>\n      <td>{count:,}</td>" in text


def test_holdout_numbers_in_the_text_are_the_evaluation_metrics(fitted, report):
    pipeline, _, evaluation = fitted
    _, text = report
    metrics = evaluation.holdout.metrics
    assert f"predicted {metrics['predicted_total']:,.0f} purchases" in text
    assert f"{metrics['actual_total']:,.0f} happened ({metrics['aggregate_error_pct']:+.1f}%)" in (
        text
    )
    churn = evaluation.churn
    assert f"ROC-AUC {churn.auc('classifier'):.3f}" in text


def test_report_without_evaluation_keeps_headings_and_skips_those_figures(
    report, report_without_evaluation
):
    path, text = report_without_evaluation
    assert path.parent.name == "new folder"  # created
    for heading in SECTIONS.values():
        assert f"<h2>{html.escape(heading)}</h2>" in text
    assert text.count("Not evaluated") == 2
    files = {p.name for p in path.parent.glob("*.png")}
    assert files.isdisjoint(EVALUATION_FIGURES)
    assert set(embedded_images(text)) == files
    assert files == set(embedded_images(report[1])) - EVALUATION_FIGURES
    assert "<strong>Model:</strong>" not in text  # no name given, none in the table


def test_text_from_data_is_escaped_and_model_columns_are_read(fitted, tmp_path):
    pipeline, scored, _ = fitted
    table = scored.assign(model_name="<b>shop & co</b>", model_version="3")
    table["rfm_segment"] = table["rfm_segment"].replace({"lost": "lost <i>&</i> gone"})
    path = write_report(pipeline, table, tmp_path, title='Q3 "<script>" Café')
    text = path.read_bytes().decode("ascii")  # non-ASCII text becomes character references
    assert "<script>" not in text and "<b>shop" not in text and "<i>&" not in text
    assert "<title>Q3 &quot;&lt;script&gt;&quot; Caf&#233;</title>" in text
    assert "<strong>Model:</strong> &lt;b&gt;shop &amp; co&lt;/b&gt;" in text
    assert "<strong>Version:</strong> 3" in text
    assert "lost &lt;i&gt;&amp;&lt;/i&gt; gone" in text


def test_write_report_names_missing_columns(fitted, tmp_path):
    pipeline, scored, evaluation = fitted
    with pytest.raises(InputError, match=r"missing column\(s\) \['rfm_segment'\]"):
        write_report(pipeline, scored.drop(columns="rfm_segment"), tmp_path)
    with pytest.raises(InputError, match="evaluation"):
        write_report(pipeline, scored, tmp_path, evaluation={"holdout": "no"})
    assert list(tmp_path.iterdir()) == []  # nothing written on failure


# --- the new figure -------------------------------------------------------------------


def test_segment_summary_bars_carry_the_contacts_and_values(fitted):
    _, scored, _ = fitted
    fig = plots.segment_summary(scored, "clv_12m")
    assert isinstance(fig, Figure)
    counts_ax, values_ax = fig.axes
    expected = plots.segment_values(scored, "clv_12m")
    names = [label.get_text() for label in counts_ax.get_yticklabels()]
    assert names == list(expected.index)
    assert set(names) == set(scored["rfm_segment"])
    widths = [bar.get_width() for bar in counts_ax.patches]
    np.testing.assert_array_equal(widths, expected["contacts"].to_numpy())
    assert sum(widths) == len(scored)
    totals = scored.groupby("rfm_segment")["clv_12m"].sum()
    values = dict(zip(names, (bar.get_width() for bar in values_ax.patches), strict=True))
    for segment, total in totals.items():
        assert values[segment] == pytest.approx(total)
    assert values["prospect"] == 0
    labels = [text.get_text() for text in values_ax.texts]
    assert labels[names.index("prospect")] == "no forecast"
    top = expected.index[0]
    assert labels[0] == f"{totals[top]:,.0f} ({totals[top] / totals.sum():.1%})"
    assert list(expected["value_total"].dropna()) == sorted(
        expected["value_total"].dropna(), reverse=True
    )
    assert "clv_12m" in values_ax.get_xlabel() and counts_ax.get_xlabel()
    assert counts_ax.get_title() and values_ax.get_title()


def test_segment_summary_without_a_value_shows_contacts_only(fitted):
    _, scored, _ = fitted
    fig = plots.segment_summary(scored.drop(columns="clv_12m"), value=None)
    (ax,) = fig.axes
    assert sum(bar.get_width() for bar in ax.patches) == len(scored)
    with pytest.raises(InputError, match="clv_12m"):
        plots.segment_values(scored.drop(columns="clv_12m"))
