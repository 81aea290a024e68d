"""The dashboard's numbers on a real SQLite database (PostgreSQL: the integration tests), its
filters, its CSVs and its SVG charts."""

from __future__ import annotations

import csv
import io
from datetime import date
from pathlib import Path

from learning.review.charts import Marker, bar_chart, line_chart
from learning.review.dashboard import DashboardFilters
from learning.review.dashboard_page import CHARTS, _csv_text, _view, csv_rows
from tests.unit.learning.review import dashboard_seed
from tests.unit.learning.review.seed import fresh_db


def test_numbers_per_day_and_version_pairs_and_first_answers(tmp_path: Path) -> None:
    _, engine = fresh_db(tmp_path)
    dashboard_seed.seed(engine)
    dashboard_seed.check(engine)
    engine.dispose()


def test_filters_parse_leniently_and_write_back_short() -> None:
    f = DashboardFilters.parse({"since": "2026-03-04", "until": "nope", "platform": "fax"})
    assert f == DashboardFilters(since=date(2026, 3, 4))
    assert f.query() == "since=2026-03-04"
    assert DashboardFilters.parse({"platform": "slack"}).params() == {"platform": "slack"}


def test_each_chart_has_a_csv_of_its_numbers(tmp_path: Path) -> None:
    _, engine = fresh_db(tmp_path)
    dashboard_seed.seed(engine)
    tables = {}
    for chart in CHARTS:
        head, rows = csv_rows(chart, engine, DashboardFilters())
        parsed = list(csv.reader(io.StringIO(_csv_text(head, rows))))
        assert parsed[0] == head
        tables[chart] = parsed[1:]
    assert tables["thumbs_up"][0] == ["2026-03-02", "thumbloop/1", "2", "2", "0.5000"]
    assert ["2026-03-04", "thumbloop/2", "3", "1", "0.3333"] in tables["unsure"]
    assert tables["negative"][-1] == ["2026-03-05", "thumbloop/2", "2", "1", "0.5000"]
    assert tables["downvoted_intents"][0] == ["exchange_rate", "thumbloop/1", "2", "0"]
    assert tables["corrections"] == [
        ["exchange_rate", "card_arrival", "1", "2", "3"],
        ["card_arrival", "card_delivery_estimate", "0", "1", "1"],
    ]
    slack = csv_rows("thumbs_up", engine, DashboardFilters(platform="slack"))[1]
    assert slack == [["2026-03-02", "thumbloop/1", 0, 1, "0.0000"]]
    engine.dispose()


def test_csv_cells_that_a_spreadsheet_would_run_are_made_text() -> None:
    text = _csv_text(["intent"], [["=HYPERLINK(1)"], ["-1"], ["fine"]])
    assert text.splitlines() == ["intent", "'=HYPERLINK(1)", "'-1", "fine"]


def test_the_page_marks_where_a_new_version_first_answered(tmp_path: Path) -> None:
    _, engine = fresh_db(tmp_path)
    dashboard_seed.seed(engine)
    view = _view(engine, DashboardFilters())
    svg = str(view["charts"]["thumbs_up"][1])
    assert svg.count('class="marker"') == 1 and 'data-day="2026-03-04"' in svg
    assert 'data-points="5"' in svg  # five (day, version) points with votes
    assert svg.count("<polyline") == 2  # one line per version
    assert view["totals"] == {"interactions": 12, "up": 8, "down": 6, "versions": 2}
    later = _view(engine, DashboardFilters(since=date(2026, 3, 5)))
    assert 'class="marker"' not in str(later["charts"]["unsure"][1])  # not a day shown
    engine.dispose()


def test_charts_escape_their_labels_and_say_when_empty() -> None:
    svg = str(
        line_chart(
            "x",
            "t",
            ["2026-03-01", "2026-03-02", "2026-03-03"],
            {"<b>v1": [0.5, None, 1.0]},
            [Marker("2026-03-02", "v&2")],
        )
    )
    assert "<b>" not in svg and "&lt;b&gt;v1" in svg and "v&amp;2" in svg
    assert "<polyline" not in svg  # a gap breaks the line: two lone points
    assert svg.count('class="point"') == 2
    assert "no data in this range" in str(line_chart("x", "t", [], {}))
    bars = str(bar_chart("b", "t", [("a → b", 3.0), ("c → d", 1.0)]))
    assert bars.count('class="bar"') == 2 and 'data-points="2"' in bars
    assert "no data in this range" in str(bar_chart("b", "t", []))
