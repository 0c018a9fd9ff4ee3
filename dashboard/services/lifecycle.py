"""The campaign lifecycle of SPEC §3 in one place: one table of allowed moves, each move a
conditional UPDATE (so two racing requests cannot both win) plus an audit row; and the
engine's ends of a send (complete, fail, skip what is left)."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import insert, literal, or_, select, update

from dashboard import jobs, queries
from dashboard.channels import ChannelUnavailable
from dashboard.errors import LifecycleError, ValidationError
from dashboard.extensions import db
from dashboard.models import (
    Campaign,
    CampaignChunk,
    CampaignStatus,
    Recipient,
    RecipientStatus,
    TemplateStatus,
    utcnow,
)
from dashboard.services import audiences, audit, channel_settings, recipient_time, recipients
from dashboard.services import campaigns as campaign_service
from dashboard.services.actor import Actor
from dashboard.services.delivery import progress

S = CampaignStatus
# move -> (allowed from, to)
TRANSITIONS: dict[str, tuple[frozenset[str], str]] = {
    "send": (frozenset({S.DRAFT, S.SCHEDULED}), S.SENDING),
    "schedule": (frozenset({S.DRAFT}), S.SCHEDULED),
    "fire": (frozenset({S.SCHEDULED}), S.SENDING),
    "unschedule": (frozenset({S.SCHEDULED}), S.DRAFT),
    "request_approval": (frozenset({S.DRAFT}), S.SCHEDULED),  # four-eyes: waits for a second account
    "cancel": (frozenset({S.DRAFT, S.SCHEDULED, S.SENDING, S.PAUSED}), S.CANCELLED),
    "pause": (frozenset({S.SENDING}), S.PAUSED),  # a person
    "halt": (frozenset({S.SENDING}), S.PAUSED),  # the automatic halt
    "hold": (frozenset({S.SENDING}), S.PAUSED),  # the canary's first wave is done
    "resume": (frozenset({S.PAUSED}), S.SENDING),
    "continue": (frozenset({S.PAUSED}), S.SENDING),  # after the canary: the rest of the audience
    "complete": (frozenset({S.SENDING}), S.SENT),
    "fail": (frozenset({S.SENDING, S.PAUSED}), S.FAILED),
}
# A campaign waiting for four-eyes approval does not start until it is approved.
APPROVED_OR_NOT_NEEDED = or_(Campaign.approval_requested_by.is_(None), Campaign.approved_at.is_not(None))
_OPTION_COLUMNS = ("canary_size", "canary_percent", "canary_hold_minutes", "halt_percent", "halt_window",
                   "spread_minutes", "approval_requested_by", "send_at")
MAX_AHEAD = timedelta(days=365)
WORKER = Actor.system("worker")
FAILURE_MIN_PROCESSED = 200


def transition(campaign_id: int, move: str, actor: Actor, *, extra_where=(), note: dict | None = None,
               **values) -> Campaign:
    """Apply one move atomically or raise LifecycleError (409) naming the current status."""
    sources, target = TRANSITIONS[move]
    before = db.session.scalar(select(Campaign.status).where(Campaign.id == campaign_id))
    if before is None:
        campaign_service.get(campaign_id)  # raises NotFound
    now = utcnow()
    result = db.session.execute(
        update(Campaign)
        .where(Campaign.id == campaign_id, Campaign.status.in_(sources), *extra_where)
        .values(status=target, updated_at=now, **values)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:
        db.session.rollback()
        current = db.session.scalar(select(Campaign.status).where(Campaign.id == campaign_id))
        raise LifecycleError(f"Campaign is {current}; it cannot {move.replace('_', ' ')} from there.",
                             [{"field": "status", "message": current}])
    audit.record(actor, f"campaign.{move}", "campaign", campaign_id, from_status=before, to_status=target,
                 details={k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in values.items()
                          if k in ("scheduled_at", "template_version", "failure_reason")
                          or (k in _OPTION_COLUMNS and v is not None)} | (note or {}))
    campaign = db.session.get(Campaign, campaign_id)
    db.session.refresh(campaign)
    return campaign


def parse_scheduled_at(raw) -> datetime:
    """A non-empty ISO 8601 string with a UTC offset, in the future and at most 365 days ahead."""
    if not isinstance(raw, str) or not raw.strip():
        raise ValidationError("scheduledAt must be a non-empty ISO 8601 date-time with a UTC offset, "
                              "e.g. 2026-12-01T09:00:00+01:00; leave it out (or null) to send now.",
                              [{"field": "scheduledAt", "message": "must be a non-empty ISO 8601 date-time"}])
    text = raw.strip().replace("Z", "+00:00").replace("z", "+00:00")
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise ValidationError(f'scheduledAt "{raw[:40]}" is not an ISO 8601 date-time.',
                              [{"field": "scheduledAt", "message": "not ISO 8601"}]) from None
    if when.tzinfo is None or when.utcoffset() is None:
        raise ValidationError("scheduledAt has no UTC offset; add one (e.g. +00:00 or Z) so the time is unambiguous.",
                              [{"field": "scheduledAt", "message": "no UTC offset"}])
    now = utcnow()
    if when <= now:
        raise ValidationError("scheduledAt is in the past; pick a future time.",
                              [{"field": "scheduledAt", "message": "in the past"}])
    if when > now + MAX_AHEAD:
        raise ValidationError("scheduledAt is more than 365 days ahead.",
                              [{"field": "scheduledAt", "message": "too far ahead"}])
    return when


def check_ready(campaign: Campaign) -> None:
    """Send-time checks: recipients, an approved template, every required variable resolvable."""
    if campaign.total == 0:
        raise ValidationError("The campaign has no recipients; add some before sending.")
    template, version = campaign.template, campaign_service.send_version(campaign)
    if template.status == TemplateStatus.ARCHIVED or version.approved_at is None:
        raise ValidationError(f"The template “{template.name}” is {template.status}; approve it before sending.")
    try:
        channel_settings.build(campaign.channel)
    except ChannelUnavailable as err:
        raise ValidationError(str(err)) from None
    missing = queries.missing_required(campaign)
    if missing:
        few, count = missing.examples, missing.count
        raise ValidationError(
            f"{count:,} recipient{'s are' if count > 1 else ' is'} missing a required variable "
            f"({', '.join(missing.keys)}), e.g. {', '.join(few)}. Add the values or a campaign default.",
            [{"userId": u, "message": "missing required variable"} for u in few])


def send(campaign_id: int, scheduled_at_raw, actor: Actor, zone: str | None = None, options=None) -> Campaign:
    """Send now (scheduled_at_raw None), or schedule. Enqueued after the commit; with Redis down
    the change stands and the sweep starts it when Redis answers again. The zone the time was
    picked in (if any) is kept in the audit row, so pages can show the schedule in it.
    `options` (control.SendOptions): canary, automatic halt, spread — set when a draft is sent.
    With four-eyes on, a draft above the workspace's threshold waits (scheduled) for a second account.
    A draft's audience that is not frozen is materialised first, in the same transaction."""
    campaign = campaign_service.get(campaign_id)
    when = parse_scheduled_at(scheduled_at_raw) if scheduled_at_raw is not None else None
    if campaign.status not in TRANSITIONS["send"][0]:
        raise LifecycleError(f"Campaign is {campaign.status}; it cannot be sent.",
                             [{"field": "status", "message": campaign.status}])
    if when is not None and campaign.status != S.DRAFT:
        raise LifecycleError(f"Campaign is {campaign.status}; unschedule it before choosing a new time.")
    if campaign.awaiting_approval:
        raise LifecycleError(f"Campaign is waiting for a second person's approval (asked by "
                             f"{campaign.approval_requested_by}); it starts once approved.",
                             [{"field": "status", "message": "awaiting approval"}])
    if campaign.status == S.DRAFT and audiences.needs_materialising(campaign):
        # The snapshot is taken now (also for a schedule), inside this transaction: a refused send
        # rolls it back and leaves the draft as it was.
        campaign = campaign_service.lock_draft(campaign_id)
        try:
            audiences.materialise(campaign)
            return _send_checked(campaign, when, actor, zone, options)
        except Exception:
            db.session.rollback()
            raise
    return _send_checked(campaign, when, actor, zone, options)


