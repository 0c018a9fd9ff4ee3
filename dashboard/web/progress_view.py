"""What the live status card says about a send: % done, rate, time left, started, elapsed, and
the bar's sent/failed/skipped segments. Words and numbers are made here, not in templates."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime

from dashboard.models import Campaign, CampaignStatus
from dashboard.services.delivery.progress import Rate

FINAL = (CampaignStatus.SENT, CampaignStatus.FAILED, CampaignStatus.CANCELLED)
BAR_SCALE = 1000  # the bar's SVG is BAR_SCALE units wide


@dataclass(frozen=True)
class Fact:
    key: str  # data-testid suffix
    label: str
    text: str
    moment: datetime | None = None  # shown as a <time>; text is its fallback
    tone: str = ""  # "warn" for a stall


@dataclass(frozen=True)
class Segment:
    kind: str  # sent | failed | skipped
    count: int
    x: float  # in BAR_SCALE units
    width: float
    percent: str


def duration(seconds: float) -> str:
    """"42 s", "6 min 30 s", "2 h 5 min"."""
    seconds = max(int(round(seconds)), 0)
    if seconds < 60:
        return f"{seconds} s"
    minutes, secs = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {secs} s" if secs else f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if minutes else f"{hours} h"


def rate_text(per_second: float) -> str:
    return f"{per_second:,.0f} msg/s" if per_second >= 10 else f"{per_second:.1f} msg/s"


def percent_text(part: int, whole: int) -> str:
    """Whole percent, rounded down (99% until the last one is done); one decimal under 1%."""
    if not whole or not part:
        return "0%"
    value = 100 * part / whole
    if value < 1:
        return f"{max(math.floor(value * 10) / 10, 0.1):.1f}%"
    return f"{math.floor(value)}%"


def done_count(c: Campaign) -> int:
    return c.sent + c.failed + c.skipped


def facts(c: Campaign, rate: Rate, now: datetime | None = None) -> list[Fact]:
    """The figures under the bar while a campaign sends, and once it has finished."""
    now = now or datetime.now(UTC)
    if c.status == CampaignStatus.SENDING:
        out = [Fact("percent", "Done", percent_text(done_count(c), c.total))]
        if rate.stalled:
            out.append(Fact("rate", "Rate", f"paused? nothing sent for {duration(rate.idle_seconds)} "
                                            f"(was {rate_text(rate.per_second)})", tone="warn"))
            out.append(Fact("eta", "Time left", "unknown while paused"))
        elif rate.per_second > 0:
            out.append(Fact("rate", "Rate", rate_text(rate.per_second)))
            out.append(Fact("eta", "Time left", f"about {duration(rate.eta)}" if rate.eta else "almost done"))
        else:
            out.append(Fact("rate", "Rate", "starting…"))
            out.append(Fact("eta", "Time left", "working it out…"))
        if c.started_at:
            out.append(Fact("started", "Started", f"{c.started_at:%Y-%m-%d %H:%M:%S} UTC", c.started_at))
            out.append(Fact("elapsed", "Elapsed", duration((now - c.started_at).total_seconds())))
        return out
    if c.status in FINAL and c.started_at:
        reached = f"{percent_text(c.sent, c.total)} sent"
        out = [Fact("percent", "Reached", reached),
               Fact("started", "Started", f"{c.started_at:%Y-%m-%d %H:%M:%S} UTC", c.started_at)]
        if c.completed_at:
            label = {"sent": "Finished", "failed": "Stopped", "cancelled": "Cancelled"}[c.status]
            out.append(Fact("completed", label, f"{c.completed_at:%Y-%m-%d %H:%M:%S} UTC", c.completed_at))
            out.append(Fact("elapsed", "Took", duration((c.completed_at - c.started_at).total_seconds())))
        return out
    return []


def segments(c: Campaign) -> list[Segment]:
    """The bar at its true proportions: sent, failed, skipped; what is left (pending) is the track."""
    out, x = [], 0.0
    if not c.total:
        return out
    for kind, count in (("sent", c.sent), ("failed", c.failed), ("skipped", c.skipped)):
        if count <= 0:
            continue
        width = BAR_SCALE * count / c.total
        out.append(Segment(kind, count, round(x, 3), round(width, 3), percent_text(count, c.total)))
        x += width
    return out


def bar_label(c: Campaign) -> str:
    """The bar in words, for screen readers and the tooltip."""
    parts = [f"{c.sent:,} sent", f"{c.failed:,} failed", f"{c.skipped:,} skipped"]
    if c.pending:
        parts.append(f"{c.pending:,} still to go")
    return f"{', '.join(parts)} of {c.total:,} recipients"
