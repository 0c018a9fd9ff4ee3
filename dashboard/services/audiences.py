"""A campaign's audience from a saved segment or a list (issue 16).

A draft's recipients come from ONE source: hand-added/CSV recipients, or an audience. An audience
is materialised — the draft's recipients replaced by ONE `INSERT INTO recipients … SELECT` from
`users` filtered by the segment's compiled WHERE clause, or from the list's members LEFT JOIN
`users` — when someone presses "Freeze now", or else when the draft is sent or scheduled (inside
the send's own transaction, before its checks, so a refused send leaves nothing behind).
Per-user variables are the users' attributes named like the template's variables, built in SQL.
"""

from __future__ import annotations

from sqlalchemy import Text, cast, delete, func, insert, literal, select
from sqlalchemy.dialects import postgresql

from dashboard.errors import LifecycleError, ValidationError
from dashboard.extensions import db
from dashboard.models import (
    Campaign,
    ListMember,
    Recipient,
    RecipientStatus,
    Segment,
    User,
    UserAttribute,
    UserList,
    utcnow,
)
from dashboard.services import audit, recipients
from dashboard.services import campaigns as campaign_service
from dashboard.services.actor import Actor

SEGMENT, LIST = "segment", "list"
KINDS = (SEGMENT, LIST)
MAX_RECIPIENTS = 1_000_000  # the 100,000 limit stays for CSV uploads only
_FIELD = {SEGMENT: "audience.segmentId", LIST: "audience.listId"}


def parse(value, field: str = "audience") -> tuple[str, int] | None:
    """The API's `audience` value: {"segmentId": N} | {"listId": N} | null → (kind, id) | None."""
    if value is None:
        return None
    if not isinstance(value, dict) or len(value) != 1 or not ({"segmentId", "listId"} & value.keys()):
        raise ValidationError(f'{field} must be {{"segmentId": N}}, {{"listId": N}} or null.',
                              [{"field": field, "message": 'must be {"segmentId": N}, {"listId": N} or null'}])
    kind = SEGMENT if "segmentId" in value else LIST
    raw = value["segmentId" if kind == SEGMENT else "listId"]
    if isinstance(raw, bool) or not isinstance(raw, int) or not 0 < raw < 2**31:
        raise ValidationError(f"{_FIELD[kind]} must be a positive whole number.",
                              [{"field": _FIELD[kind], "message": "must be a positive whole number"}])
    return kind, raw


def source(kind: str, source_id: int, field: str | None = None) -> Segment | UserList:
    """The segment or list, or a 400 naming the field."""
    model = Segment if kind == SEGMENT else UserList
    found = db.session.get(model, source_id) if kind in KINDS else None
    if found is None:
        field = field or _FIELD.get(kind, "audience")
        noun = "segment" if kind == SEGMENT else "list"
        raise ValidationError(f"{field}: there is no {noun} {source_id}.",
                              [{"field": field, "message": f"no {noun} {source_id}"}])
    return found


def describe(campaign: Campaign) -> dict | None:
    """The API's `audience` field."""
    if campaign.audience_kind is None:
        return None
    frozen = campaign.audience_frozen_at
    return {"kind": campaign.audience_kind, "id": campaign.audience_id, "name": campaign.audience_name,
            "frozenAt": frozen.isoformat() if frozen else None, "size": campaign.audience_size}


def _noun(campaign: Campaign) -> str:
    return f"{'segment' if campaign.audience_kind == SEGMENT else 'list'} “{campaign.audience_name}”"


def _drop_recipients(campaign: Campaign) -> int:
    removed = campaign.total  # the counters are the rows (a rowcount is not reliable on every driver)
    db.session.execute(delete(Recipient).where(Recipient.campaign_id == campaign.id)
                       .execution_options(synchronize_session=False))
    campaign.total = campaign.pending = campaign.sent = campaign.failed = campaign.skipped = 0
    return removed


def set_audience(campaign_id: int, kind: str, source_id: int, actor: Actor, *, commit: bool = True) -> Campaign:
    """Choose a segment or list as a draft's audience. A draft with hand-added/CSV recipients is a
    409 (one source of recipients); an earlier audience's snapshot is dropped (the new one is
    materialised at freeze or send)."""
    campaign = campaign_service.lock_draft(campaign_id)
    try:
        chosen = source(kind, source_id)
    except ValidationError:
        db.session.rollback()
        raise
    if campaign.audience_kind is None and campaign.total:
        n = f"{campaign.total:,} recipient{'s' if campaign.total != 1 else ''}"
        db.session.rollback()
        raise LifecycleError(
            f"This draft has {n} added by hand or CSV; remove the {n} first, then choose an audience.",
            [{"field": "audience", "message": "the draft already has recipients"}])
    dropped = _drop_recipients(campaign) if campaign.total else 0
    campaign.audience_kind, campaign.audience_id, campaign.audience_name = kind, chosen.id, chosen.name[:200]
    campaign.audience_frozen_at = campaign.audience_size = None
    audit.record(actor, "campaign.audience_set", "campaign", campaign.id,
                 details={"kind": kind, "id": chosen.id, "name": chosen.name, "snapshotDropped": dropped})
    db.session.flush()
    if commit:
        db.session.commit()
    return campaign