def _send_checked(campaign: Campaign, when: datetime | None, actor: Actor, zone: str | None, options) -> Campaign:
    from dashboard.services import control, workspace

    campaign_id = campaign.id
    check_ready(campaign)
    pinned = {"template_version": campaign_service.send_version(campaign).version}  # the picked or newest approved
    if campaign.status == S.DRAFT:
        options = options or control.SendOptions()
        control.check_options(campaign, options)
        pinned |= options.values()
        if options.send_at is not None:  # waves by time zone: scheduled until the first one is due
            if when is not None:
                raise ValidationError("Give either scheduledAt or sendAt (each recipient's local time), not both.",
                                      [{"field": "sendAt", "message": "not with scheduledAt"}])
            now = utcnow()
            waves = recipient_time.plan_local(campaign, options.send_at, now, quiet=not options.ignore_quiet_hours)
            when = waves[0].due_at if waves and waves[0].due_at > now + timedelta(seconds=1) else None
        if workspace.four_eyes().send_needs_approval(campaign.total):
            campaign = transition(campaign_id, "request_approval", actor, scheduled_at=when,
                                  note={"timezone": zone} if zone else None, approval_requested_by=actor.label[:300],
                                  approval_requested_by_id=actor.account_id, approval_requested_at=utcnow(),
                                  approved_by=None, approved_at=None, **pinned)
            db.session.commit()
            if when is not None:
                jobs.enqueue_scheduled(campaign.id, when)
            return campaign
    elif campaign.wave_count:  # "Send now" on a scheduled local-time send: everyone now, no waves
        recipient_time.clear(campaign_id)
    if when is None:
        campaign = transition(campaign_id, "send", actor, started_at=utcnow(), **pinned)
        db.session.commit()
        jobs.enqueue_start(campaign.id)
    else:
        campaign = transition(campaign_id, "schedule", actor, scheduled_at=when,
                              note={"timezone": zone} if zone else None, **pinned)
        db.session.commit()
        jobs.enqueue_scheduled(campaign.id, when)
    return campaign


