"""Reads for pages and the API: lists, lookups, pagination. No writes here."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import BigInteger, Select, String, func, or_, select
from sqlalchemy.orm import joinedload, selectinload

from dashboard import rendering
from dashboard.errors import ValidationError
from dashboard.extensions import db
from dashboard.inputs import MAX_BIG_ID, MAX_ID
from dashboard.models import Account, ApiKey, AuditEvent, Campaign, Recipient, Template, TemplateVersion, User
from dashboard.services import channel_settings
from dashboard.services.campaigns import send_version

MAX_LIMIT = 100


@dataclass
class Page:
    items: list
    next_cursor: str | None


def encode_cursor(last_id: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"id": last_id}).encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None, maximum: int = MAX_BIG_ID) -> int | None:
    """The id inside a cursor: a whole number the id column can hold, or a 400."""
    if not cursor:
        return None
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        value = json.loads(base64.urlsafe_b64decode(padded))["id"]
    except (ValueError, KeyError, TypeError, IndexError):
        value = None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= maximum:
        raise ValidationError("cursor is not valid; use nextCursor from the previous page",
                              [{"field": "cursor", "message": "not a valid cursor"}])
    return value


def parse_limit(raw, default: int = 50) -> int:
    if raw in (None, ""):
        return default
    try:
        limit = int(raw)
    except (TypeError, ValueError):
        limit = -1
    if not 1 <= limit <= MAX_LIMIT:
        raise ValidationError(f"limit must be between 1 and {MAX_LIMIT}",
                              [{"field": "limit", "message": f"must be between 1 and {MAX_LIMIT}"}])
    return limit


def paginate(stmt: Select, id_column, limit: int, cursor: str | None, newest_first: bool = True) -> Page:
    """Keyset pagination on the id column (no OFFSET, no COUNT)."""
    after = decode_cursor(cursor, MAX_BIG_ID if isinstance(id_column.type, BigInteger) else MAX_ID)
    if after is not None:
        stmt = stmt.where(id_column < after if newest_first else id_column > after)
    order = id_column.desc() if newest_first else id_column.asc()
    rows = db.session.scalars(stmt.order_by(order).limit(limit + 1)).all()
    more = len(rows) > limit
    rows = rows[:limit]
    return Page(rows, encode_cursor(rows[-1].id) if more and rows else None)


def templates(status: str | None = None, search: str | None = None, *, limit: int = 50,
              cursor: str | None = None) -> Page:
    stmt = select(Template).options(selectinload(Template.versions))  # the list shows each one's channels
    if status:
        stmt = stmt.where(Template.status == status)
    if search:
        like = f"%{search.strip().lower()}%"
        stmt = stmt.where(or_(Template.name.ilike(like), Template.template_id.ilike(like),
                              Template.category.ilike(like)))
    return paginate(stmt, Template.id, limit, cursor)


def campaigns(status: str | None = None, search: str | None = None, *, limit: int = 50,
              cursor: str | None = None, kind: str = "campaign") -> Page:
    stmt = select(Campaign).options(joinedload(Campaign.template)).where(Campaign.kind == kind)
    if status:
        stmt = stmt.where(Campaign.status == status)
    if search:
        stmt = stmt.where(Campaign.name.ilike(f"%{search.strip()}%"))
    return paginate(stmt, Campaign.id, limit, cursor)


def recipients(campaign_id: int, status: str | None = None, user_id: str | None = None, *,
               limit: int = 50, cursor: str | None = None) -> Page:
    """One page of a campaign's recipients; uses the (campaign_id, ...) indexes, never counts."""
    stmt = select(Recipient).where(Recipient.campaign_id == campaign_id)
    if status:
        stmt = stmt.where(Recipient.status == status)
    if user_id:
        prefix = user_id.strip().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        stmt = stmt.where(Recipient.user_id.like(f"{prefix}%", escape="\\"))
    return paginate(stmt, Recipient.id, limit, cursor, newest_first=False)


RECIPIENTS_PER_PAGE = 50
SEARCH_COUNT_CAP = 10_000  # a search's matches are counted up to here ("10,000+"), never all of them


