"""Recipient writes in bulk: one statement per chunk (COPY on PostgreSQL), never one per row."""

from __future__ import annotations

import json
from collections.abc import Iterable

from sqlalchemy import delete, func, select, text

from dashboard import rendering
from dashboard.errors import LifecycleError, ValidationError
from dashboard.extensions import db
from dashboard.models import Campaign, Recipient, RecipientStatus, utcnow
from dashboard.recipients_csv.validation import user_id_problem
from dashboard.services import audit
from dashboard.services.actor import Actor
from dashboard.services.campaigns import lock_draft, send_version, validate_defaults

MAX_MANUAL = 10_000
CHUNK = 5_000

_UPSERT_TAIL = """
ON CONFLICT (campaign_id, user_id) DO UPDATE SET
    variables = excluded.variables, email = excluded.email, status = 'pending',
    attempts = 0, last_error = NULL, sent_at = NULL, updated_at = excluded.created_at
"""


def _copy_upsert(campaign_id: int, rows: list[tuple[str, dict, str | None]]) -> None:
    """PostgreSQL: COPY into a temporary table, then one INSERT ... ON CONFLICT."""
    now = utcnow()
    conn = db.session.connection()
    conn.execute(text("CREATE TEMP TABLE IF NOT EXISTS recipients_stage "
                      "(user_id varchar(128), variables text, email varchar(254)) ON COMMIT DELETE ROWS"))
    conn.execute(text("TRUNCATE recipients_stage"))
    raw = conn.connection.driver_connection
    with raw.cursor() as cur:
        with cur.copy("COPY recipients_stage (user_id, variables, email) FROM STDIN") as copy:
            for user_id, variables, email in rows:
                copy.write_row((user_id, json.dumps(variables, separators=(",", ":")), email))
    conn.execute(text(
        "INSERT INTO recipients (campaign_id, user_id, variables, email, status, attempts, created_at) "
        "SELECT :cid, user_id, variables::json, email, 'pending', 0, :now FROM recipients_stage" + _UPSERT_TAIL
    ), {"cid": campaign_id, "now": now})


def _executemany_upsert(campaign_id: int, rows: list[tuple[str, dict, str | None]]) -> None:
    now = utcnow().replace(tzinfo=None).isoformat(sep=" ")
    statement = text(
        "INSERT INTO recipients (campaign_id, user_id, variables, email, status, attempts, created_at) "
        "VALUES (:cid, :uid, :vars, :email, 'pending', 0, :now)" + _UPSERT_TAIL
    )
    for start in range(0, len(rows), CHUNK):
        chunk = rows[start:start + CHUNK]
        db.session.execute(statement, [
            {"cid": campaign_id, "uid": u, "vars": json.dumps(v, separators=(",", ":")), "email": e, "now": now}
            for u, v, e in chunk
        ])


def bulk_upsert(campaign_id: int, rows: list[tuple[str, dict, str | None]]) -> None:
    """Insert or replace recipients (the later values win); the caller commits."""
    if not rows:
        return
    if db.session.get_bind().dialect.name == "postgresql":
        _copy_upsert(campaign_id, rows)
    else:
        _executemany_upsert(campaign_id, rows)


def recount(campaign: Campaign) -> None:
    """Set the campaign's counters from one aggregate query (after bulk changes, not per page)."""
    rows = db.session.execute(select(Recipient.status, func.count()).where(Recipient.campaign_id == campaign.id)
                              .group_by(Recipient.status)).all()
    counts = {status: n for status, n in rows}
    campaign.pending = counts.get(RecipientStatus.PENDING, 0)
    campaign.sent = counts.get(RecipientStatus.SENT, 0)
    campaign.failed = counts.get(RecipientStatus.FAILED, 0)
    campaign.skipped = counts.get(RecipientStatus.SKIPPED, 0)
    campaign.total = sum(counts.values())


def _store(campaign: Campaign, rows: list[tuple[str, dict, str | None]]) -> tuple[int, int]:
    before = campaign.total
    bulk_upsert(campaign.id, rows)
    recount(campaign)
    added = campaign.total - before
    return added, len(rows) - added


def unresolved_required(schema: list[dict], campaign_defaults: dict) -> list[str]:
    """Required variables that neither the campaign nor the template gives a value."""
    return [v["key"] for v in schema if v.get("required")
            and campaign_defaults.get(v["key"]) in (None, "") and v.get("defaultValue") in (None, "")]


def _missing_required(user_ids: list[str], user_variables: dict, unresolved: list[str]) -> list[dict]:
    errors = []
    for index, user_id in enumerate(user_ids):
        own = user_variables.get(user_id.strip()) or {}
        missing = [key for key in unresolved if own.get(key) in (None, "")]
        if missing:
            errors.append({"index": index, "userId": user_id, "missing": missing,
                           "message": f"no value for required variable{'s' if len(missing) > 1 else ''} "
                                      f"{', '.join(missing)}"})
    return errors


def _no_audience(campaign: Campaign) -> None:
    """A draft's recipients come from one source: not by hand or CSV once it has an audience."""
    if campaign.audience_kind is not None:
        noun = "segment" if campaign.audience_kind == "segment" else "list"
        db.session.rollback()
        raise LifecycleError(f"This draft's audience is the {noun} “{campaign.audience_name}”; its recipients come "
                             "from there. Clear the audience first to add recipients by hand or CSV.",
                             [{"field": "audience", "message": f"the draft's audience is a {noun}"}])


