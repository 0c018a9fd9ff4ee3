"""The user directory: bulk upserts from the API or a CSV (the recipients CSV reader), with typed
attributes merged into users.attributes."""

from __future__ import annotations

import json
from zoneinfo import available_timezones

from sqlalchemy import String, any_, bindparam, func, literal, select
from sqlalchemy import column as sql_column
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

from dashboard.errors import ValidationError
from dashboard.extensions import db
from dashboard.inputs import text_problem
from dashboard.models import User, utcnow
from dashboard.models.base import UTCDateTime
from dashboard.recipients_csv.validation import EMAIL_RE, user_id_problem
from dashboard.services import attributes

MAX_USERS = 10_000
DIRECTORY_FIELDS = ("name", "email", "timezone")
_ZONES = None


def _zones() -> set[str]:
    global _ZONES
    if _ZONES is None:
        _ZONES = set(available_timezones())
    return _ZONES


def clean_user(entry) -> tuple[dict | None, str | None]:
    clean, _, problem = clean_user_field(entry)
    return clean, problem


def clean_user_field(entry) -> tuple[dict | None, str | None, str | None]:
    """(the directory row, None, None), or (None, the field at fault, why)."""
    if not isinstance(entry, dict):
        return None, None, "must be an object with a userId"
    user_id = entry.get("userId")
    problem = user_id_problem(user_id.strip()) if isinstance(user_id, str) else "userId is required"
    if problem:
        return None, "userId", problem
    clean = {"user_id": user_id.strip()}
    for field, column, limit in (("name", "name", 200), ("email", "email", 254), ("timezone", "timezone", 64)):
        value = entry.get(field)
        if value in (None, ""):
            clean[column] = None
            continue
        if not isinstance(value, str) or len(value) > limit:
            return None, field, f"{field} must be text of at most {limit} characters"
        if problem := text_problem(value):
            return None, field, f"{field} {problem}"
        clean[column] = value.strip()
    if clean["email"] and not EMAIL_RE.match(clean["email"]):
        return None, "email", f'"{clean["email"]}" is not a valid email address'
    if clean["timezone"] and clean["timezone"] not in _zones():
        return None, "timezone", f'"{clean["timezone"]}" is not a known time zone (use names like Europe/Oslo)'
    return clean, None, None


def attributes_problem(attrs, known: dict[str, str], new: dict[str, str]) -> tuple[str | None, str] | None:
    """The first (attribute name or None, problem) in one entry's attributes, or None. A name
    neither known nor in `new` is added to `new` with its first value's type."""
    if not isinstance(attrs, dict):
        return None, "attributes must be an object of name: value"
    if len(attrs) > attributes.MAX_PER_USER:
        return None, f"at most {attributes.MAX_PER_USER} attributes per user; this entry has {len(attrs)}"
    found = {}
    for name, value in attrs.items():
        if problem := attributes.name_problem(name):
            return name, problem
        if value is None:
            continue
        type_ = known.get(name) or new.get(name) or found.get(name)
        if type_ is None:
            try:
                type_ = found[name] = attributes.infer(value)
            except ValueError as err:
                return name, str(err)
        if problem := attributes.check(value, type_):
            return name, f"{name} is {attributes.ARTICLE[type_]} attribute; {problem}"
    for name, type_ in found.items():
        new.setdefault(name, type_)
    return None


def _error(index: int, name: str | None, message: str) -> dict:
    field = f"users[{index}].attributes" + (f".{name}" if name else "")
    return {"index": index, "field": field, "message": message}


