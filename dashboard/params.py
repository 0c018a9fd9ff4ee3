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


class IdConverter(IntegerConverter):
    """`<int:...>` matching only ids a PostgreSQL integer column holds; pass max= for bigint."""

    def __init__(self, map, fixed_digits: int = 0, min: int | None = None, max: int | None = MAX_ID,
                 signed: bool = False) -> None:
        super().__init__(map, fixed_digits=fixed_digits, min=min, max=max, signed=signed)


def init_app(app: Flask) -> None:
    """Call before any blueprint is registered (the converter applies to rules added later)."""
    app.url_map.converters["int"] = IdConverter
    app.before_request(check_parameters)