def add_manual(campaign_id: int, user_ids, user_variables, actor: Actor,
               campaign_defaults: dict | None = None) -> dict:
    """Add up to 10,000 userIds; any invalid one rejects the whole call (with positions), and so does
    one left without a required variable. `campaign_defaults` are set on the campaign in the same
    transaction (the dashboard's one-step "set a default and add")."""
    if not isinstance(user_ids, list) or not user_ids:
        raise ValidationError("userIds must be a non-empty list of userIds.",
                              [{"field": "userIds", "message": "must be a non-empty list"}])
    if len(user_ids) > MAX_MANUAL:
        raise ValidationError(f"At most {MAX_MANUAL:,} userIds per call; this call has {len(user_ids):,}.",
                              [{"field": "userIds", "message": f"at most {MAX_MANUAL:,} per call"}])
    user_variables = {} if user_variables is None else user_variables
    if not isinstance(user_variables, dict):
        raise ValidationError("userVariables must be an object keyed by userId.")
    campaign = lock_draft(campaign_id)
    _no_audience(campaign)
    version = send_version(campaign)  # the version the campaign picked (or the newest approved)
    schema = version.variable_schema
    starts_url = rendering.url_keys(version.channels)
    errors: list[dict] = []
    for index, user_id in enumerate(user_ids):
        problem = user_id_problem(user_id.strip()) if isinstance(user_id, str) else "userId must be a string"
        if problem:
            errors.append({"index": index, "userId": user_id if isinstance(user_id, str) else None,
                           "message": problem})
    for user_id, values in user_variables.items():
        validate_defaults(values, schema, errors, field=f"userVariables.{user_id}", starts_url=starts_url)
    new_defaults = validate_defaults(campaign_defaults, schema, errors, starts_url=starts_url)
    if errors:
        db.session.rollback()
        positions = ", ".join(str(e["index"]) for e in errors if "index" in e)[:200]
        plural = "s" if len(errors) > 1 else ""
        message = (f"{len(errors)} invalid userId{plural} at position{plural} {positions}; nothing was added."
                   if positions else f"{errors[0]['field']}: {errors[0]['message']}; nothing was added.")
        raise ValidationError(message, errors[:1000])
    defaults = {**campaign.variables, **new_defaults}
    unresolved = unresolved_required(schema, defaults)
    missing = _missing_required(user_ids, user_variables, unresolved) if unresolved else []
    if missing:
        db.session.rollback()
        keys = [k for k in unresolved if any(k in e["missing"] for e in missing)]
        shown = ", ".join(e["userId"] for e in missing[:5]) + (", …" if len(missing) > 5 else "")
        raise ValidationError(
            f"{len(missing):,} userId{'s' if len(missing) > 1 else ''} would have no value for the required "
            f"variable{'s' if len(keys) > 1 else ''} {', '.join(keys)} ({shown}), and neither the campaign nor "
            "the template gives a default; nothing was added. Give each user a value or set a campaign default.",
            [{"field": f"variables.{k}", "variable": k, "message": "required, no campaign or template default"}
             for k in keys] + missing[:1000])
    if new_defaults:
        campaign.variables = defaults
        audit.record(actor, "campaign.edited", "campaign", campaign.id, details={"defaults": sorted(new_defaults)})
    merged_input: dict[str, tuple[dict, None]] = {}
    for user_id in user_ids:
        user_id = user_id.strip()
        merged_input.pop(user_id, None)
        merged_input[user_id] = ({k: v for k, v in (user_variables.get(user_id) or {}).items() if v not in (None, "")},
                                 None)
    rows = [(u, v, e) for u, (v, e) in merged_input.items()]
    added, merged = _store(campaign, rows)
    merged += len(user_ids) - len(rows)
    audit.record(actor, "campaign.recipients_added", "campaign", campaign.id,
                 details={"added": added, "merged": merged})
    db.session.commit()
    return {"added": added, "merged": merged, "total": campaign.total}


def import_accepted(campaign_id: int, accepted: Iterable[tuple[str, dict, str | None]], actor: Actor,
                    expected_revision: int | None = None, source: str = "csv") -> dict:
    """Import validated rows all-or-nothing (one transaction)."""
    campaign = lock_draft(campaign_id)
    _no_audience(campaign)
    if expected_revision is not None and campaign.revision != expected_revision + 1:
        db.session.rollback()
        raise LifecycleError("The campaign changed after this file was checked. Upload the file again.")
    rows = list(accepted)
    added, merged = _store(campaign, rows)
    audit.record(actor, "campaign.recipients_imported", "campaign", campaign.id,
                 details={"source": source, "imported": len(rows), "added": added, "merged": merged})
    db.session.commit()
    return {"imported": len(rows), "added": added, "merged": merged, "total": campaign.total}


def clear(campaign_id: int, actor: Actor) -> int:
    campaign = lock_draft(campaign_id)
    removed = campaign.total
    db.session.execute(delete(Recipient).where(Recipient.campaign_id == campaign.id))
    campaign.total = campaign.pending = campaign.sent = campaign.failed = campaign.skipped = 0
    campaign.audience_frozen_at = campaign.audience_size = None  # an audience's snapshot is gone with them
    audit.record(actor, "campaign.recipients_cleared", "campaign", campaign.id, details={"removed": removed})
    db.session.commit()
    return removed


def preview_rows(campaign: Campaign, rows: list[tuple[str, dict]]) -> list[dict]:
    """Render a few recipients as they would receive the campaign (plain text; pages escape it)."""
    version = send_version(campaign)
    content_key = "email" if campaign.channel == "email" else "in_app"
    content = version.channels.get(content_key, {})
    sample = []
    for user_id, own in rows:
        values, _, _ = rendering.resolve(version.variable_schema, own, campaign.variables)
        rendered = {field: rendering.render(text_, values) for field, text_ in content.items() if field != "html"}
        sample.append({"userId": user_id, "variables": values, "rendered": rendered})
    return sample