def upsert(entries, types: dict[str, str] | None = None) -> dict:
    """Save the good entries, report the bad ones by index (partial success by design).
    `types` declares the type of new attribute names (the CSV preview's choices); otherwise a new
    name takes the type of its first value."""
    if not isinstance(entries, list) or not entries:
        raise ValidationError("Send a non-empty list of users.")
    if len(entries) > MAX_USERS:
        raise ValidationError(f"At most {MAX_USERS:,} users per call; this call has {len(entries):,}.")
    known = attributes.types()
    new = {n: t for n, t in (types or {}).items() if n not in known}
    good: dict[str, tuple[int, dict]] = {}
    errors = []
    for index, entry in enumerate(entries):
        clean, problem = clean_user(entry)
        if problem:
            errors.append({"index": index, "message": problem})
            continue
        attrs = entry.get("attributes")
        if attrs is not None and (found := attributes_problem(attrs, known, new)):
            errors.append(_error(index, *found))
            continue
        clean["attributes"] = attrs or {}
        if clean["user_id"] in good:  # a later entry for the same userId wins, attributes merged
            clean["attributes"] = {**good[clean["user_id"]][1]["attributes"], **clean["attributes"]}
        good[clean["user_id"]] = (index, clean)
    if new:
        registered = attributes.register(new)
        if any(registered.get(n) != t for n, t in new.items()):  # a racing call registered a name first
            good = _recheck(good, {**known, **registered}, errors)
    existing = _existing(list(good)) if good else {}
    crowded = [user_id for user_id, count in existing.items()
               if count + len(good[user_id][1]["attributes"]) > attributes.MAX_PER_USER]
    keys = _keys(crowded) if crowded else {}
    rows = []
    for user_id, (index, clean) in good.items():
        attrs = clean["attributes"]
        if user_id not in existing:
            clean["attributes"] = {n: v for n, v in attrs.items() if v is not None}
        elif user_id in keys:
            total = set(keys[user_id])
            total.update(n for n, v in attrs.items() if v is not None)
            total.difference_update(n for n, v in attrs.items() if v is None)
            if len(total) > attributes.MAX_PER_USER:
                errors.append(_error(index, None, f"at most {attributes.MAX_PER_USER} attributes per user; "
                                                  f"this user would have {len(total)}"))
                continue
        rows.append(clean)
    _save(rows)
    errors.sort(key=lambda e: e["index"])
    created = sum(1 for row in rows if row["user_id"] not in existing)
    return {"created": created, "updated": len(rows) - created, "errors": errors}


def _recheck(good: dict, known: dict[str, str], errors: list) -> dict:
    kept = {}
    for user_id, (index, clean) in good.items():
        if found := attributes_problem(clean["attributes"], known, {}):
            errors.append(_error(index, *found))
        else:
            kept[user_id] = (index, clean)
    return kept


def _postgres() -> bool:
    return db.session.get_bind().dialect.name == "postgresql"


def _among(ids: list[str]):
    """user_id in ids: one array parameter on PostgreSQL (not 10,000 bound values)."""
    if _postgres():
        return User.user_id == any_(bindparam("ids", ids, type_=ARRAY(String)))
    return User.user_id.in_(ids)


def _existing(ids: list[str]) -> dict[str, int]:
    """The ids already in the directory, with how many attributes each has."""
    keys = func.jsonb_object_keys if _postgres() else func.json_each
    count = select(func.count()).select_from(keys(User.attributes)).scalar_subquery()
    return dict(db.session.execute(select(User.user_id, count).where(_among(ids))).tuples().all())


def _keys(ids: list[str]) -> dict[str, list[str]]:
    return {u: list(a or {}) for u, a in db.session.execute(select(User.user_id, User.attributes)
                                                             .where(_among(ids))).tuples()}


def _save(rows: list[dict]) -> None:
    """One INSERT ... ON CONFLICT DO UPDATE: concurrent calls with the same new userId both
    succeed (the last one's values win) instead of racing on the primary key. Attributes merge:
    names not in the call are kept, a null removes one."""
    if not rows:
        db.session.commit()
        return
    now = utcnow()
    postgres = _postgres()
    rows = sorted(rows, key=lambda row: row["user_id"])  # one lock order for every call: no deadlocks
    stmt = (postgresql if postgres else sqlite).insert(User)
    if postgres:  # the whole call as one JSON parameter: one statement, one round trip
        source = func.jsonb_to_recordset(bindparam("rows", json.dumps(rows), type_=String).cast(JSONB)).table_valued(
            *(sql_column(name, String) for name in ("user_id", "name", "email", "timezone")),
            sql_column("attributes", JSONB)).render_derived(with_types=True)
        stamp = literal(now, UTCDateTime)
        stmt = stmt.from_select(["user_id", "name", "email", "timezone", "attributes", "created_at", "updated_at"],
                                select(*source.c, stamp, stamp).order_by(source.c.user_id))
    current = User.__table__.c.attributes
    merged = (func.jsonb_strip_nulls(current.op("||")(stmt.excluded.attributes)) if postgres
              else func.json_patch(current, stmt.excluded.attributes))
    stmt = stmt.on_conflict_do_update(index_elements=[User.user_id], set_={
        "name": stmt.excluded.name, "email": stmt.excluded.email, "timezone": stmt.excluded.timezone,
        "attributes": merged, "updated_at": stmt.excluded.updated_at})
    if postgres:
        db.session.execute(stmt)
    else:
        db.session.execute(stmt, [{**row, "created_at": now, "updated_at": now} for row in rows])
    db.session.commit()
