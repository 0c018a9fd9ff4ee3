"""The campaign page's Report section (loaded with HTMX once the page is up) and its engagement
CSV. Charts are server-rendered SVG: this module works out the geometry (scales, ticks in the
viewer's time zone), templates/_charts.html draws it."""

from __future__ import annotations

import math
from datetime import UTC, datetime

from flask import Blueprint, Response, render_template, request, stream_with_context

from dashboard.access import ALL_ROLES, roles
from dashboard.services import campaigns as campaign_service
from dashboard.services import reports
from dashboard.web import timefmt

bp = Blueprint("reports", __name__, url_prefix="/campaigns")

# The chart's drawing boxes (SVG user units), each scaled to its container's width: a wide one,
# and a narrow, taller one with fewer ticks that CSS shows instead on a phone (no script).
VIEWS = ({"name": "wide", "width": 560, "height": 270, "left": 46, "right": 18, "top": 30, "bottom": 44, "ticks": 6},
         {"name": "narrow", "width": 340, "height": 280, "left": 40, "right": 16, "top": 30, "bottom": 44,
          "ticks": 4})
SERIES = (("delivered", "Delivered", "chart-delivered"), ("read", "Read", "chart-read"),
          ("clicked", "Clicked", "chart-clicked"))


def nice_ticks(peak: int, count: int = 4) -> list[int]:
    """0 and round steps (1, 2, 5 × 10^n) up to at least the peak."""
    if peak <= 0:
        return [0, 1]
    raw = peak / count
    magnitude = 10 ** math.floor(math.log10(raw)) if raw >= 1 else 1
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)
    step = max(1, int(step))
    top = step * math.ceil(peak / step)
    return list(range(0, top + 1, step))


def _label(moment: datetime, bucket: str, tz) -> str:
    local = moment.astimezone(tz)
    return f"{local.day} {local:%b}" if bucket == "day" else f"{local.day} {local:%b} {local:%H:%M}"


def _tick(moment: datetime, bucket: str, tz, previous: datetime | None) -> dict:
    """An x tick: the day for daily buckets; for hourly ones the time, with the date under it at
    the first tick and wherever the day changes."""
    local = moment.astimezone(tz)
    if bucket == "day":
        return {"main": f"{local.day} {local:%b}", "sub": ""}
    new_day = previous is None or previous.astimezone(tz).date() != local.date()
    return {"main": f"{local:%H:%M}", "sub": f"{local.day} {local:%b}" if new_day else ""}


def chart_model(series: dict, title: str) -> dict | None:
    """Geometry for templates/_charts.html's line chart; None when there are no points."""
    points = series["points"]
    if not points:
        return None
    bucket = series["bucket"]
    # Buckets are UTC hours and days: hours are labelled in the viewer's zone (an hour is an hour
    # anywhere, give or take a half-hour zone), days by their UTC date (a UTC day is not a local one).
    tz = timefmt.zone(timefmt.viewer_zone_name()) if bucket == "hour" else UTC
    zone_label = timefmt.zone_label(tz)
    moments = [datetime.fromisoformat(p["t"]) for p in points]
    peak = max(max(p[key] for key, _, _ in SERIES) for p in points)
    ticks = nice_ticks(peak)
    unit = "hour" if bucket == "hour" else "day"
    rows = [{"label": _label(m, bucket, tz), **{k: p[k] for k, _, _ in SERIES}}
            for m, p in zip(moments, points, strict=True)]
    lines = [{"key": key, "name": name, "class": css, "total": sum(p[key] for p in points)}
             for key, name, css in SERIES]
    return {"title": title, "unit": unit, "zone": zone_label, "bucket": bucket, "rows": rows, "lines": lines,
            "views": [_geometry(view, points, moments, ticks, bucket, tz) for view in VIEWS],
            "desc": (f"Recipients per {unit} ({zone_label} time), {len(points)} {unit}s from "
                     f"{rows[0]['label']} to {rows[-1]['label']}: "
                     + ", ".join(f"{line['name'].lower()} {line['total']:,}" for line in lines) + ".")}


def _geometry(view: dict, points: list[dict], moments: list[datetime], ticks: list[int], bucket: str, tz) -> dict:
    left, right = view["left"], view["width"] - view["right"]
    top, bottom = view["top"], view["height"] - view["bottom"]
    plot_w, plot_h, peak, n = right - left, bottom - top, ticks[-1], len(points)

    def x(i: int) -> float:
        return round(left + (plot_w / 2 if n == 1 else plot_w * i / (n - 1)), 1)

    def y(v: int) -> float:
        return round(bottom - plot_h * v / peak, 1)

    lines = []
    for key, _, css in SERIES:
        coords = [(x(i), y(p[key])) for i, p in enumerate(points)]
        lines.append({"key": key, "class": css, "path": " ".join(f"{a},{b}" for a, b in coords),
                      "dots": coords if n <= 24 else []})
    every = max(1, math.ceil(n / view["ticks"]))
    x_ticks = [{"x": x(i), **_tick(moments[i], bucket, tz, moments[i - every] if i else None)}
               for i in range(0, n, every)]
    return {"name": view["name"], "width": view["width"], "height": view["height"], "left": left, "right": right,
            "top": top, "bottom": bottom, "lines": lines, "x_ticks": x_ticks,
            "y_ticks": [{"y": y(v), "label": f"{v:,}"} for v in ticks]}


def report_context(campaign, bucket: str | None = None) -> dict:
    bucket = reports.parse_bucket(bucket, reports.default_bucket(campaign))
    data = reports.report(campaign, bucket)
    return {"campaign": campaign, "report": data, "bucket": bucket,
            "chart": chart_model(data["series"], f"Delivered, read and clicked per {bucket}")}


@bp.get("/<int:campaign_id>/_report")
@roles(*ALL_ROLES)
def report_section(campaign_id: int):
    """HTMX: the Report section (the hour/day toggle re-reads it)."""
    campaign = campaign_service.get(campaign_id)
    return render_template("campaigns/_report.html", **report_context(campaign, request.args.get("bucket")))


@bp.get("/<int:campaign_id>/engagement.csv")
@roles(*ALL_ROLES)
def engagement_csv(campaign_id: int):
    campaign = campaign_service.get(campaign_id)
    return Response(stream_with_context(reports.engagement_csv_stream(campaign)), mimetype="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="campaign-{campaign.id}-engagement.csv"'})
