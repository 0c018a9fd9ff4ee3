"""`{{ key }}` substitution and nothing else: no expressions, filters, attribute access
or template-engine features. Values are HTML-escaped where the output is HTML."""

from __future__ import annotations

import re
from collections.abc import Mapping
from urllib.parse import urlsplit

from markupsafe import escape

KEY_RE = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
PLACEHOLDER_RE = re.compile(r"\{\{\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\}\}")
VARIABLE_TYPES = ("string", "image", "action")
URL_TYPES = ("image", "action")
URL_FIELDS = ("imageUrl", "actionUrl")
HTTP_START_RE = re.compile(r"https?://", re.IGNORECASE)


def placeholders(text: str | None) -> list[str]:
    """Keys used in a text, in order of first appearance."""
    seen: dict[str, None] = {}
    for match in PLACEHOLDER_RE.finditer(text or ""):
        seen.setdefault(match.group(1), None)
    return list(seen)


def value_text(value) -> str:
    """The text a value renders as: image {url,...} -> url; action {type, data} -> data."""
    if value is None:
        return ""
    if isinstance(value, Mapping):
        inner = value.get("url", value.get("data", ""))
        return "" if inner is None else str(inner)
    return str(value)


LINE_BREAKS_RE = re.compile(r"[\r\n\u2028\u2029\u0085\x0b\x0c]+")


def fold_lines(text: str) -> str:
    """A single-line output (subject, title, header, URL) never carries a line break."""
    return LINE_BREAKS_RE.sub(" ", text)


def render(text: str | None, values: Mapping[str, object], *, html: bool = False, single_line: bool = False) -> str:
    """One pass over the text: a value that itself looks like `{{ x }}` stays literal."""

    def substitute(match: re.Match) -> str:
        value = value_text(values.get(match.group(1)))
        return str(escape(value)) if html else value

    # With html=True only the values are escaped: the markup around them is the author's.
    out = PLACEHOLDER_RE.sub(substitute, text) if text else ""
    return fold_lines(out) if single_line else out


def is_http_url(value: str) -> bool:
    try:
        parts = urlsplit(value.strip())
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.netloc) and " " not in value.strip()


def url_field_problem(text: str) -> str | None:
    """Why an imageUrl/actionUrl cannot be saved: it must be an http(s) URL, or start with
    http(s):// and have placeholders after it, or start with a placeholder (whose value is
    then held to the URL rule at input and the rendered URL checked again at send)."""
    text = text.strip()
    keys = placeholders(text)
    if not text or PLACEHOLDER_RE.match(text):
        return None
    if not keys:
        return None if is_http_url(text) else "must be an http(s) URL or start with a {{ variable }}"
    if not HTTP_START_RE.match(text) or not is_http_url(render(text, dict.fromkeys(keys, "x"))):
        return "must start with http:// or https:// (or with a {{ variable }} holding such a URL)"
    return None


def url_keys(channels: Mapping) -> frozenset[str]:
    """Variables that start a URL field: whatever their type, their values must be http(s) URLs."""
    keys = set()
    for content in channels.values():
        for field in URL_FIELDS:
            if match := PLACEHOLDER_RE.match((content.get(field) or "").strip()):
                keys.add(match.group(1))
    return frozenset(keys)


def check_value(var_type: str, value, *, starts_url: bool = False) -> str | None:
    """Why a value is unusable for a variable of this type (or, with starts_url, as the start of
    an imageUrl/actionUrl), or None when it is fine."""
    url_rule = var_type in URL_TYPES or starts_url
    if isinstance(value, str):  # the common case (every CSV cell): no further type checks
        return "must be an http(s) URL" if url_rule and not is_http_url(value) else None
    if isinstance(value, list) or (isinstance(value, Mapping) and var_type not in URL_TYPES):
        return "must be text"
    if not url_rule:
        return None
    url = value_text(value)
    if isinstance(value, Mapping) and var_type == "action" and value.get("type") == "custom" and not starts_url:
        return None if url else "an action needs data"
    return None if is_http_url(url) else "must be an http(s) URL"


def resolve(schema: list[dict], own: Mapping | None, campaign_defaults: Mapping | None = None,
            starts_url: frozenset[str] = frozenset()):
    """Values by precedence recipient > campaign default > schema default.

    Returns (values, missing_required_keys, problems) where problems maps key -> message;
    `starts_url` are the keys that start a URL field (see url_keys)."""
    own = own or {}
    campaign_defaults = campaign_defaults or {}
    values: dict[str, object] = {}
    missing: list[str] = []
    problems: dict[str, str] = {}
    for var in schema:
        key = var["key"]
        for source in (own, campaign_defaults):
            candidate = source.get(key)
            if candidate not in (None, ""):
                values[key] = candidate
                break
        else:
            default = var.get("defaultValue")
            if default not in (None, ""):
                values[key] = default
        if key not in values:
            if var.get("required"):
                missing.append(key)
            continue
        problem = check_value(var.get("type", "string"), values[key], starts_url=key in starts_url)
        if problem:
            problems[key] = problem
    return values, missing, problems
