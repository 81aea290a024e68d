"""The dashboard's pages: ``/dashboard`` (the charts, server-rendered SVG) and one CSV per chart
(``/dashboard/<chart>.csv``, the same filters), behind the inbox's login.

Charts: per day and model version the 👍 rate, the share of unsure (clarifying) replies and the
share of negative sentiment, each with a marker on the day a model version first answered; the
intents with the most 👎; the most frequent predicted → corrected pairs
(:mod:`learning.review.dashboard`)."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Sequence
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import PlainTextResponse, RedirectResponse
from starlette.concurrency import run_in_threadpool

from learning.review.charts import Marker, bar_chart, line_chart
from learning.review.dashboard import (
    CorrectedPair,
    Daily,
    DashboardFilters,
    IntentDownvotes,
    corrected_pairs,
    daily,
    downvoted_intents,
    first_answers,
)
from learning.review.filters import PLATFORMS

Reviewer = Callable[[Request], str | None]  # the logged-in reviewer, or None
Render = Callable[..., Response]  # (request, template, **context) -> the page

RATES: dict[str, tuple[str, Callable[[Daily], float | None]]] = {
    "thumbs_up": (
        "Thumbs-up rate (▲ share of the votes on each day's replies)",
        lambda r: r.up_rate,
    ),
    "unsure": ("Share of unsure (clarifying) replies", lambda r: r.unsure_share),
    "negative": ("Share of messages with negative sentiment", lambda r: r.negative_share),
}
CHARTS = (*RATES, "downvoted_intents", "corrections")


def _series(
    rows: Sequence[Daily], value: Callable[[Daily], float | None]
) -> tuple[list[str], dict[str, list[float | None]]]:
    days = sorted({r.day for r in rows})
    index = {d: k for k, d in enumerate(days)}
    series: dict[str, list[float | None]] = {}
    for r in rows:
        series.setdefault(r.model_version, [None] * len(days))[index[r.day]] = value(r)
    return days, series


def _intent_bars(rows: Sequence[IntentDownvotes]) -> list[tuple[str, float]]:
    totals: dict[str, float] = {}
    for r in rows:  # already ordered by the intents' totals
        totals[r.intent] = totals.get(r.intent, 0) + r.down
    return list(totals.items())


def _pair_bars(pairs: Sequence[CorrectedPair]) -> list[tuple[str, float]]:
    return [(f"{p.predicted} → {p.corrected}", float(p.total)) for p in pairs]


def _cell(value: Any) -> Any:
    # a spreadsheet runs a cell that starts with = + - @ as a formula: keep text inert
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@"):
        return "'" + value
    return value


def _share(x: float | None) -> str:
    return "" if x is None else f"{x:.4f}"


def csv_rows(chart: str, engine: Any, f: DashboardFilters) -> tuple[list[str], list[list[Any]]]:
    """The header and rows of one chart's CSV."""
    if chart in RATES:
        rows = daily(engine, f)
        head = ["day", "model_version"]
        if chart == "thumbs_up":
            return [*head, "up", "down", "up_rate"], [
                [r.day, r.model_version, r.up, r.down, _share(r.up_rate)] for r in rows
            ]
        if chart == "unsure":
            return [*head, "interactions", "unsure", "unsure_share"], [
                [r.day, r.model_version, r.interactions, r.unsure, _share(r.unsure_share)]
                for r in rows
            ]
        return [*head, "interactions", "negative", "negative_share"], [
            [r.day, r.model_version, r.interactions, r.negative, _share(r.negative_share)]
            for r in rows
        ]
    if chart == "downvoted_intents":
        return ["intent", "model_version", "down", "up"], [
            [r.intent, r.model_version, r.down, r.up] for r in downvoted_intents(engine, f)
        ]
    return ["predicted", "corrected", "by_reviewers", "by_users", "total"], [
        [p.predicted, p.corrected, p.by_reviewers, p.by_users, p.total]
        for p in corrected_pairs(engine, f)
    ]


def _csv_text(head: list[str], rows: list[list[Any]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(head)
    writer.writerows([[_cell(v) for v in row] for row in rows])
    return out.getvalue()


def _view(engine: Any, f: DashboardFilters) -> dict[str, Any]:
    rows = daily(engine, f)
    firsts = first_answers(engine)
    markers = [Marker(a.day, a.model_version) for a in firsts[1:]]  # the first one is the start
    charts: dict[str, Any] = {}
    for kind, (title, value) in RATES.items():
        days, series = _series(rows, value)
        charts[kind] = (title, line_chart(kind, title, days, series, markers))
    intents = downvoted_intents(engine, f)
    pairs = corrected_pairs(engine, f)
    charts["downvoted_intents"] = (
        "Intents with the most thumbs down (▼)",
        bar_chart(
            "downvoted_intents", "Intents with the most thumbs down (▼)", _intent_bars(intents)
        ),
    )
    charts["corrections"] = (
        "Most frequent predicted → corrected (reviewers' labels and users' picks)",
        bar_chart("corrections", "Predicted → corrected", _pair_bars(pairs)),
    )
    totals = {
        "interactions": sum(r.interactions for r in rows),
        "up": sum(r.up for r in rows),
        "down": sum(r.down for r in rows),
        "versions": len({r.model_version for r in rows}),
    }
    return {"charts": charts, "pairs": pairs, "firsts": firsts, "totals": totals}


def add_dashboard(app: FastAPI, engine: Any, reviewer: Reviewer, render: Render) -> None:
    """Register the dashboard's routes on the inbox's app (same login, same headers)."""

    async def page(request: Request) -> Response:
        if reviewer(request) is None:
            return RedirectResponse("/login", 303)
        f = DashboardFilters.parse(request.query_params)
        if sorted(request.query_params.multi_items()) != sorted(f.params().items()):
            # the form sends its empty fields too: one short URL per view, as the inbox does
            return RedirectResponse("/dashboard?" + f.query() if f.params() else "/dashboard", 303)
        view = await run_in_threadpool(_view, engine, f)
        return render(request, "dashboard.html", d=f, platforms=PLATFORMS, **view)

    async def download(request: Request) -> Response:
        if reviewer(request) is None:
            return RedirectResponse("/login", 303)
        chart = request.path_params["chart"]
        if chart not in CHARTS:
            return PlainTextResponse("no such chart", 404)
        f = DashboardFilters.parse(request.query_params)
        head, rows = await run_in_threadpool(csv_rows, chart, engine, f)
        span = "-".join(v for v in (f.params().get("since"), f.params().get("until")) if v)
        name = f"thumbloop-{chart}{'-' + span if span else ''}.csv"
        return Response(
            _csv_text(head, rows),
            media_type="text/csv; charset=utf-8",
            headers={
                "content-disposition": f'attachment; filename="{name}"',
                "cache-control": "no-store",
            },
        )

    app.add_api_route("/dashboard", page, methods=["GET"], include_in_schema=False)
    app.add_api_route("/dashboard/{chart}.csv", download, methods=["GET"], include_in_schema=False)
