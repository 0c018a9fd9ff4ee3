"""The one way the dashboard shows a time: in the viewer's zone, labelled with it, with a
relative part ("in 2 min", "3 h ago") and the exact UTC in the title; and the list of
zones a person may pick (canonical IANA names with their current UTC offsets)."""

from __future__ import annotations

import importlib.util
import os
import zoneinfo
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from functools import lru_cache

from flask import Flask, g
from flask_login import current_user
from markupsafe import Markup, escape

DEFAULT_ZONE = "UTC"
_UTC_ALIASES = {"UTC", "Etc/UTC", "Etc/UCT", "Etc/Universal", "Etc/Zulu", "UCT", "Universal", "Zulu",
                "Etc/GMT", "Etc/GMT0", "Etc/GMT+0", "Etc/GMT-0", "Etc/Greenwich", "GMT", "GMT0", "GMT+0",
                "GMT-0", "Greenwich"}


def _data_dirs() -> list[str]:
    """Where the IANA data files live: the system zoneinfo, then the tzdata package if installed."""
    dirs = list(zoneinfo.TZPATH)
    spec = importlib.util.find_spec("tzdata")
    if spec and spec.origin:
        dirs.append(os.path.join(os.path.dirname(spec.origin), "zoneinfo"))
    return dirs


def _read(name: str) -> list[str]:
    for directory in _data_dirs():
        path = os.path.join(directory, name)
        if os.path.isfile(path):
            with open(path, encoding="utf-8") as handle:
                return [line for line in handle.read().splitlines() if line and not line.startswith("#")]
    return []


@lru_cache(maxsize=1)
def canonical_zones() -> tuple[str, ...]:
    """zone.tab's zones (one per country region, no backward aliases such as US/Eastern or
    Asia/Calcutta) plus UTC; without zone.tab, the Area/City names Python knows."""
    names = {line.split("\t")[2] for line in _read("zone.tab") if line.count("\t") >= 2}
    if not names:
        names = {z for z in zoneinfo.available_timezones()
                 if "/" in z and not z.startswith(("Etc/", "SystemV/", "US/", "Canada/", "Brazil/", "Chile/",
                                                    "Mexico/"))}
    return tuple(sorted(names | {DEFAULT_ZONE}))


@lru_cache(maxsize=1)
def _links() -> dict[str, str]:
    """Old name -> current name, from tzdata.zi's link lines ("L target name")."""
    links = {}
    for line in _read("tzdata.zi"):
        parts = line.split()
        if len(parts) == 3 and parts[0] == "L":
            links[parts[2]] = parts[1]
    return links


def canonical(name: str | None) -> str | None:
    """A zone name as the picker lists it (Asia/Calcutta -> Asia/Kolkata), or None if unknown."""
    if not name:
        return None
    name = name.strip()
    zones = set(canonical_zones())
    if name in _UTC_ALIASES:
        return DEFAULT_ZONE
    if name in zones:
        return name
    target = _links().get(name)
    if target in _UTC_ALIASES:
        return DEFAULT_ZONE
    if target in zones:
        return target
    for alias, link_target in _links().items():  # a zone merged away: Europe/Oslo -> Europe/Berlin
        if link_target == name and alias in zones:
            return alias
    return None


def zone(name: str | None) -> tzinfo:
    """A tzinfo for an IANA name or a "+HH:MM" offset; UTC when unknown."""
    if name and name[0] in "+-" and len(name) == 6:
        try:
            hours, minutes = int(name[1:3]), int(name[4:6])
        except ValueError:
            return UTC
        delta = timedelta(hours=hours, minutes=minutes)
        return timezone(-delta if name[0] == "-" else delta)
    try:
        return zoneinfo.ZoneInfo(name) if name and name != DEFAULT_ZONE else UTC
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return UTC


def viewer_zone_name() -> str:
    """The signed-in account's zone (remembered from the browser, changeable), else UTC."""
    if "viewer_zone" not in g:
        name = getattr(current_user, "timezone", None) if current_user and current_user.is_authenticated else None
        g.viewer_zone = canonical(name) or DEFAULT_ZONE
    return g.viewer_zone