def unschedule(campaign_id: int, actor: Actor) -> Campaign:
    campaign = transition(campaign_id, "unschedule", actor, scheduled_at=None,  # the draft keeps its version
                          approval_requested_by=None, approval_requested_by_id=None, approval_requested_at=None,
                          approved_by=None, approved_at=None)
    recipient_time.clear(campaign_id)  # a local-time send's waves: all of them, none sent yet
    db.session.commit()
    db.session.refresh(campaign)
    return campaign


def cancel(campaign_id: int, actor: Actor) -> Campaign:
    """Stop a campaign; recipients not yet delivered become skipped. The status commits first:
    running slices see it at their next step and stop; what a channel accepted meanwhile is
    recorded as sent."""
    transition(campaign_id, "cancel", actor, completed_at=utcnow())
    db.session.commit()
    skip_pending(campaign_id)
    return campaign_service.get(campaign_id)


def finish_if_done(campaign_id: int) -> None:
    """sending -> sent when nothing is pending; -> failed past the failure threshold."""
    campaign = db.session.get(Campaign, campaign_id)
    db.session.refresh(campaign)
    if campaign.status != S.SENDING:
        return
    processed = campaign.sent + campaign.failed
    if processed >= FAILURE_MIN_PROCESSED and campaign.failed / processed > campaign.failure_threshold:
        fail(campaign_id, f"{campaign.failed:,} of {processed:,} deliveries failed, above the "
                          f"{campaign.failure_threshold:.0%} threshold")
        return
    if campaign.canary_state == "sending":
        from dashboard.services import control

        if control.canary_finished(campaign):
            control.hold_canary(campaign_id)
        return
    if campaign.pending > 0:
        return
    try:
        transition(campaign_id, "complete", WORKER, completed_at=utcnow())
    except LifecycleError:
        return
    _close_chunks(campaign_id)
    db.session.commit()