@dataclass
class RecipientsTable:
    """One numbered page of a campaign's recipients ("51–100 of 30,000") and the links around it."""

    items: list
    page: int
    total: int             # matching rows: the campaign's counters, or a bounded count for a search
    total_capped: bool     # a search with more than SEARCH_COUNT_CAP matches
    columns: list[dict]    # the template's variables: key, label
    cells: list[list[tuple[str, str]]]  # per row, per column: (text, "own" | "default" | "none")
    next_cursor: str | None
    prev_cursor: str | None

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // RECIPIENTS_PER_PAGE))

    @property
    def first(self) -> int:
        return (self.page - 1) * RECIPIENTS_PER_PAGE + 1 if self.items else 0

    @property
    def last(self) -> int:
        return self.first + len(self.items) - 1 if self.items else 0

    def numbers(self) -> list[int | None]:
        """Page numbers to link: first, last and two either side of this one (None is a gap)."""
        wanted = sorted({1, self.pages, *range(max(1, self.page - 2), min(self.pages, self.page + 2) + 1)})
        out: list[int | None] = []
        for n in wanted:
            if out and n - out[-1] > 1:
                out.append(None)
            out.append(n)
        return out


def _like_prefix(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def campaign_schema(campaign: Campaign) -> list[dict]:
    """The variables of the template version a campaign sends (pinned once sent, else the current one)."""
    if campaign.template_version:
        schema = db.session.scalar(select(TemplateVersion.variable_schema).where(
            TemplateVersion.template_pk == campaign.template_pk, TemplateVersion.version == campaign.template_version))
        if schema is not None:
            return schema
    return send_version(campaign).variable_schema  # the picked version, else the newest approved


def _cells(columns: list[dict], defaults: dict, variables) -> list[tuple[str, str]]:
    own = variables if isinstance(variables, dict) else {}
    out = []
    for column in columns:
        key = column["key"]
        if own.get(key) not in (None, ""):
            out.append((rendering.value_text(own[key]), "own"))
        elif defaults.get(key) not in (None, "") or column.get("defaultValue") not in (None, ""):
            out.append((rendering.value_text(defaults.get(key) or column.get("defaultValue")), "default"))
        else:
            out.append(("", "none"))
    return out


def recipients_table(campaign: Campaign, status: str | None = None, search: str | None = None, *, page: int = 1,
                     after: str | None = None, before: str | None = None) -> RecipientsTable:
    """A numbered page: next/previous by keyset (ids), a jumped-to page by offset from the nearer end.
    N comes from the campaign's counters; only a search counts rows, and at most SEARCH_COUNT_CAP + 1."""
    size = RECIPIENTS_PER_PAGE
    where = [Recipient.campaign_id == campaign.id]
    if status:
        where.append(Recipient.status == status)
    search = (search or "").strip()
    if search:
        where.append(or_(Recipient.user_id.like(_like_prefix(search), escape="\\"),
                         func.lower(Recipient.email).like(_like_prefix(search.lower()), escape="\\")))
        total = db.session.scalar(select(func.count()).select_from(
            select(Recipient.id).where(*where).limit(SEARCH_COUNT_CAP + 1).subquery()))
    else:
        total = getattr(campaign, status) if status else campaign.total
    capped = total > SEARCH_COUNT_CAP and bool(search)
    total = min(total, SEARCH_COUNT_CAP) if capped else total
    pages = max(1, -(-total // size))
    page = min(max(page, 1), pages) if not capped else max(page, 1)
    stmt = select(Recipient).where(*where)
    after_id, before_id = decode_cursor(after), decode_cursor(before)
    if after_id is not None:
        rows = db.session.scalars(stmt.where(Recipient.id > after_id).order_by(Recipient.id).limit(size)).all()
    elif before_id is not None:
        rows = db.session.scalars(stmt.where(Recipient.id < before_id).order_by(Recipient.id.desc())
                                  .limit(size)).all()[::-1]
    elif (page - 1) * size > total // 2 and not capped:
        start, end = (page - 1) * size, min(page * size, total)
        rows = db.session.scalars(stmt.order_by(Recipient.id.desc()).offset(total - end)
                                  .limit(max(end - start, 0))).all()[::-1]
    else:
        rows = db.session.scalars(stmt.order_by(Recipient.id).offset((page - 1) * size).limit(size)).all()
    if not rows and page > 1 and (after_id or before_id):  # rows moved under the cursor: start over
        return recipients_table(campaign, status, search, page=1)
    columns = [{"key": v["key"], "label": v.get("label") or v["key"], "defaultValue": v.get("defaultValue")}
               for v in campaign_schema(campaign) if v.get("key")]
    defaults = dict(campaign.variables or {})
    more = page * size < total or (capped and len(rows) == size)
    return RecipientsTable(rows, page, total, capped, columns,
                           [_cells(columns, defaults, r.variables) for r in rows],
                           encode_cursor(rows[-1].id) if rows and more else None,
                           encode_cursor(rows[0].id) if rows and page > 1 else None)


def recipients_for_export(campaign_id: int, batch: int = 5000):
    """Every recipient of a campaign, streamed in id order in batches."""
    last = 0
    while True:
        rows = db.session.scalars(select(Recipient).where(Recipient.campaign_id == campaign_id, Recipient.id > last)
                                  .order_by(Recipient.id).limit(batch)).all()
        if not rows:
            return
        yield from rows
        last = rows[-1].id
        db.session.expunge_all()


def users(search: str | None, *, limit: int = 50, after: str | None = None) -> list[User]:
    stmt = select(User)
    if search:
        like = f"%{search.strip()}%"
        stmt = stmt.where(or_(User.user_id.ilike(like), User.name.ilike(like), User.email.ilike(like)))
    if after:
        stmt = stmt.where(User.user_id > after)
    return db.session.scalars(stmt.order_by(User.user_id).limit(limit)).all()


def deliveries_for_user(user_id: str, limit: int = 100) -> list:
    """Every campaign and one-call send that targeted a user, newest first (uses ix_recipients_user_id)."""
    stmt = (select(Recipient, Campaign).join(Campaign, Campaign.id == Recipient.campaign_id)
            .where(Recipient.user_id == user_id).order_by(Recipient.id.desc()).limit(limit))
    return db.session.execute(stmt).all()


AUDIT_ACTIONS = {  # the action filter: plain label -> the recorded actions it covers
    "Campaign created or copied": ("campaign.created", "campaign.duplicated", "campaign.retry_failed"),
    "Campaign edited": ("campaign.edited",),
    "Recipients changed": ("campaign.recipients_added", "campaign.recipients_imported",
                           "campaign.recipients_cleared"),
    "Sent, scheduled or cancelled": ("campaign.send", "campaign.schedule", "campaign.fire", "campaign.unschedule",
                                     "campaign.cancel", "campaign.complete", "campaign.fail"),
    "Test sends": ("campaign.test_sent",),
    "Campaign deleted": ("campaign.deleted",),
    "One-call notifications": ("notification.created",),
    "Templates": ("template.created", "template.edited", "template.approved", "template.archived"),
    "Accounts and API keys": ("account.created", "account.role_changed", "account.activated",
                              "account.deactivated", "api_key.created", "api_key.revoked"),
    "Channel settings": ("channel.updated", "channel.secret_rotated"),
}


@dataclass
class AuditFilters:
    campaign: str = ""          # a campaign's name (part of it) or its number
    account_id: int | None = None
    action: str = ""            # a key of AUDIT_ACTIONS
    since: datetime | None = None
    until: datetime | None = None  # exclusive

    @property
    def active(self) -> bool:
        return bool(self.campaign or self.account_id or self.action or self.since or self.until)


def audit_events(filters: AuditFilters, *, limit: int = 50, cursor: str | None = None) -> Page:
    stmt = select(AuditEvent)
    if filters.account_id is not None:
        if not 0 < filters.account_id <= MAX_ID:
            return Page([], None)  # no such account (and beyond what the column holds)
        stmt = stmt.where(AuditEvent.actor_account_id == filters.account_id)
    if filters.campaign:
        text = filters.campaign.strip()
        ids = select(func.cast(Campaign.id, String)).where(Campaign.name.ilike(f"%{text}%"))
        match = AuditEvent.target_id.in_(ids)
        if text.lstrip("#").isdigit() and len(text) < 12:
            match = or_(match, AuditEvent.target_id == text.lstrip("#"))
        stmt = stmt.where(AuditEvent.target_type == "campaign", match)
    if filters.action in AUDIT_ACTIONS:
        stmt = stmt.where(AuditEvent.action.in_(AUDIT_ACTIONS[filters.action]))
    if filters.since:
        stmt = stmt.where(AuditEvent.at >= filters.since)
    if filters.until:
        stmt = stmt.where(AuditEvent.at < filters.until)
    return paginate(stmt, AuditEvent.id, limit, cursor)


@dataclass
class AuditRow:
    event: AuditEvent
    summary: str            # "approved template", "edited template (new draft version 2)"
    target_name: str        # "Spring sale", "Welcome email", "ann@example.com"
    target_link: tuple[str, dict] | None  # (endpoint, url_for arguments) when the target still exists
    note: str = ""          # a short plain-language detail


def _n(count, word: str) -> str:
    count = count if isinstance(count, int) else 0
    return f"{count:,} {word}{'' if count == 1 else 's'}"


def _summary(e: AuditEvent, names: dict) -> tuple[str, str]:
    d = e.details or {}
    version = d.get("version")
    source = names.get(("campaign", str(d.get("from")))) if d.get("from") else None
    simple = {
        "campaign.created": "created campaign", "campaign.edited": "edited campaign",
        "campaign.deleted": "deleted draft campaign", "campaign.send": "started sending campaign",
        "campaign.fire": "started the scheduled send of campaign", "campaign.unschedule": "unscheduled campaign",
        "campaign.cancel": "cancelled campaign", "campaign.complete": "finished sending campaign",
        "notification.created": "sent a one-call notification", "template.created": "created template",
        "template.archived": "archived template", "account.created": "created account",
        "account.activated": "reactivated account", "account.deactivated": "deactivated account",
        "api_key.created": "created API key", "api_key.revoked": "revoked API key",
        "channel.updated": "changed the settings of channel", "channel.secret_rotated": "rotated the signing secret of",
    }
    action = e.action
    if action == "campaign.schedule":
        when = str(d.get("scheduled_at") or "")[:16].replace("T", " ")
        return "scheduled campaign", f"for {when} UTC" if when else ""
    if action == "campaign.fail":
        return "campaign failed", d.get("failure_reason") or ""
    if action == "campaign.recipients_added":
        merged = d.get("merged") if isinstance(d.get("merged"), int) else 0
        return f"added {_n(d.get('added'), 'recipient')} to", f"{merged:,} already there" if merged else ""
    if action == "campaign.recipients_imported":
        return f"imported {_n(d.get('imported'), 'recipient')} into", "from a CSV file" if d.get("source") else ""
    if action == "campaign.recipients_cleared":
        return f"removed all {_n(d.get('removed'), 'recipient')} from", ""
    if action == "campaign.duplicated":
        return "copied campaign", f"from “{source}”" if source else ""
    if action == "campaign.retry_failed":
        return "copied failed recipients to a new draft", f"from “{source}”" if source else ""
    if action == "campaign.test_sent":
        return f"sent a test of campaign to {_n(d.get('targets'), 'recipient')}", ", ".join(d.get("to") or [])[:200]
    if action == "template.edited":
        if e.from_status == "approved":
            return f"edited template (new draft version {version})", "the approved version stays live until approved"
        return f"edited template draft (version {version})" if version else "edited template draft", ""
    if action == "template.approved":
        return f"approved template (version {version})" if version else "approved template", ""
    if action == "account.role_changed":
        return "changed the role of", f"{e.from_status} → {e.to_status}"
    if action == "account.created":
        return "created account", f"role {d['role']}" if d.get("role") else ""
    if action == "campaign.edited" and d.get("defaults"):
        return "set default values in campaign", ", ".join(d["defaults"])
    return simple.get(action, action.replace("_", " ").replace(".", ": ")), ""


def audit_rows(events: list[AuditEvent]) -> list[AuditRow]:
    """Each event in plain words, with its target's name (one query per kind of target)."""
    wanted: dict[str, set[str]] = {}
    for e in events:
        wanted.setdefault(e.target_type, set()).add(e.target_id)
        if (e.details or {}).get("from"):
            wanted.setdefault("campaign", set()).add(str(e.details["from"]))
    names: dict[tuple[str, str], str] = {}
    ints = {k: [int(i) for i in v if i.isdigit() and len(i) < 12] for k, v in wanted.items()}
    if ints.get("campaign"):
        names.update({("campaign", str(i)): n for i, n in db.session.execute(
            select(Campaign.id, Campaign.name).where(Campaign.id.in_(ints["campaign"])))})
    if wanted.get("template"):
        names.update({("template", t): n for t, n in db.session.execute(
            select(Template.template_id, Template.name).where(Template.template_id.in_(wanted["template"])))})
    if ints.get("account"):
        names.update({("account", str(i)): n for i, n in db.session.execute(
            select(Account.id, Account.email).where(Account.id.in_(ints["account"])))})
    if ints.get("api_key"):
        names.update({("api_key", str(i)): f"{n or 'key'} ({p}…)" for i, n, p in db.session.execute(
            select(ApiKey.id, ApiKey.name, ApiKey.prefix).where(ApiKey.id.in_(ints["api_key"])))})
    channel_names = {"in_app": "In-app feed", "email": "Email", "webhook": "Webhook"}
    links = {"campaign": ("campaigns.show", "campaign_id", int), "template": ("templates.show", "template_id", str)}
    rows = []
    for e in events:
        key = (e.target_type, e.target_id)
        name = names.get(key) or channel_names.get(e.target_id if e.target_type == "channel" else "")
        link = None
        if key in names and e.target_type in links:
            endpoint, arg, kind = links[e.target_type]
            link = (endpoint, {arg: kind(e.target_id)})
        if not name:  # gone since: the event may remember what it was called
            d = e.details or {}
            name = d.get("name") or d.get("email") or f"{e.target_type.replace('_', ' ')} #{e.target_id}"
            if e.target_type == "campaign" and d.get("name"):
                name += " (deleted)"
        summary, note = _summary(e, names)
        rows.append(AuditRow(e, summary, name, link, note))
    return rows


def engagement(campaign: Campaign) -> dict:
    delivered = campaign.sent if campaign.channel == "in_app" else campaign.sent

    def rate(n: int) -> float:
        return round(100 * n / delivered, 1) if delivered else 0.0

    return {"delivered": delivered, "read": campaign.read_count, "clicked": campaign.clicked_count,
            "readRate": rate(campaign.read_count), "clickRate": rate(campaign.clicked_count)}


def delivery_timeline(campaign: Campaign, buckets: int = 30) -> list[tuple[int, int]]:
    """Deliveries per time bucket from the recipients' sent_at (one aggregate query)."""
    if not campaign.started_at or not campaign.sent:
        return []
    end = campaign.completed_at or campaign.progress_at or campaign.started_at
    span = max((end - campaign.started_at).total_seconds(), 1.0)
    width = max(span / buckets, 1.0)
    dialect = db.session.get_bind().dialect.name
    if dialect == "postgresql":
        seconds = func.extract("epoch", Recipient.sent_at - campaign.started_at)
    else:
        seconds = (func.julianday(Recipient.sent_at) - func.julianday(campaign.started_at.replace(tzinfo=None))) * 86400
    bucket = func.floor(seconds / width)
    rows = db.session.execute(select(bucket, func.count()).where(
        Recipient.campaign_id == campaign.id, Recipient.sent_at.is_not(None)).group_by(bucket)).all()
    counts = {int(b or 0): n for b, n in rows}
    last = max(counts) if counts else 0
    return [(i, counts.get(i, 0)) for i in range(0, max(last, buckets - 1) + 1)][: buckets + 1]


REALTIME_JOBS_PER_SECOND = 50  # one forked job per recipient on one worker (measured ~80/s)


@dataclass
class Estimate:
    seconds: int
    rate: float
    limited_by: str  # "the channel's rate limit" or "one job per recipient"


def send_estimate(campaign: Campaign) -> Estimate:
    """How long a send will take: batch sends run at the channel's rate limit (the shared bucket)."""
    if campaign.delivery_mode == "realtime":
        rate, why = float(REALTIME_JOBS_PER_SECOND), "one job per recipient"
    else:
        rate, why = channel_settings.get(campaign.channel).rate_limit, "the channel's rate limit"
    return Estimate(int(-(-campaign.total // max(rate, 0.001))), rate, why)


def recent_failures(campaign: Campaign, limit: int = 5) -> list:
    """The latest failed recipients with their reasons, for the live status."""
    return db.session.execute(
        select(Recipient.user_id, Recipient.last_error, Recipient.updated_at)
        .where(Recipient.campaign_id == campaign.id, Recipient.status == "failed")
        .order_by(Recipient.id.desc()).limit(limit)).all()


def schedule_zone(campaign: Campaign) -> str | None:
    """The zone the marketer picked when scheduling (kept in the schedule's audit row), or the
    offset the time was given with (API callers), e.g. "America/New_York" or "-05:00"."""
    details = db.session.scalar(
        select(AuditEvent.details).where(AuditEvent.target_type == "campaign",
                                         AuditEvent.target_id == str(campaign.id),
                                         AuditEvent.action == "campaign.schedule")
        .order_by(AuditEvent.id.desc()).limit(1)) or {}
    if details.get("timezone"):
        return details["timezone"]
    raw = details.get("scheduled_at") or ""
    return raw[-6:] if len(raw) > 6 and raw[-6] in "+-" and raw[-3] == ":" else None


@dataclass
class MissingRequired:
    keys: list[str]
    count: int
    examples: list[str]


def missing_required(campaign: Campaign, examples: int = 5) -> MissingRequired | None:
    """Recipients left without a value for a required variable (send refuses them), before anyone presses Send."""
    defaults = campaign.variables or {}
    keys = [v["key"] for v in send_version(campaign).variable_schema if v.get("required")
            and defaults.get(v["key"]) in (None, "") and v.get("defaultValue") in (None, "")]
    if not keys or not campaign.total:
        return None
    where = (Recipient.campaign_id == campaign.id,
             or_(*[or_(Recipient.variables[k].as_string().is_(None), Recipient.variables[k].as_string() == "")
                   for k in keys]))
    count = db.session.scalar(select(func.count()).select_from(Recipient).where(*where))
    if not count:
        return None
    few = db.session.scalars(select(Recipient.user_id).where(*where).order_by(Recipient.id).limit(examples)).all()
    return MissingRequired(keys, count, list(few))


@dataclass(frozen=True)
class Outcome:
    """A campaign's badge: what happened, in words, and its tone (a status-* CSS class)."""
    label: str
    tone: str


def outcome(campaign: Campaign) -> Outcome:
    """"sent", "sent · 200 failed" (amber), "failed", "cancelled · 8,000 sent"; else the status."""
    status, sent, failed = campaign.status, campaign.sent, campaign.failed
    if status == "sent" and failed:
        return Outcome(f"sent · {failed:,} failed", "status-sent-partial")
    if status == "cancelled" and sent:
        return Outcome(f"cancelled · {sent:,} sent", "status-cancelled")
    return Outcome(status, f"status-{status}")


def state_flash(campaign: Campaign) -> tuple[str, str]:
    """(category, message): a flash saying what a campaign is doing now, for a page that watched
    it change state (the flash shown when it was sent would no longer be true)."""
    c = campaign
    if c.status == "sending":
        return "success", f"Sending to {c.total:,} recipients."
    if c.status == "sent":
        if c.failed:
            return "warning", f"Finished: {c.sent:,} sent, {c.failed:,} failed."
        return "success", f"Finished: sent to all {c.sent:,} recipients."
    if c.status == "failed":
        reason = (c.failure_reason or "too many deliveries failed").rstrip(".")
        return "error", f"The send stopped: {reason}."
    if c.status == "cancelled":
        return "info", f"Cancelled: {c.sent:,} sent, {c.skipped:,} skipped."
    return "info", f"The campaign is {c.status}."


def retried_in(campaign: Campaign) -> Campaign | None:
    """The newest draft made from this campaign's failed recipients, if any."""
    return db.session.scalar(select(Campaign).where(Campaign.retry_of_id == campaign.id)
                             .order_by(Campaign.id.desc()).limit(1))


def retry_of(campaign: Campaign) -> Campaign | None:
    """The campaign whose failed recipients this one was copied from."""
    return db.session.get(Campaign, campaign.retry_of_id) if campaign.retry_of_id else None


@dataclass
class TestSendOutcome:
    campaign: Campaign          # the hidden test campaign
    rows: list                  # (target, status, last_error) per target
    to: list[str]

    @property
    def finished(self) -> bool:
        return self.campaign.status not in ("draft", "scheduled", "sending")


def latest_test(campaign_id: int) -> TestSendOutcome | None:
    """The draft's most recent test send and each target's outcome (at most 10 rows)."""
    event = db.session.scalar(select(AuditEvent).where(
        AuditEvent.target_type == "campaign", AuditEvent.target_id == str(campaign_id),
        AuditEvent.action == "campaign.test_sent").order_by(AuditEvent.id.desc()).limit(1))
    test_id = (event.details or {}).get("testCampaignId") if event else None
    test = db.session.get(Campaign, test_id) if isinstance(test_id, int) else None
    if test is None:
        return None
    rows = db.session.execute(select(Recipient.user_id, Recipient.status, Recipient.last_error)
                              .where(Recipient.campaign_id == test.id).order_by(Recipient.id).limit(20)).all()
    return TestSendOutcome(test, rows, list((event.details or {}).get("to") or []))
