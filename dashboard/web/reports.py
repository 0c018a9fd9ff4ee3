"""The campaign page's Report section (loaded with HTMX once the page is up) and its engagement
CSV. Charts are server-rendered SVG: this module works out the geometry (scales, ticks in the
viewer's time zone), templates/_charts.html draws it."""

from __future__ import annotations

import math
from datetime import datetime

from flask import Blueprint, Response, render_template, request, stream_with_context

from dashboard.access import ALL_ROLES, roles
from dashboard.services import campaigns as campaign_service
from dashboard.services import reports
from dashboard.web import timefmt

bp = Blueprint("reports", __name__, url_prefix="/campaigns")

# The chart's drawing box (SVG user units); the SVG scales to its container's width.
WIDTH, HEIGHT = 560, 260
LEFT, RIGHT, TOP, BOTTOM = 52, 14, 14, 44
SERIES = (("delivered", "Delivered", "chart-delivered"), ("read", "Read", "chart-read"),
          ("clicked", "Clicked", "chart-clicked"))
MAX_X_TICKS = 6


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


def _label(moment: datetime, bucket: str, tz, first: bool) -> str:
    local = moment.astimezone(tz)
    if bucket == "day":
        return f"{local.day} {local:%b}"
    return f"{local.day} {local:%b} {local:%H:%M}" if first or (local.hour == 0 and local.minute == 0) \
        else f"{local:%H:%M}"


def chart_model(series: dict, title: str) -> dict | None:
    """Geometry for templates/_charts.html's line chart; None when there are no points."""
    points = series["points"]
    if not points:
        return None
    bucket = series["bucket"]
    tz = timefmt.zone(timefmt.viewer_zone_name())
    zone_label = timefmt.zone_label(tz)
    moments = [datetime.fromisoformat(p["t"]) for p in points]
    peak = max(max(p[key] for key, _, _ in SERIES) for p in points)
    ticks = nice_ticks(peak)
    top = ticks[-1]
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    n = len(points)

    def x(i: int) -> float:
        return round(LEFT + (plot_w / 2 if n == 1 else plot_w * i / (n - 1)), 1)

    def y(v: int) -> float:
        return round(TOP + plot_h - plot_h * v / top, 1)

    lines = []
    for key, name, css in SERIES:
        coords = [(x(i), y(p[key])) for i, p in enumerate(points)]
        lines.append({"key": key, "name": name, "class": css, "total": sum(p[key] for p in points),
                      "path": " ".join(f"{a},{b}" for a, b in coords),
                      "dots": coords if n <= 60 else []})
    every = max(1, math.ceil(n / MAX_X_TICKS))
    x_ticks = [{"x": x(i), "label": _label(moments[i], bucket, tz, i == 0)} for i in range(0, n, every)]
    unit = "hour" if bucket == "hour" else "day"
    rows = [{"label": _label(m, bucket, tz, True), **{k: p[k] for k, _, _ in SERIES}}
            for m, p in zip(moments, points, strict=True)]
    return {"width": WIDTH, "height": HEIGHT, "left": LEFT, "right": WIDTH - RIGHT, "top": TOP,
            "bottom": HEIGHT - BOTTOM, "lines": lines, "x_ticks": x_ticks,
            "y_ticks": [{"y": y(v), "label": f"{v:,}"} for v in ticks],
            "title": title, "unit": unit, "zone": zone_label, "bucket": bucket, "rows": rows,
            "desc": (f"Recipients per {unit} ({zone_label} time), {len(points)} {unit}s from "
                     f"{rows[0]['label']} to {rows[-1]['label']}: "
                     + ", ".join(f"{line['name'].lower()} {line['total']:,}" for line in lines) + ".")}


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