def fail(campaign_id: int, reason: str) -> None:
    """The campaign as a whole failed (channel unusable, too many failures): stop and skip the rest."""
    try:
        transition(campaign_id, "fail", WORKER, completed_at=utcnow(), failure_reason=reason[:1000])
        db.session.commit()
    except LifecycleError:
        return
    skip_pending(campaign_id)


def skip_pending(campaign_id: int) -> int:
    """Recipients not yet delivered become skipped; the counters move by the rows changed."""

    def skip() -> int:
        now = utcnow()
        skipped = db.session.execute(
            update(Recipient).where(Recipient.campaign_id == campaign_id, Recipient.status == RecipientStatus.PENDING)
            .values(status=RecipientStatus.SKIPPED, updated_at=now).execution_options(synchronize_session=False)
        ).rowcount
        progress.move(campaign_id, now, pending=-skipped, skipped=skipped)
        _close_chunks(campaign_id)
        db.session.commit()
        return skipped

    return progress.retrying(skip)


def _close_chunks(campaign_id: int) -> None:
    db.session.execute(update(CampaignChunk).where(CampaignChunk.campaign_id == campaign_id,
                                                   CampaignChunk.done.is_(False))
                       .values(done=True).execution_options(synchronize_session=False))


def _copy(campaign: Campaign, actor: Actor, name: str, only_failed: bool) -> Campaign:
    new = Campaign(name=name[:200], template_pk=campaign.template_pk, channel=campaign.channel,
                   delivery_mode=campaign.delivery_mode, variables=dict(campaign.variables),
                   failure_threshold=campaign.failure_threshold, status=S.DRAFT, created_by=actor.label,
                   retry_of_id=campaign.id if only_failed else None, track_clicks=campaign.track_clicks)
    if campaign.audience_kind is not None and not only_failed:
        # The copy keeps the audience choice, not the snapshot: it is materialised at its own send.
        new.audience_kind, new.audience_id = campaign.audience_kind, campaign.audience_id
        new.audience_name = campaign.audience_name
        db.session.add(new)
        db.session.flush()
        return new
    db.session.add(new)
    db.session.flush()
    columns = select(literal(new.id), Recipient.user_id, Recipient.variables, Recipient.email,
                     literal(RecipientStatus.PENDING.value), literal(0),
                     literal(utcnow(), Recipient.created_at.type))
    columns = columns.where(Recipient.campaign_id == campaign.id)
    if only_failed:
        columns = columns.where(Recipient.status == RecipientStatus.FAILED)
    db.session.execute(insert(Recipient).from_select(
        ["campaign_id", "user_id", "variables", "email", "status", "attempts", "created_at"], columns))
    recipients.recount(new)
    return new


def duplicate(campaign_id: int, actor: Actor) -> Campaign:
    campaign = campaign_service.get(campaign_id)
    new = _copy(campaign, actor, f"{campaign.name} (copy)", only_failed=False)
    audit.record(actor, "campaign.duplicated", "campaign", new.id, to_status=S.DRAFT,
                 details={"from": campaign.id, "recipients": new.total})
    db.session.commit()
    return new


def retry_failed(campaign_id: int, actor: Actor) -> Campaign:
    campaign = campaign_service.get(campaign_id)
    if campaign.status not in (S.SENT, S.FAILED, S.CANCELLED):
        raise LifecycleError(f"Campaign is {campaign.status}; retry failed recipients once it has finished.")
    if campaign.failed == 0:
        raise ValidationError("No recipient failed in this campaign; there is nothing to retry.")
    new = _copy(campaign, actor, f"{campaign.name} (retry failed)", only_failed=True)
    audit.record(actor, "campaign.retry_failed", "campaign", new.id, to_status=S.DRAFT,
                 details={"from": campaign.id, "recipients": new.total})
    db.session.commit()
    return new
