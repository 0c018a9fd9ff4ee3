"""IANA time zone names (the CSV's `timezone` column, the campaign's fallback zone)."""

from __future__ import annotations

import zoneinfo
from functools import lru_cache

ZONE_FIELD = "timezone"  # the CSV column, kept with the row's values


@lru_cache(maxsize=1)
def zone_names() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def valid_zone(name) -> bool:
    return isinstance(name, str) and name in zone_names()


def zone_problem(name: str) -> str | None:
    if valid_zone(name):
        return None
    shown = name if len(name) <= 40 else name[:40] + "…"
    return f'"{shown}" is not an IANA time zone name (e.g. Europe/Paris, Asia/Kolkata, UTC)'
