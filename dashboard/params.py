"""Path segments and query parameters of every request (dashboard and API) held to the text
rule of dashboard.inputs, and ids in URLs bounded to what their columns hold (else 404)."""

from __future__ import annotations

from flask import Flask, request
from werkzeug.routing import IntegerConverter

from dashboard.errors import ValidationError
from dashboard.inputs import MAX_ID, text_problem


def field_error(field: str, problem: str) -> ValidationError:
    return ValidationError(f"{field}: {problem}.", [{"field": field, "message": problem}])


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def check_parameters() -> None:
    if request.endpoint is None or request.endpoint == "static":
        return
    named = [(_camel(name), value) for name, value in (request.view_args or {}).items()]
    for name, value in [*named, *request.args.items(multi=True)]:
        if problem := text_problem(name):
            raise field_error("query", f"has a parameter name that {problem}")
        if isinstance(value, str) and (problem := text_problem(value)):
            raise field_error(name, problem)


def digits_up_to(limit: int) -> str:
    """A regex for the whole numbers 0..limit (no leading zeros past the shorter lengths)."""
    text = str(limit)
    parts = [rf"\d{{1,{len(text) - 1}}}"] if len(text) > 1 else []
    for i, digit in enumerate(int(c) for c in text):
        low = 1 if i == 0 and len(text) > 1 else 0
        rest = len(text) - i - 1
        if digit > low:
            parts.append(text[:i] + f"[{low}-{digit - 1}]" + (rf"\d{{{rest}}}" if rest else ""))
    return "(?:" + "|".join([*parts, text]) + ")"


class IdConverter(IntegerConverter):
    """`<int:...>` matching only ids a PostgreSQL integer column holds (pass max= for bigint).
    The range is in the regex: a range check in to_python would make werkzeug answer 405, not
    404, when another method's rule has the same path."""

    def __init__(self, map, max: int = MAX_ID) -> None:
        super().__init__(map, max=max)
        self.regex = digits_up_to(max)


def init_app(app: Flask) -> None:
    """Call before any blueprint is registered (the converter applies to rules added later)."""
    app.url_map.converters["int"] = IdConverter
    app.before_request(check_parameters)
