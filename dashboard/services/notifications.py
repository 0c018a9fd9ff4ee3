"""One-call sends (a hidden campaign on the same engine) and the in-app feed."""

from __future__ import annotations

from sqlalchemy import func, select, update

from dashboard import jobs
from dashboard.errors import NotFound, ValidationError
from dashboard.extensions import db
from dashboard.models import Campaign, CampaignStatus, Notification, TemplateStatus, utcnow
from dashboard.recipients_csv.validation import user_id_problem
from dashboard.services import audit, campaigns, lifecycle, recipients
from dashboard.services.actor import Actor

MAX_TARGETS = 10_000


def send(data: dict, actor: Actor) -> Campaign:
    """Validate, store the targets as recipients of a `notification` campaign and start it
    at once; delivery is the campaign engine's (same jobs, same channel code)."""
    targets = data.get("targets")
    if not isinstance(targets, list) or not targets:
        raise ValidationError("targets must be a non-empty list of userIds.", [{"field": "targets"}])
    if len(targets) > MAX_TARGETS:
        raise ValidationError(f"target limit exceeded: at most {MAX_TARGETS:,} targets per call "
                              f"(got {len(targets):,}); use a campaign for more.",
                              [{"field": "targets", "message": "target limit exceeded"}])
    bad = [{"index": i, "message": p} for i, t in enumerate(targets)
           if (p := user_id_problem(t.strip()) if isinstance(t, str) else "userId must be a string")]
    if bad:
        raise ValidationError(f"{len(bad)} invalid target{'s' if len(bad) > 1 else ''}; nothing was sent.", bad[:1000])
    asks = {}
    for name in ("quietHours", "frequencyCap"):  # exempt unless the call asks
        value = data.get(name, False)
        if value is None:
            value = False
        if not isinstance(value, bool):
            raise ValidationError(f"{name} must be true or false.", [{"field": name, "message": "must be a boolean"}])
        asks[name] = value
    template_id = data.get("templateId")
    channel = data.get("channel") or "in_app"
    clean = campaigns.validate({"name": f"One-call: {template_id}", "templateId": template_id, "channel": channel,
                                "deliveryMode": "batch", "variables": data.get("variables") or {}})
    template = clean["template"]
    if template.status != TemplateStatus.APPROVED:
        raise ValidationError(f"The template “{template.name}” is {template.status}; only approved templates "
                              "can be sent.", [{"field": "templateId", "message": "not approved"}])
    campaign = Campaign(name=clean["name"], template=template, channel=clean["channel"], kind="notification",
                        delivery_mode="batch", variables=clean["variables"], status=CampaignStatus.DRAFT,
                        created_by=actor.label, quiet_hours=asks["quietHours"], frequency_cap=asks["frequencyCap"])
    db.session.add(campaign)
    db.session.flush()
    unique = list(dict.fromkeys(t.strip() for t in targets))
    recipients.bulk_upsert(campaign.id, [(u, {}, None) for u in unique])
    recipients.recount(campaign)
    lifecycle.check_ready(campaign)
    audit.record(actor, "notification.created", "campaign", campaign.id, to_status=CampaignStatus.DRAFT,
                 details={"targets": len(unique), "templateId": template.template_id})
    db.session.flush()
    campaign = lifecycle.transition(campaign.id, "send", actor, started_at=utcnow(), template_version=template.version)
    db.session.commit()
    jobs.enqueue_start(campaign.id, queue="realtime")
    return campaign


def page_of(stmt, limit: int, cursor_id: int | None) -> tuple[list, int | None]:
    """Feed rows newest first, `limit` of them after the cursor, and the next cursor's id (None: the end)."""
    if cursor_id is not None:
        stmt = stmt.where(Notification.id < cursor_id)
    rows = db.session.scalars(stmt.order_by(Notification.id.desc()).limit(limit + 1)).all()
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, (rows[-1].id if more and rows else None)


def feed(user_id: str, *, unread_only: bool, limit: int, cursor_id: int | None) -> tuple[list, int | None, int]:
    stmt = select(Notification).where(Notification.user_id == user_id)
    if unread_only:
        stmt = stmt.where(Notification.read_at.is_(None))
    rows, next_id = page_of(stmt, limit, cursor_id)
    unread = db.session.scalar(select(func.count()).select_from(Notification).where(
        Notification.user_id == user_id, Notification.read_at.is_(None)))
    return rows, next_id, unread


def _get(user_id: str, notification_id: int) -> Notification:
    note = db.session.get(Notification, notification_id)
    if note is None or note.user_id != user_id:
        raise NotFound(f"No notification {notification_id} for user {user_id}.")
    return note


def mark(user_id: str, notification_id: int, what: str) -> Notification:
    """Idempotent: the first read/click sets the time and bumps the campaign's counter."""
    note = _get(user_id, notification_id)
    now = utcnow()
    columns = ["read_at"] if what == "read" else ["clicked_at", "read_at"]
    for column in columns:
        field = getattr(Notification, column)
        changed = db.session.execute(update(Notification).where(Notification.id == note.id, field.is_(None))
                                     .values({column: now}).execution_options(synchronize_session=False))
        if changed.rowcount and note.campaign_id:
            counter = Campaign.read_count if column == "read_at" else Campaign.clicked_count
            db.session.execute(update(Campaign).where(Campaign.id == note.campaign_id)
                               .values({counter.key: counter + 1}).execution_options(synchronize_session=False))
    db.session.commit()
    db.session.refresh(note)
    return note
