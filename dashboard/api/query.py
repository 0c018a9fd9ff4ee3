"""Query parameters of the API read strictly: a value the document does not allow is a 400
naming the parameter, never silently taken as the default."""

from __future__ import annotations

from collections.abc import Iterable

from flask import request

from dashboard import queries
from dashboard.errors import ValidationError

FLAGS = {"true": True, "false": False}


def _invalid(name: str, message: str) -> ValidationError:
    return ValidationError(f"{name} {message}", [{"field": name, "message": message}])


def choice(name: str, allowed: Iterable[str]) -> str | None:
    """One of `allowed`, or None when the parameter is absent."""
    value = request.args.get(name)
    allowed = [str(a) for a in allowed]
    if value is not None and value not in allowed:
        raise _invalid(name, f"must be one of {', '.join(allowed)}")
    return value


def flag(name: str) -> bool:
    """`true` or `false` (absent: false)."""
    value = request.args.get(name)
    if value is None:
        return False
    if value.lower() not in FLAGS:
        raise _invalid(name, "must be true or false")
    return FLAGS[value.lower()]


def limit(default: int = 50) -> int:
    """Page size: 1-100 (absent: the default; present but empty is not a number)."""
    raw = request.args.get("limit")
    if raw == "":
        raise _invalid("limit", f"must be a number between 1 and {queries.MAX_LIMIT}")
    return queries.parse_limit(raw, default=default)
