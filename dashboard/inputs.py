"""The one rule for text input, and the bounds on ids and JSON bodies. Every boundary applies
these (API bodies and parameters, path segments, dashboard forms, CSV cells); none restates
them. Plain Python: the CSV reader uses it too."""

from __future__ import annotations

import re

# C0 controls except tab, line feed and carriage return; and unpaired surrogates, which no
# database (nor UTF-8) can store.
FORBIDDEN_RE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff]")
MAX_ID = 2**31 - 1  # PostgreSQL `integer`: every id that appears in a URL
MAX_BIG_ID = 2**63 - 1  # PostgreSQL `bigint`: recipients and notifications
MAX_JSON_DEPTH = 20
MAX_JSON_BYTES = 10 * 1024 * 1024


def text_problem(value: str) -> str | None:
    """Why a text cannot be accepted, or None. The message never echoes the character itself."""
    match = FORBIDDEN_RE.search(value)
    if match is None:
        return None
    code = f"U+{ord(match.group()):04X}"
    if 0xD800 <= ord(match.group()) <= 0xDFFF:
        return f"is not valid Unicode text (an unpaired surrogate, {code})"
    return f"contains a control character ({code}); only tab and line breaks are allowed"


def json_problem(data, max_depth: int = MAX_JSON_DEPTH, texts: bool = True) -> tuple[str, str] | None:
    """The first (field, problem) in a parsed JSON document: too deep, or a key or string that
    breaks the text rule. Walks without recursion, keys included. `texts=False` checks the depth
    only: for a body whose raw text has no backslash, where (JSON allowing no raw control
    characters in strings, and UTF-8 no surrogates) no string can break the rule."""
    stack = [(data, "", 1)]
    while stack:
        value, path, depth = stack.pop()
        if isinstance(value, str):
            if texts and (problem := text_problem(value)):
                return path or "body", problem
        elif isinstance(value, (dict, list)):
            if depth > max_depth:
                return path or "body", f"is nested more than {max_depth} levels deep"
            if isinstance(value, dict):
                items = []
                for key, inner in value.items():
                    if not texts and not isinstance(inner, (dict, list)):
                        continue
                    child = f"{path}.{key}" if path else str(key)
                    if texts and (problem := text_problem(key)):
                        return path or "body", f"has a key that {problem}"
                    items.append((inner, child, depth + 1))
            else:
                items = [(inner, f"{path}[{i}]", depth + 1) for i, inner in enumerate(value)
                         if texts or isinstance(inner, (dict, list))]
            stack.extend(reversed(items))
    return None
