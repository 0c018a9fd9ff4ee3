"""The user directory: bulk upserts from the API or a CSV (the recipients CSV reader)."""

from __future__ import annotations

from zoneinfo import available_timezones

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite

from dashboard.errors import ValidationError
from dashboard.extensions import db
from dashboard.inputs import text_problem
from dashboard.models import User, utcnow
from dashboard.recipients_csv import CsvError, read_csv
from dashboard.recipients_csv.reader import read_limited
from dashboard.recipients_csv.validation import EMAIL_RE, user_id_problem

MAX_USERS = 10_000
_ZONES = None


def _zones() -> set[str]:
    global _ZONES
    if _ZONES is None:
        _ZONES = set(available_timezones())
    return _ZONES


def clean_user(entry) -> tuple[dict | None, str | None]:
    if not isinstance(entry, dict):
        return None, "must be an object with a userId"
    user_id = entry.get("userId")
    problem = user_id_problem(user_id.strip()) if isinstance(user_id, str) else "userId is required"
    if problem:
        return None, problem
    clean = {"user_id": user_id.strip()}
    for field, column, limit in (("name", "name", 200), ("email", "email", 254), ("timezone", "timezone", 64)):
        value = entry.get(field)
        if value in (None, ""):
            clean[column] = None
            continue
        if not isinstance(value, str) or len(value) > limit:
            return None, f"{field} must be text of at most {limit} characters"
        if problem := text_problem(value):
            return None, f"{field} {problem}"
        clean[column] = value.strip()
    if clean["email"] and not EMAIL_RE.match(clean["email"]):
        return None, f'"{clean["email"]}" is not a valid email address'
    if clean["timezone"] and clean["timezone"] not in _zones():
        return None, f'"{clean["timezone"]}" is not a known time zone (use names like Europe/Oslo)'
    return clean, None


def upsert(entries) -> dict:
    """Save the good entries, report the bad ones by index (partial success by design)."""
    if not isinstance(entries, list) or not entries:
        raise ValidationError("Send a non-empty list of users.")
    if len(entries) > MAX_USERS:
        raise ValidationError(f"At most {MAX_USERS:,} users per call; this call has {len(entries):,}.")
    good: dict[str, dict] = {}
    errors = []
    for index, entry in enumerate(entries):
        clean, problem = clean_user(entry)
        if problem:
            errors.append({"index": index, "message": problem})
        else:
            good[clean["user_id"]] = clean  # a later entry for the same userId wins
    existing = set(db.session.scalars(select(User.user_id).where(User.user_id.in_(list(good))))) if good else set()
    _save(list(good.values()))
    return {"created": len(good) - len(existing), "updated": len(existing), "errors": errors}


def _save(rows: list[dict]) -> None:
    """One INSERT ... ON CONFLICT DO UPDATE: concurrent calls with the same new userId both
    succeed (the last one's values win) instead of racing on the primary key."""
    if not rows:
        return
    now = utcnow()
    dialect = postgresql if db.session.get_bind().dialect.name == "postgresql" else sqlite
    stmt = dialect.insert(User)
    stmt = stmt.on_conflict_do_update(index_elements=[User.user_id], set_={
        "name": stmt.excluded.name, "email": stmt.excluded.email, "timezone": stmt.excluded.timezone,
        "updated_at": stmt.excluded.updated_at})
    rows = sorted(rows, key=lambda row: row["user_id"])  # one lock order for every call: no deadlocks
    db.session.execute(stmt, [{**row, "created_at": now, "updated_at": now} for row in rows])
    db.session.commit()


def import_csv(stream) -> dict:
    """A CSV with userId and optional name, email, timezone columns (read like recipient CSVs)."""
    try:
        table = read_csv(read_limited(stream))
        index = {h.lower(): i for i, h in enumerate(table.header)}
        entries, rows = [], []
        for number, cells in table.rows:
            cells = (cells + [""] * len(table.header))[:len(table.header)]
            entry = {"userId": cells[table.user_id_index]}
            for field in ("name", "email", "timezone"):
                if field in index:
                    entry[field] = cells[index[field]]
            entries.append(entry)
            rows.append(number)
    except CsvError as err:
        raise ValidationError(err.message) from None
    result = {"created": 0, "updated": 0, "errors": []}
    for start in range(0, len(entries), MAX_USERS):
        part = upsert(entries[start:start + MAX_USERS])
        result["created"] += part["created"]
        result["updated"] += part["updated"]
        result["errors"] += [{"row": rows[start + e["index"]], "message": e["message"]} for e in part["errors"]]
    return result
