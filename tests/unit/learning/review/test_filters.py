"""The inbox's filters, read from and written to query strings."""

from __future__ import annotations

from datetime import date

from learning.review.filters import Filters


def test_filters_parse_leniently() -> None:
    f = Filters.parse(
        {
            "intent": " card_arrival ",
            "model": "thumbloop/2",
            "platform": "slack",
            "since": "2026-03-01",
            "until": "not a date",
            "signal": "unsure",
            "sort": "recent",
            "page": "3",
            "reveal": "1",
        }
    )
    assert f == Filters(
        intent="card_arrival",
        model="thumbloop/2",
        platform="slack",
        since=date(2026, 3, 1),
        signal="unsure",
        sort="recent",
        page=3,
        reveal=True,
    )
    odd = Filters.parse({"platform": "myspace", "signal": "?", "sort": "x", "page": "-2"})
    assert odd == Filters()


def test_filters_write_only_what_differs_from_the_defaults() -> None:
    assert Filters().query() == ""
    f = Filters(intent="card_arrival", since=date(2026, 3, 1), reveal=True)
    assert f.query() == "intent=card_arrival&since=2026-03-01&reveal=1"
    assert Filters.parse(dict(p.split("=") for p in f.query().split("&"))) == f
    assert f.params(page=2)["page"] == "2"
    assert "page" not in f.params(page=1)
