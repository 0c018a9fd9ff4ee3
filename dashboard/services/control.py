"""Delivery control (SPEC §10): send options (canary wave, automatic halt, spread), pause and
resume, the canary hold and its Continue, and four-eyes approval of a large send. Every move
is a lifecycle transition (conditional UPDATE + audit row); the engine honours the status at
its next step."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import case, func, select, update

from dashboard import jobs
from dashboard.errors import AppError, LifecycleError, ValidationError
from dashboard.extensions import db
from dashboard.models import Campaign, CampaignChunk, CampaignStatus, DeliveryMode, Recipient, RecipientStatus, utcnow
from dashboard.services import audit, lifecycle
from dashboard.services import campaigns as campaign_service
from dashboard.services.actor import Actor
from dashboard.services.delivery import guard

S = CampaignStatus
SYSTEM = Actor.system("system")
CANARY_TIMER = Actor.system("system (canary hold elapsed)")
CANARY_WAITING = "canary: waiting"
DEFAULT_HALT = (5.0, 200)  # more than 5% of the last 200 outcomes failed
MAX_HOLD_MINUTES = 7 * 24 * 60
MAX_SPREAD_MINUTES = 7 * 24 * 60


class FourEyesRequired(AppError):
    status = 403
    code = "four_eyes"
    title = "A second person must approve this"


@dataclass(frozen=True)
class SendOptions:
    canary_size: int | None = None
    canary_percent: float | None = None
    canary_hold_minutes: int | None = None  # None: hold until someone presses Continue
    halt_percent: float | None = None
    halt_window: int | None = None
    spread_minutes: int | None = None
    send_at: object = None  # recipient_time.SendAt: at a wall-clock time in each recipient's zone
    ignore_quiet_hours: bool = False
    ignore_frequency_cap: bool = False

    @property
    def canary(self) -> bool:
        return self.canary_size is not None or self.canary_percent is not None

    def values(self) -> dict:
        """Campaign columns set at send (every option, so a re-send never keeps stale ones)."""
        return dict(canary_size=self.canary_size, canary_percent=self.canary_percent,
                    canary_hold_minutes=self.canary_hold_minutes if self.canary else None,
                    canary_seed=random.randrange(1, 2**31 - 1) if self.canary else None,
                    canary_state="sending" if self.canary else None, halt_percent=self.halt_percent,
                    halt_window=self.halt_window, spread_minutes=self.spread_minutes,
                    send_at=self.send_at.as_json() if self.send_at is not None else None,
                    quiet_hours=not self.ignore_quiet_hours, frequency_cap=not self.ignore_frequency_cap)


def _problem(field: str, message: str) -> ValidationError:
    return ValidationError(f"{field}: {message}.", [{"field": field, "message": message}])


def _int(value, field: str, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise _problem(field, f"must be a whole number from {lo:,} to {hi:,}")
    return value


def _percent(value, field: str, lo_open: float, hi: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) \
            or not lo_open < value <= hi:
        raise _problem(field, f"must be a number above {lo_open:g} and at most {hi:g}")
    return float(value)


def parse_options(data: dict) -> SendOptions:
    """The send body's options (camelCase, as the API takes them): `canary {size | percent,
    holdMinutes}`, `haltRule {percent, window}` (default with a canary: 5% of the last 200; null
    turns it off), `spreadMinutes`. Raises ValidationError naming the field."""
    size = percent = hold = spread = None
    canary = data.get("canary")
    if canary is not None:
        if not isinstance(canary, dict):
            raise _problem("canary", "must be an object with size or percent")
        if ("size" in canary) == ("percent" in canary) or (canary.get("size") is None and
                                                          canary.get("percent") is None):
            raise _problem("canary", "give exactly one of size (recipients) or percent")
        if canary.get("size") is not None:
            size = _int(canary["size"], "canary.size", 1, 10_000_000)
        else:
            percent = _percent(canary["percent"], "canary.percent", 0, 99.9)
        if canary.get("holdMinutes") is not None:
            hold = _int(canary["holdMinutes"], "canary.holdMinutes", 1, MAX_HOLD_MINUTES)
    halt_percent = halt_window = None
    if "haltRule" in data:
        rule = data["haltRule"]
        if rule is not None:
            if not isinstance(rule, dict):
                raise _problem("haltRule", "must be an object with percent and window, or null")
            halt_percent = _percent(rule.get("percent"), "haltRule.percent", 0, 100)
            halt_window = _int(rule.get("window", DEFAULT_HALT[1]), "haltRule.window", 20, 100_000)
    elif canary is not None:
        halt_percent, halt_window = DEFAULT_HALT
    if data.get("spreadMinutes") is not None:
        spread = _int(data["spreadMinutes"], "spreadMinutes", 1, MAX_SPREAD_MINUTES)
    send_at = None
    if data.get("sendAt") is not None:
        from dashboard.services import recipient_time

        if data.get("scheduledAt") is not None:
            raise _problem("sendAt", "give either scheduledAt (one instant) or sendAt (each recipient's local "
                                     "time), not both")
        send_at = recipient_time.parse_send_at(data["sendAt"])
    flags = {}
    for name in ("ignoreQuietHours", "ignoreFrequencyCap"):
        value = data.get(name)
        if value is not None and not isinstance(value, bool):
            raise _problem(name, "must be true or false")
        flags[name] = bool(value)
    return SendOptions(size, percent, hold, halt_percent, halt_window, spread, send_at,
                       flags["ignoreQuietHours"], flags["ignoreFrequencyCap"])


def canary_count(total: int, size: int | None, percent: float | None) -> int:
    if size is not None:
        return size
    return max(1, math.ceil(total * (percent or 0) / 100))


def check_options(campaign: Campaign, options: SendOptions) -> None:
    """Send-time checks that need the campaign: a canary smaller than the audience; spread for batch."""
    if options.canary:
        n = canary_count(campaign.total, options.canary_size, options.canary_percent)
        if n >= campaign.total:
            raise _problem("canary", f"a first wave of {n:,} would reach all {campaign.total:,} recipients; "
                                     "make it smaller than the audience")
    if options.send_at is not None and (options.canary or options.spread_minutes is not None):
        raise _problem("sendAt", "a local-time send goes out in waves by time zone; it cannot also have a "
                                 "canary or a spread")
    if options.spread_minutes is not None and campaign.delivery_mode != DeliveryMode.BATCH:
        raise _problem("spreadMinutes", "spreading a send needs batch delivery (realtime is never throttled)")


def spread_rate(campaign: Campaign, channel_rate: float) -> float | None:
    """The campaign's own messages-per-second cap, never above the channel's; None when not spread."""
    if not campaign.spread_minutes:
        return None
    return min(channel_rate, max(campaign.total / (campaign.spread_minutes * 60), 0.01))


# -- pause, resume, halt, hold ----------------------------------------------------------------

def _paused(reason: str, by: str) -> dict:
    return dict(paused_reason=reason[:1000], paused_at=utcnow(), paused_by=by[:300])


_RESUMED = dict(paused_reason=None, paused_at=None, paused_by=None)


def pause(campaign_id: int, actor: Actor) -> Campaign:
    """sending -> paused by a person: running slices stop at their next step; nothing more is sent."""
    campaign = lifecycle.transition(campaign_id, "pause", actor, note={"reason": f"paused by {actor.label}"},
                                    **_paused(f"paused by {actor.label}", actor.label))
    db.session.commit()
    return campaign


def halt(campaign_id: int, reason: str) -> bool:
    """The automatic halt (in the caller's transaction): sending -> paused by the system."""
    try:
        lifecycle.transition(campaign_id, "halt", SYSTEM, note={"reason": reason},
                             **_paused(f"automatic halt: {reason}", SYSTEM.label))
    except LifecycleError:
        return False
    return True


def _open_canary_chunks(campaign_id: int) -> int:
    return db.session.scalar(select(func.count()).select_from(CampaignChunk).where(
        CampaignChunk.campaign_id == campaign_id, CampaignChunk.wave == 1, CampaignChunk.done.is_(False)))


def canary_finished(campaign: Campaign) -> bool:
    return campaign.canary_state == "sending" and campaign.planned_at is not None \
        and _open_canary_chunks(campaign.id) == 0


def hold_canary(campaign_id: int) -> None:
    """The first wave is done: hold for a look (or halt when its failures break the rule)."""
    campaign = db.session.get(Campaign, campaign_id)
    processed = campaign.sent + campaign.failed
    if campaign.halt_percent is not None and processed and campaign.failed * 100 / processed > campaign.halt_percent:
        reason = (f"{campaign.failed:,} of the canary's {processed:,} deliveries failed "
                  f"({campaign.failed * 100 / processed:.1f}%), above {campaign.halt_percent:g}%")
        if halt(campaign_id, reason):
            db.session.commit()
        return
    try:
        held = lifecycle.transition(campaign_id, "hold", SYSTEM, note={"reason": CANARY_WAITING},
                                    canary_state="held", **_paused(CANARY_WAITING, SYSTEM.label))
    except LifecycleError:
        return
    db.session.commit()
    if held.canary_hold_minutes:
        jobs.enqueue_canary_timer(campaign_id, held.paused_at, timedelta(minutes=held.canary_hold_minutes))


def resume(campaign_id: int, actor: Actor) -> Campaign:
    """paused -> sending. After a canary hold (or a halt once the wave was done) this is Continue:
    the rest of the audience is planned; otherwise the open chunks are handed to the queue again
    and carry on where they stopped (a recipient is never sent twice: rows, not jobs, say what is left)."""
    campaign = campaign_service.get(campaign_id)
    if campaign.status != S.PAUSED:
        raise LifecycleError(f"Campaign is {campaign.status}; only a paused campaign can be resumed.",
                             [{"field": "status", "message": campaign.status}])
    continuing = campaign.canary_state == "held" or canary_finished(campaign)
    extra = dict(canary_state="done", planned_at=None) if continuing else {}
    was = {"reason": campaign.paused_reason}
    campaign = lifecycle.transition(campaign_id, "continue" if continuing else "resume", actor, note=was,
                                    **_RESUMED, **extra)
    db.session.commit()
    guard.reset(campaign_id)
    if continuing or campaign.planned_at is None:
        jobs.enqueue_start(campaign_id)
        return campaign
    reopened = _reopen_chunks(campaign_id)
    if not reopened:
        lifecycle.finish_if_done(campaign_id)
    return campaign_service.get(campaign_id)


def _reopen_chunks(campaign_id: int) -> int:
    """Every open chunk gets a new run and job (a run still holding a lease keeps its chunk:
    the new run finds the lease taken and ends). A timed wave still ahead keeps its time."""
    from dashboard.services import recipient_time

    now = utcnow()
    rows = db.session.execute(
        update(CampaignChunk).where(CampaignChunk.campaign_id == campaign_id, CampaignChunk.done.is_(False))
        .values(run=CampaignChunk.run + 1,
                enqueued_at=case((CampaignChunk.enqueued_at > now, CampaignChunk.enqueued_at), else_=now))
        .returning(CampaignChunk.id, CampaignChunk.run, CampaignChunk.wave)
        .execution_options(synchronize_session=False)).all()
    db.session.commit()
    campaign = db.session.get(Campaign, campaign_id)
    dues = recipient_time.wave_dues(campaign_id) if campaign.wave_count else {}
    for delay, batch in sorted(recipient_time.group_by_due(rows, dues, utcnow()).items()):
        jobs.enqueue_chunks(batch, urgent=jobs.is_urgent(campaign), delay=delay, campaign_id=campaign_id)
    return len(rows)


def continue_after_hold(campaign_id: int, held_at: str) -> bool:
    """The canary's hold time elapsed: continue, unless someone acted meanwhile."""
    campaign = db.session.get(Campaign, campaign_id)
    if campaign is None or campaign.status != S.PAUSED or campaign.canary_state != "held" \
            or campaign.paused_at is None or campaign.paused_at != datetime.fromisoformat(held_at):
        return False
    try:
        resume(campaign_id, CANARY_TIMER)
    except LifecycleError:
        return False
    return True


def canary_sample(campaign: Campaign, *scope) -> int:
    """Mark the first wave: a random sample of the pending recipients (within `scope`, e.g. those
    outside their quiet hours), reproducible from the seed; its size is judged on all pending."""
    pending = (Recipient.campaign_id == campaign.id, Recipient.status == RecipientStatus.PENDING)
    ids = db.session.scalars(select(Recipient.id).where(*pending, *scope).order_by(Recipient.id)).all()
    everyone = db.session.scalar(select(func.count()).select_from(Recipient).where(*pending)) if scope else len(ids)
    n = min(canary_count(everyone, campaign.canary_size, campaign.canary_percent), len(ids))
    chosen = sorted(random.Random(campaign.canary_seed).sample(ids, n))
    for i in range(0, len(chosen), 2000):
        db.session.execute(update(Recipient).where(Recipient.id.in_(chosen[i:i + 2000])).values(wave=1)
                           .execution_options(synchronize_session=False))
    return n


def canary_report(campaign: Campaign) -> dict:
    """The first wave's results for the hold: recipients, delivered, failed with the top reasons,
    reads and clicks (in-app)."""
    base = (Recipient.campaign_id == campaign.id, Recipient.wave == 1)
    counts = dict(db.session.execute(select(Recipient.status, func.count()).where(*base)
                                     .group_by(Recipient.status)).all())
    reasons = db.session.execute(
        select(Recipient.last_error, func.count().label("n")).where(*base, Recipient.status == RecipientStatus.FAILED)
        .group_by(Recipient.last_error).order_by(func.count().desc()).limit(5)).all()
    size = sum(counts.values())
    return {"recipients": size, "sent": counts.get(RecipientStatus.SENT, 0),
            "failed": counts.get(RecipientStatus.FAILED, 0), "pending": counts.get(RecipientStatus.PENDING, 0),
            "skipped": counts.get(RecipientStatus.SKIPPED, 0),
            "reasons": [{"reason": r.last_error or "failed", "count": r.n} for r in reasons],
            "read": campaign.read_count, "clicked": campaign.clicked_count}


# -- four-eyes -------------------------------------------------------------------------------

def approve_send(campaign_id: int, actor: Actor) -> Campaign:
    """A second account approves a large send; it starts now if its time has come."""
    campaign = campaign_service.get(campaign_id)
    if not campaign.awaiting_approval:
        raise LifecycleError(f"Campaign is {campaign.status} and not waiting for approval.",
                             [{"field": "status", "message": campaign.status}])
    if actor.account_id is None or actor.account_id == campaign.approval_requested_by_id:
        raise FourEyesRequired(f"{campaign.approval_requested_by} asked for this send; a different person "
                               "must approve it.")
    now = utcnow()
    done = db.session.execute(
        update(Campaign).where(Campaign.id == campaign_id, Campaign.status == S.SCHEDULED,
                               Campaign.approval_requested_by.is_not(None), Campaign.approved_at.is_(None))
        .values(approved_by=actor.label[:300], approved_at=now, updated_at=now)
        .execution_options(synchronize_session=False)).rowcount
    if done != 1:
        db.session.rollback()
        raise LifecycleError("The campaign changed meanwhile; reload and try again.")
    audit.record(actor, "campaign.send_approved", "campaign", campaign_id, from_status=S.SCHEDULED,
                 to_status=S.SCHEDULED, details={"requestedBy": campaign.approval_requested_by,
                                                 "recipients": campaign.total})
    db.session.commit()
    campaign = campaign_service.get(campaign_id)
    if campaign.scheduled_at is None or campaign.scheduled_at <= now:
        campaign = lifecycle.transition(campaign_id, "fire", actor, started_at=utcnow())
        db.session.commit()
        jobs.enqueue_start(campaign_id)
    return campaign