def clear_audience(campaign_id: int, actor: Actor, *, commit: bool = True) -> Campaign:
    """Back to hand-picked/CSV recipients: the audience's materialised recipients are deleted."""
    campaign = campaign_service.lock_draft(campaign_id)
    if campaign.audience_kind is None:
        if commit:
            db.session.commit()
        return campaign
    before = {"kind": campaign.audience_kind, "id": campaign.audience_id, "name": campaign.audience_name}
    removed = _drop_recipients(campaign)
    campaign.audience_kind = campaign.audience_id = campaign.audience_name = None
    campaign.audience_frozen_at = campaign.audience_size = None
    audit.record(actor, "campaign.audience_cleared", "campaign", campaign.id, details=before | {"removed": removed})
    db.session.flush()
    if commit:
        db.session.commit()
    return campaign


def freeze(campaign_id: int, actor: Actor) -> Campaign:
    """Materialise now (again: a fresh snapshot replaces the last one)."""
    campaign = campaign_service.lock_draft(campaign_id)
    if campaign.audience_kind is None:
        db.session.rollback()
        raise LifecycleError("This draft has no audience to freeze; choose a segment or a list first.",
                             [{"field": "audience", "message": "no audience chosen"}])
    try:
        size = materialise(campaign)
    except Exception:
        db.session.rollback()
        raise
    audit.record(actor, "campaign.audience_frozen", "campaign", campaign.id,
                 details={"kind": campaign.audience_kind, "id": campaign.audience_id, "size": size})
    db.session.commit()
    return campaign


def _variables(keys: list[str], dialect: str):
    """The users' attributes named like the template's variables, as a JSON object without nulls
    (a user without any of them, or a list member outside the directory, gets {})."""
    if not keys:
        return literal("{}", Text) if dialect != "postgresql" else cast(literal("{}", Text), postgresql.JSON)
    if dialect == "postgresql":
        pairs = [part for key in keys for part in (cast(literal(key), Text), User.attributes[key])]
        return cast(func.jsonb_strip_nulls(func.jsonb_build_object(*pairs)), postgresql.JSON)
    pairs = [part for key in keys for part in (literal(key), func.json_extract(User.attributes, literal(f"$.{key}")))]
    return func.json_patch(literal("{}"), func.json_object(*pairs))  # json_patch drops the null members


def materialise(campaign: Campaign) -> int:
    """Replace the draft's recipients by the audience's users: one DELETE, one INSERT … SELECT
    (bounded at MAX_RECIPIENTS + 1 rows), one recount. The caller holds the draft (lock_draft or the
    send) and commits — or rolls back: this raises ValidationError for an empty or too large audience,
    or a segment/list that no longer exists."""
    chosen = source(campaign.audience_kind, campaign.audience_id, field="audience")
    campaign.audience_name = chosen.name[:200]
    dialect = db.session.get_bind().dialect.name
    keys = [v["key"] for v in campaign_service.send_version(campaign).variable_schema]
    if keys:  # only the variables that are attribute names cost work per row
        known = set(db.session.scalars(select(UserAttribute.name).where(UserAttribute.name.in_(keys))))
        keys = [k for k in keys if k in known]
    now = utcnow()
    head = (literal(campaign.id), )
    tail = (literal(RecipientStatus.PENDING.value), literal(0), literal(now, Recipient.created_at.type))
    if campaign.audience_kind == SEGMENT:
        from dashboard.services import segments

        where = segments.compile(chosen.definition)
        rows = select(*head, User.user_id, _variables(keys, dialect), User.email, *tail).where(where)
    else:
        rows = (select(*head, ListMember.user_id, _variables(keys, dialect), User.email, *tail)
                .select_from(ListMember).outerjoin(User, User.user_id == ListMember.user_id)
                .where(ListMember.list_id == chosen.id))
    rows = rows.limit(MAX_RECIPIENTS + 1)
    _drop_recipients(campaign)
    db.session.execute(insert(Recipient).from_select(
        ["campaign_id", "user_id", "variables", "email", "status", "attempts", "created_at"], rows)
        .execution_options(synchronize_session=False))
    recipients.recount(campaign)  # the INSERT's rowcount is not reliable on every driver: count once
    if campaign.total > MAX_RECIPIENTS:
        size = _size(campaign, chosen)
        raise ValidationError(
            f"The {_noun(campaign)} has {size:,} users; a campaign can reach at most {MAX_RECIPIENTS:,}. "
            "Narrow the segment or split the list.",
            [{"field": "audience", "message": f"{size:,} users, above {MAX_RECIPIENTS:,}"}])
    if campaign.total == 0:
        what = "matches no users" if campaign.audience_kind == SEGMENT else "has no members"
        raise ValidationError(f"The {_noun(campaign)} {what}; there is no one to send to.",
                              [{"field": "audience", "message": what}])
    campaign.audience_size = campaign.total
    campaign.audience_frozen_at = now
    db.session.flush()
    return campaign.total


def _size(campaign: Campaign, chosen) -> int:
    """The real size of an audience refused as too large (counted only on that path)."""
    if campaign.audience_kind == SEGMENT:
        from dashboard.services import segments

        return segments.count(chosen.definition)
    return db.session.scalar(select(func.count()).select_from(ListMember).where(ListMember.list_id == chosen.id))


def needs_materialising(campaign: Campaign) -> bool:
    return campaign.audience_kind is not None and campaign.audience_frozen_at is None