def offset_text(delta: timedelta | None) -> str:
    minutes = int((delta or timedelta()).total_seconds() // 60)
    sign = "-" if minutes < 0 else "+"
    return f"UTC{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def zone_label(tz: tzinfo) -> str:
    """"New York" for America/New_York, "UTC", or "UTC-05:00" for a bare offset."""
    key = getattr(tz, "key", None)
    if key is None:
        offset = tz.utcoffset(None)
        return "UTC" if not offset else offset_text(offset)
    if key == DEFAULT_ZONE:
        return "UTC"
    return key.rsplit("/", 1)[-1].replace("_", " ")


def relative(moment: datetime, now: datetime | None = None) -> str:
    """"in 2 min", "3 h ago", "just now": whole units rounded down, a unit used from two of the
    next larger one ("in 95 min", "in 47 h") so the text never looks a day early."""
    seconds = int((moment - (now or datetime.now(UTC))).total_seconds())
    future, span = seconds > 0, abs(seconds)
    if span < 60:
        return "in under a minute" if future else "just now"
    for size, unit, from_span in ((31_536_000, "yr", 2 * 31_536_000), (2_592_000, "mo", 60 * 86_400),
                                  (86_400, "day", 48 * 3600), (3600, "h", 120 * 60), (60, "min", 60)):
        if span >= from_span:
            count = span // size
            text = f"{count} {unit}{'s' if unit == 'day' and count > 1 else ''}"
            return f"in {text}" if future else f"{text} ago"
    return ""  # unreachable


def _clock(local: datetime, now_local: datetime, *, weekday: bool = True) -> str:
    date = f"{local:%a} {local.day} {local:%b}" if weekday else f"{local.day} {local:%b}"
    if local.year != now_local.year:
        date += f" {local.year}"
    return f"{date} {local:%H:%M}"


def parts(moment: datetime, picked: str | None = None, now: datetime | None = None) -> dict[str, str]:
    """The pieces every display uses: main text (in the picked zone, else the viewer's),
    relative text, the viewer's clock when the picked zone differs, and the exact UTC."""
    now = now or datetime.now(UTC)
    moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    viewer = zone(viewer_zone_name())
    shown = zone(picked) if picked else viewer
    local = moment.astimezone(shown)
    result = {"main": f"{_clock(local, now.astimezone(shown))} {zone_label(shown)}",
              "relative": relative(moment, now), "yours": "",
              "utc": f"{moment.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC",
              "iso": moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")}
    if picked and local.utcoffset() != moment.astimezone(viewer).utcoffset():
        mine = moment.astimezone(viewer)
        day = "" if mine.date() == local.date() else f"{mine:%a} "
        result["yours"] = f"{day}{mine:%H:%M} your time"
    return result


def when_text(moment: datetime | None, picked: str | None = None, default: str = "") -> str:
    """Plain text for flashes: "Thu 26 Nov 19:54 New York · in 2 min · 01:54 your time"."""
    if moment is None:
        return default
    p = parts(moment, picked)
    return " · ".join(x for x in (p["main"], p["relative"], p["yours"]) if x)


def when(moment: datetime | None, picked: str | None = None, default: str = "") -> Markup:
    """<time> for pages; static/js/app.js refreshes the [data-rel] part as time passes."""
    if moment is None:
        return escape(default)
    p = parts(moment, picked)
    yours = Markup(' · <span class="when-yours">{}</span>').format(p["yours"]) if p["yours"] else ""
    html = '<time class="when" datetime="{}" title="{}" data-when>{} · <span data-rel>{}</span>{}</time>'
    return Markup(html).format(p["iso"], p["utc"], p["main"], p["relative"], yours)


def zone_choices(now: datetime | None = None) -> list[tuple[str, str]]:
    """(name, "(UTC+09:00) Asia/Tokyo") for every canonical zone, ordered by current offset."""
    now = now or datetime.now(UTC)
    rows = []
    for name in canonical_zones():
        offset = now.astimezone(zone(name)).utcoffset()
        rows.append((offset, name, f"({offset_text(offset)}) {name.replace('_', ' ')}"))
    return [(name, label) for _, name, label in sorted(rows)]


def init_app(app: Flask) -> None:
    app.jinja_env.globals.update(when=when, zone_choices=zone_choices, viewer_zone_name=viewer_zone_name)
    app.jinja_env.filters["when"] = when
