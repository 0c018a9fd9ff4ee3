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


def check_value(var_type: str, value) -> str | None:
    """Why a value is unusable for a variable of this type, or None when it is fine."""
    if var_type in URL_TYPES:
        url = value_text(value)
        if isinstance(value, Mapping) and var_type == "action" and value.get("type") == "custom":
            return None if url else "an action needs data"
        if not is_http_url(url):
            return "must be an http(s) URL"
    elif isinstance(value, (Mapping, list)):
        return "must be text"
    return None


def resolve(schema: list[dict], own: Mapping | None, campaign_defaults: Mapping | None = None):
    """Values by precedence recipient > campaign default > schema default.

    Returns (values, missing_required_keys, problems) where problems maps key -> message."""
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
        problem = check_value(var.get("type", "string"), values[key])
        if problem:
            problems[key] = problem
    return values, missing, problems
