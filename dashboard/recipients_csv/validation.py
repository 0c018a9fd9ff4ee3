"""Rows -> clean recipients or {row, column, message} errors, against a variable schema."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from dashboard import rendering
from dashboard.inputs import text_problem
from dashboard.recipients_csv.reader import CsvTable
from dashboard.recipients_csv.zones import ZONE_FIELD, zone_names, zone_problem

USER_ID_RE = re.compile(r"^[A-Za-z0-9_\-.@:]{1,128}$")
EMAIL_RE = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$")
MAX_ROWS_LISTED = 20


@dataclass
class ValidationResult:
    accepted: dict[str, tuple[dict, str | None]] = field(default_factory=dict)  # userId -> (variables, email)
    accepted_rows: int = 0
    rejected: int = 0
    errors: list[dict] = field(default_factory=list)
    warnings: list[dict] = field(default_factory=list)
    rejected_rows: list[tuple[int, list[str], str]] = field(default_factory=list)  # (row, cells, reasons)
    header: list[str] = field(default_factory=list)


def user_id_problem(user_id: str) -> str | None:
    if not user_id:
        return "userId is empty"
    if not USER_ID_RE.match(user_id):
        shown = user_id if len(user_id) <= 40 else user_id[:40] + "…"
        return (f'"{shown}" is not a valid userId (1-128 characters: letters, digits and _ - . @ :)')
    return None


def validate_rows(table: CsvTable, schema: list[dict], campaign_defaults: dict | None = None,
                  starts_url: frozenset[str] = frozenset()) -> ValidationResult:
    """Every cell is held to the text rule; `starts_url` are the variables that start a URL
    field (rendering.url_keys), whose cells must be http(s) URLs."""
    result = ValidationResult(header=table.header)
    width = len(table.header)
    by_name = {v["key"].lower(): v for v in schema}
    columns: list[tuple[int, dict]] = []  # (index, variable) for mapped variable columns
    unknown: list[str] = []
    # A `timezone` column: each recipient's IANA zone for local-time sends and quiet hours.
    zone_at = next((i for i, name in enumerate(table.header) if name.strip().lower() == ZONE_FIELD), None)
    for index, name in enumerate(table.header):
        if index in (table.user_id_index, table.email_index) or not name:
            continue
        var = by_name.get(name.lower())
        if var is None and index == zone_at:
            continue
        if var is None:
            unknown.append(name)
        else:
            columns.append((index, var))
    if unknown:
        result.warnings.append({"message": f"Unknown column{'s' if len(unknown) > 1 else ''} ignored: "
                                           f"{', '.join(unknown)} (not in the template's variables)",
                                "column": unknown[0] if len(unknown) == 1 else None})
    defaults = campaign_defaults or {}
    first_row: dict[str, int] = {}
    duplicate_rows: list[int] = []
    uid_at, email_at = table.user_id_index, table.email_index

    for number, cells in table.rows:
        row_errors: list[tuple[str | None, str]] = []
        if len(cells) != width:
            row_errors.append((None, f"has {len(cells)} values but the header has {width} columns"))
            cells = (cells + [""] * width)[:width]
        original, unusable = cells, {}
        if text_problem("\t".join(cells)):  # one search per row; cell by cell only when it hits
            unusable = {i: problem for i, cell in enumerate(cells) if (problem := text_problem(cell))}
            row_errors += [(table.header[i] or None, problem) for i, problem in unusable.items()]
            cells = ["" if i in unusable else cell for i, cell in enumerate(cells)]
        user_id = cells[uid_at].strip()
        problem = user_id_problem(user_id) if uid_at not in unusable else None
        if problem:
            row_errors.append((table.header[uid_at], problem))
        email = None
        if email_at is not None:
            email = cells[email_at].strip() or None
            if email and not EMAIL_RE.match(email):
                row_errors.append((table.header[email_at], f'"{email[:60]}" is not a valid email address'))
        own: dict[str, str] = {}
        for index, var in columns:
            value = cells[index].strip()
            if value:
                own[var["key"]] = value
        if zone_at is not None and (zone := cells[zone_at].strip()):
            if zone not in zone_names():
                row_errors.append((table.header[zone_at], zone_problem(zone)))
            else:
                own[ZONE_FIELD] = zone
        values, missing, problems = rendering.resolve(schema, own, defaults, starts_url)
        for index, var in columns:
            if var["key"] in problems and var["key"] in own:
                row_errors.append((table.header[index], f"{var['key']} {problems[var['key']]}"))
        for key in missing:
            at = next((i for i, v in columns if v["key"] == key), None)
            if at not in unusable:
                row_errors.append((table.header[at] if at is not None else key, f"required variable {key} has no value "
                                   "(no cell value, campaign default or template default)"))
        if row_errors:
            result.rejected += 1
            for column, message in row_errors:
                result.errors.append({"row": number, "column": column, "message": message})
            result.rejected_rows.append((number, original, "; ".join(m for _, m in row_errors)))
            continue
        result.accepted_rows += 1
        if user_id in result.accepted:
            duplicate_rows.append(number)
            del result.accepted[user_id]  # re-insert so the later row's position and values win
        else:
            first_row[user_id] = number
        result.accepted[user_id] = (own, email)

    if duplicate_rows:
        shown = duplicate_rows[:MAX_ROWS_LISTED]
        result.warnings.append({"message": f"{len(duplicate_rows)} duplicate userId row"
                                           f"{'s' if len(duplicate_rows) > 1 else ''} merged; the later row wins",
                                "column": table.header[uid_at], "rows": shown})
    if result.accepted_rows == 0 and result.rejected == 0:
        result.warnings.append({"message": "The file has a header but no data rows."})
    return result
