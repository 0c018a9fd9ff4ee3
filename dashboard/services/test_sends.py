"""A draft's test send: a hidden campaign of kind "test" (like one-call sends) that delivers the
draft's template through its channel to a few chosen userIds or email addresses, at once, with
"[Test]" on what recipients see. The draft's counters and engagement never include it."""

from __future__ import annotations

from sqlalchemy import func, select

from dashboard import jobs
from dashboard.errors import LifecycleError, ValidationError
from dashboard.extensions import db
from dashboard.models import Campaign, CampaignStatus, Recipient, utcnow
from dashboard.recipients_csv.validation import EMAIL_RE, user_id_problem
from dashboard.services import audit, campaigns, lifecycle, recipients
from dashboard.services.actor import Actor

KIND = "test"
MAX_TARGETS = 10
PREFIX = "[Test] "
LABELLED = ("title", "subject")  # the fields that carry the "[Test] " label


def labelled(content: dict) -> dict:
    """A test message's content: its title/subject start with "[Test] "."""
    return {k: (PREFIX + v if k in LABELLED and isinstance(v, str) else v) for k, v in content.items()}


def _clean(targets) -> list[str]:
    if not isinstance(targets, list) or not targets:
        raise ValidationError("Enter at least one userId or email address to send the test to.",
                              [{"field": "targets", "message": "must be a non-empty list"}])
    unique = list(dict.fromkeys(t.strip() for t in targets if isinstance(t, str) and t.strip()))
    if len(unique) > MAX_TARGETS or len(targets) > 100:
        raise ValidationError(f"A test goes to at most {MAX_TARGETS} recipients (got {len(unique)}).",
                              [{"field": "targets", "message": f"at most {MAX_TARGETS}"}])
    problems = [{"field": f"targets[{i}]", "message": "must be a userId or an email address"}
                for i, t in enumerate(targets) if not isinstance(t, str) or not t.strip()]
    problems += [{"field": "targets", "message": f"“{t}”: {p}"} for t in unique
                 if "@" not in t and (p := user_id_problem(t))]
    problems += [{"field": "targets", "message": f"“{t}”: not a valid email address"} for t in unique
                 if "@" in t and not EMAIL_RE.match(t)]
    if problems or not unique:
        first = problems[0]["message"] if problems else "no targets"
        raise ValidationError(f"Not sent: {first}.", problems or [{"field": "targets", "message": first}])
    return unique


def _rows(draft: Campaign, targets: list[str]) -> list[tuple[str, dict, str | None]]:
    """Each target as the draft's recipient would get it; ids not in the draft get its defaults."""
    ids = [t for t in targets if "@" not in t]
    emails = [t.lower() for t in targets if "@" in t]
    found = {r.user_id: r for r in db.session.execute(select(Recipient.user_id, Recipient.variables, Recipient.email)
                                                      .where(Recipient.campaign_id == draft.id,
                                                             Recipient.user_id.in_(ids)))} if ids else {}
    by_email = {r.email.lower(): r for r in db.session.execute(
        select(Recipient.user_id, Recipient.variables, Recipient.email)
        .where(Recipient.campaign_id == draft.id, func.lower(Recipient.email).in_(emails)))} if emails else {}
    rows = []
    for t in targets:
        if "@" in t:
            r = by_email.get(t.lower())
            rows.append((t, dict(r.variables or {}) if r else {}, t))
        else:
            r = found.get(t)
            rows.append((t, dict(r.variables or {}) if r else {}, r.email if r else None))
    return rows


def send(campaign_id: int, targets, actor: Actor) -> Campaign:
    """Start a test of a draft; returns the hidden test campaign (sending)."""
    draft = campaigns.get(campaign_id)
    if draft.kind != "campaign":
        raise LifecycleError("Test sends are for campaigns.")
    if not draft.is_draft:
        raise LifecycleError(f"Campaign is {draft.status}; test sends are for drafts.")
    clean = _clean(targets)
    version = draft.template_version or draft.template.version
    test = Campaign(name=f"Test: {draft.name}"[:200], template=draft.template, channel=draft.channel, kind=KIND,
                    quiet_hours=False, frequency_cap=False,
                    delivery_mode="batch", variables=dict(draft.variables or {}), status=CampaignStatus.DRAFT,
                    failure_threshold=1.0, created_by=actor.label)
    db.session.add(test)
    db.session.flush()
    recipients.bulk_upsert(test.id, _rows(draft, clean))
    recipients.recount(test)
    audit.record(actor, "campaign.test_sent", "campaign", draft.id,
                 details={"testCampaignId": test.id, "targets": len(clean), "to": clean})
    db.session.flush()
    test = lifecycle.transition(test.id, "send", actor, started_at=utcnow(), template_version=version)
    db.session.commit()
    jobs.enqueue_start(test.id, queue="realtime")
    return test
