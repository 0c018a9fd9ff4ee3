"""Typed user attributes: the type rules (infer, check, parse a CSV cell) and the registry of
names and types in user_attributes. Values are stored as JSON: strings, numbers, true/false,
and dates as "YYYY-MM-DD" strings (ISO text compares correctly)."""

from __future__ import annotations

import math
import re
from datetime import date
from functools import lru_cache

from sqlalchemy import func, literal_column, select
from sqlalchemy.dialects import postgresql, sqlite

from dashboard.extensions import db
from dashboard.inputs import text_problem
from dashboard.models import User, UserAttribute

TYPES = ("string", "number", "boolean", "date")
NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
RESERVED = frozenset({"userId", "name", "email", "timezone"})
MAX_PER_USER = 50
MAX_STRING = 1_000
MAX_NUMBER = 2**53  # beyond this a JSON number is no longer exact in most readers
DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
NUMBER_RE = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)$")
BOOLEAN_TEXT = {"true": True, "yes": True, "false": False, "no": False}
ARTICLE = {"string": "a string", "number": "a number", "boolean": "a boolean", "date": "a date"}


@lru_cache(maxsize=4096)
def name_problem(name) -> str | None:
    """Why a name cannot be an attribute name, or None (cached: a bulk call repeats few names)."""
    if not isinstance(name, str) or not NAME_RE.match(name):
        shown = name if isinstance(name, str) and len(name) <= 40 else str(name)[:40] + "…"
        return (f'"{shown}" is not a valid attribute name (a letter or _, then letters, digits or _; '
                "at most 64 characters)")
    if name in RESERVED:
        return f"{name} is a directory column, not an attribute; send it as {name} on the user"
    return None


def _is_date(text: str) -> bool:
    if not DATE_RE.match(text):
        return False
    try:
        date.fromisoformat(text)
    except ValueError:
        return False
    return True


def infer(value) -> str:
    """The type a first value gives a new name; ValueError for what no attribute can hold."""
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "date" if _is_date(value) else "string"
    raise ValueError("an attribute value is text, a number, true/false or a YYYY-MM-DD date")


def _shown(value) -> str:
    if isinstance(value, str):
        text = value if len(value) <= 40 else value[:40] + "…"
        return f'"{text}"'
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return "an object" if isinstance(value, dict) else "a list"
    return str(value)[:40]


def check(value, type_: str) -> str | None:
    """Why value cannot be stored as an attribute of type_, or None."""
    if type_ == "string":
        if not isinstance(value, str):
            return f"{_shown(value)} is not a string"
        if len(value) > MAX_STRING:
            return f"a string attribute holds at most {MAX_STRING:,} characters; this one has {len(value):,}"
        if problem := text_problem(value):
            return f"the value {problem}"
        return None
    if type_ == "number":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return f"{_shown(value)} is not a number"
        if isinstance(value, float) and not math.isfinite(value):
            return f"{_shown(value)} is not a finite number"
        if abs(value) > MAX_NUMBER:
            return f"{_shown(value)} is out of range (at most ±{MAX_NUMBER:,})"
        return None
    if type_ == "boolean":
        return None if isinstance(value, bool) else f"{_shown(value)} is not true or false"
    if type_ == "date":
        if isinstance(value, str) and _is_date(value):
            return None
        return f"{_shown(value)} is not a date (YYYY-MM-DD, a real day)"
    return f"{type_} is not an attribute type"


def _parse_number(cell: str):
    if not NUMBER_RE.match(cell):
        raise ValueError(f"{_shown(cell)} is not a number")
    value = float(cell) if "." in cell else int(cell)
    if abs(value) > MAX_NUMBER:
        raise ValueError(f"{_shown(cell)} is out of range (at most ±{MAX_NUMBER:,})")
    return value


def _parse_boolean(cell: str):
    value = BOOLEAN_TEXT.get(cell.lower())
    if value is None:
        raise ValueError(f"{_shown(cell)} is not true/false or yes/no")
    return value


def _parse_date(cell: str):
    if not _is_date(cell):
        raise ValueError(f"{_shown(cell)} is not a date (YYYY-MM-DD, a real day)")
    return cell


_PARSERS = {"number": _parse_number, "boolean": _parse_boolean, "date": _parse_date}


def parse_text(text: str, type_: str):
    """A CSV cell as a value of type_ (surrounding spaces ignored but kept in strings);
    ValueError says why not."""
    parser = _PARSERS.get(type_)
    if parser is not None:
        return parser(text.strip())
    if type_ != "string":
        raise ValueError(f"{type_} is not an attribute type")
    if len(text) > MAX_STRING:
        raise ValueError(f"a string attribute holds at most {MAX_STRING:,} characters; this one has {len(text):,}")
    if problem := text_problem(text):
        raise ValueError(f"the value {problem}")
    return text


def infer_column(cells) -> str:
    """The narrowest type every non-empty cell of a CSV column parses as."""
    candidates = ["boolean", "number", "date"]
    for cell in cells:
        if not cell.strip():
            continue
        for type_ in list(candidates):
            try:
                parse_text(cell, type_)
            except ValueError:
                candidates.remove(type_)
        if not candidates:
            break
    return candidates[0] if candidates else "string"


def types() -> dict[str, str]:
    """The registry: attribute name -> type."""
    return dict(db.session.execute(select(UserAttribute.name, UserAttribute.type)).all())


def register(new: dict[str, str]) -> dict[str, str]:
    """Register new names with their types in one INSERT … ON CONFLICT DO NOTHING (a racing call
    that registered a name first wins) and return the registry's types for those names."""
    if not new:
        return {}
    dialect = postgresql if db.session.get_bind().dialect.name == "postgresql" else sqlite
    stmt = dialect.insert(UserAttribute).on_conflict_do_nothing(index_elements=[UserAttribute.name])
    db.session.execute(stmt, [{"name": n, "type": new[n]} for n in sorted(new)])
    return dict(db.session.execute(select(UserAttribute.name, UserAttribute.type)
                                   .where(UserAttribute.name.in_(list(new)))).all())


def usage() -> list[dict]:
    """Every registered attribute with how many users have it, in one grouped query."""
    if db.session.get_bind().dialect.name == "postgresql":
        keys = func.jsonb_object_keys(User.attributes).table_valued("key").render_derived("k")
    else:
        keys = func.json_each(User.attributes).table_valued("key")
    key = keys.c.key
    counts = select(key.label("name"), func.count().label("users")).select_from(User).join(
        keys, literal_column("1") == literal_column("1")).group_by(key).subquery()
    rows = db.session.execute(
        select(UserAttribute.name, UserAttribute.type, func.coalesce(counts.c.users, 0))
        .outerjoin(counts, counts.c.name == UserAttribute.name).order_by(UserAttribute.name)).all()
    return [{"name": name, "type": type_, "users": users} for name, type_, users in rows]


def display(value, type_: str) -> str:
    """A value as the user page shows it: numbers grouped, booleans as yes/no, dates spelled out."""
    if type_ == "number" and isinstance(value, (int, float)) and not isinstance(value, bool):
        return f"{value:,}"
    if type_ == "boolean" and isinstance(value, bool):
        return "yes" if value else "no"
    if type_ == "date" and isinstance(value, str) and _is_date(value):
        return date.fromisoformat(value).strftime("%-d %b %Y")
    return str(value)
