"""What the live status card says about a send: % done, rate, time left, started, elapsed, the
bar's sent/failed/skipped segments, and (delivery control) why a campaign is paused and what
Resume/Continue will do. Words and numbers are made here, not in templates."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

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


def spread_text(c: Campaign, cap: float | None) -> str:
    """"over 120 min · at most 1.4/s": a spread send's window and its own rate cap."""
    return f"over {c.spread_minutes:,} min · at most {cap_text(cap)}" if c.spread_minutes and cap else ""


def cap_text(per_second: float) -> str:
    """"1,000/s", "2.5/s"; under one a second, per minute ("6.7/min")."""
    if per_second >= 10:
        return f"{per_second:,.0f}/s"
    return f"{per_second:.1f}/s" if per_second >= 1 else f"{per_second * 60:,.1f}/min"


def facts(c: Campaign, rate: Rate, now: datetime | None = None, cap: float | None = None) -> list[Fact]:
    """The figures under the bar while a campaign sends (or is paused), and once it has finished.
    `cap`: the campaign's own rate cap when it is spread over a window (its ETA cannot beat it)."""
    now = now or datetime.now(UTC)
    if c.status == CampaignStatus.SENDING:
        out = [Fact("percent", "Done", percent_text(done_count(c), c.total))]
        floor = math.ceil(c.pending / cap) if cap else None  # the spread's own pace, at best
        if rate.stalled:
            out.append(Fact("rate", "Rate", f"paused? nothing sent for {duration(rate.idle_seconds)} "
                                            f"(was {rate_text(rate.per_second)})", tone="warn"))
            out.append(Fact("eta", "Time left", "unknown while paused"))
        elif rate.per_second > 0:
            eta = max(rate.eta or 0, floor or 0)
            out.append(Fact("rate", "Rate", rate_text(rate.per_second)))
            out.append(Fact("eta", "Time left", f"about {duration(eta)}" if eta else "almost done"))
        else:
            out.append(Fact("rate", "Rate", "starting…"))
            out.append(Fact("eta", "Time left", f"about {duration(floor)}" if floor else "working it out…"))
        if c.spread_minutes and cap:
            out.append(Fact("spread", "Spread", spread_text(c, cap)))
        if c.started_at:
            out.append(Fact("started", "Started", f"{c.started_at:%Y-%m-%d %H:%M:%S} UTC", c.started_at))
            out.append(Fact("elapsed", "Elapsed", duration((now - c.started_at).total_seconds())))
        return out
    if c.status == CampaignStatus.PAUSED:
        out = [Fact("percent", "Done", percent_text(done_count(c), c.total)),
               Fact("eta", "Time left", "on hold until you continue" if c.canary_state == "held"
                    else "on hold until it is resumed")]
        if c.spread_minutes and cap:
            out.append(Fact("spread", "Spread", spread_text(c, cap)))
        if c.started_at:
            out.append(Fact("started", "Started", f"{c.started_at:%Y-%m-%d %H:%M:%S} UTC", c.started_at))
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


# -- delivery control: why a campaign is paused, and what Resume / Continue will do -----------

HALT_PREFIX = "automatic halt: "


@dataclass(frozen=True)
class Pause:
    kind: str  # "canary" (the first wave is done), "halt" (automatic), "person"
    title: str
    reason: str
    by: str
    at: datetime | None
    button: str  # "Continue" or "Resume"
    confirm: str  # the confirmation's question, with the figures it is about
    continues_at: datetime | None = None  # a canary hold with holdMinutes: when it goes on by itself
    countdown: str = ""  # "12 min 30 s" until then


def _still_to_go(c: Campaign) -> str:
    return f"{c.pending:,} recipient{'s' if c.pending != 1 else ''}"


def pause_view(c: Campaign, now: datetime | None = None) -> Pause | None:
    """What the paused banner and its button say (None unless the campaign is paused)."""
    if c.status != CampaignStatus.PAUSED:
        return None
    reason = c.paused_reason or "paused"
    by = c.paused_by or "someone"
    so_far = f"So far {c.sent:,} sent and {c.failed:,} failed."
    if reason.startswith(HALT_PREFIX):
        figures = reason.removeprefix(HALT_PREFIX)
        return Pause("halt", "Paused automatically: too many deliveries failed",
                     figures[:1].upper() + figures[1:] + ".", by, c.paused_at, "Resume",
                     f"It paused itself because {figures}. {so_far} Resume sending to the remaining "
                     f"{_still_to_go(c)}? Fix the cause first, or it may pause again.")
    if c.canary_state == "held":
        timed = c.paused_at is not None and c.canary_hold_minutes
        until = c.paused_at + timedelta(minutes=c.canary_hold_minutes) if timed else None
        left = duration((until - (now or datetime.now(UTC))).total_seconds()) if until else ""
        return Pause("canary", "Canary wave done — waiting for you",
                     "The first wave has been sent. Check its results below, then continue to send the rest "
                     "or cancel.", by, c.paused_at, "Continue",
                     f"Send to the remaining {_still_to_go(c)}?", until, left)
    said = "Nothing more is sent until someone resumes it." if reason.startswith("paused by ") \
        else f"{reason[:1].upper()}{reason[1:]}."  # "paused by <who>" is said by the line under it
    return Pause("person", "Paused", said, by, c.paused_at, "Resume",
                 f"Resume sending to the remaining {_still_to_go(c)}? {so_far}")


def canary_size_text(c: Campaign) -> str:
    """The first wave as chosen: "20 recipients" or "10% of the audience"."""
    if c.canary_size is not None:
        return f"{c.canary_size:,} recipient{'s' if c.canary_size != 1 else ''}"
    if c.canary_percent is not None:
        return f"{c.canary_percent:g}% of the audience"
    return ""
