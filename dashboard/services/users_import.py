"""The Users CSV import: columns beyond userId/name/email/timezone become typed attributes.
The upload is staged in Redis under a token; the preview (re-run when a type is changed) shows
each attribute column's type, samples and the cells that do not parse; nothing is saved until
confirmed, and then the rows without errors go through users.upsert, 10,000 at a time."""

from __future__ import annotations

import secrets
import zlib

from dashboard.errors import NotFound, TooLarge, ValidationError
from dashboard.extensions import get_redis
from dashboard.recipients_csv import CsvError, read_csv
from dashboard.recipients_csv.reader import read_limited
from dashboard.services import attributes, users

STAGE_TTL = 3600
SAMPLES = 3
MAX_ERRORS_SHOWN = 100


def _key(token: str) -> str:
    return f"herald:users-import:{token}"


def _table(data: bytes):
    try:
        table = read_csv(data)
        return table, list(table.rows)
    except CsvError as err:
        if err.status == 413:
            raise TooLarge(err.message) from None
        raise ValidationError(err.message) from None


def stage(stream) -> str:
    """Check the file can be read (size limit before parsing), keep it for the preview."""
    try:
        data = read_limited(stream)
    except CsvError as err:
        raise TooLarge(err.message) from None
    _table(data)
    token = secrets.token_urlsafe(24)
    get_redis().set(_key(token), zlib.compress(data, 1), ex=STAGE_TTL)
    return token


def _load(token: str) -> bytes:
    raw = get_redis().get(_key(token)) if token and len(token) < 100 else None
    if raw is None:
        raise NotFound("This import has expired or does not exist. Upload the file again.")
    return zlib.decompress(raw)


def _columns(table, rows, registry: dict[str, str], chosen: dict[str, str]) -> tuple[list[dict], list[str]]:
    """The attribute columns (type, fixed?, samples) and the problems that block the import."""
    lowered = [h.lower() for h in table.header]
    directory = {table.user_id_index, table.email_index}
    directory.update(i for i, h in enumerate(lowered) if h in ("name", "timezone"))
    columns, blocking = [], []
    for index, name in enumerate(table.header):
        if index in directory or not name:
            continue
        cells = [cells[index] if index < len(cells) else "" for _, cells in rows]
        column = {"index": index, "name": name, "samples": [c for c in cells if c.strip()][:SAMPLES]}
        if problem := attributes.name_problem(name):
            blocking.append(f"Column {name[:64]}: {problem}.")
            column.update(type=None, fixed=False, inferred=None)
        elif name in registry:
            column.update(type=registry[name], fixed=True, inferred=registry[name])
        else:
            inferred = attributes.infer_column(cells)
            pick = chosen.get(name)
            column.update(type=pick if pick in attributes.TYPES else inferred, fixed=False, inferred=inferred)
        columns.append(column)
    if len(columns) > attributes.MAX_PER_USER:
        blocking.append(f"The file has {len(columns)} attribute columns; at most {attributes.MAX_PER_USER}.")
    return columns, blocking


def _entries(table, rows, columns: list[dict]) -> tuple[list[tuple[int, dict]], list[dict]]:
    """(row number, entry) for each row without problems, and the problems (row, column, value, why)."""
    header = table.header
    fields = {i: h.lower() for i, h in enumerate(header) if h.lower() in ("name", "timezone")}
    if table.email_index is not None:
        fields[table.email_index] = "email"
    entries, errors = [], []
    width, parse = len(header), attributes.parse_text
    typed = [(c["index"], c["name"], c["type"]) for c in columns]
    for number, cells in rows:
        if len(cells) != width:
            cells = (cells + [""] * width)[:width]
        entry = {"userId": cells[table.user_id_index], **{field: cells[i] for i, field in fields.items()}}
        attrs, bad = {}, False
        for index, name, type_ in typed:
            cell = cells[index]
            if not cell or cell.isspace():
                continue
            try:
                attrs[name] = parse(cell, type_)
            except ValueError as err:
                errors.append({"row": number, "column": name, "value": cell[:80], "message": str(err)})
                bad = True
        clean, field, problem = users.clean_user_field(entry)
        if problem:
            index = table.user_id_index if field == "userId" else next(i for i, f in fields.items() if f == field)
            errors.append({"row": number, "column": header[index], "value": cells[index][:80], "message": problem})
            continue
        if not bad:
            entry["attributes"] = attrs
            entries.append((number, entry))
    return entries, errors


def preview(token: str, chosen: dict[str, str] | None = None) -> dict:
    table, rows = _table(_load(token))
    columns, blocking = _columns(table, rows, attributes.types(), chosen or {})
    entries, errors = _entries(table, rows, columns) if not blocking else ([], [])
    return {"token": token, "rows": len(rows), "columns": columns, "blocking": blocking, "ready": len(entries),
            "errors": errors[:MAX_ERRORS_SHOWN], "errorCount": len(errors),
            "errorRows": len({e["row"] for e in errors})}


def confirm(token: str, chosen: dict[str, str] | None = None) -> dict:
    """Import the rows without errors, with the types chosen in the preview."""
    table, rows = _table(_load(token))
    columns, blocking = _columns(table, rows, attributes.types(), chosen or {})
    if blocking:
        raise ValidationError(" ".join(blocking))
    entries, errors = _entries(table, rows, columns)
    types = {c["name"]: c["type"] for c in columns if not c["fixed"]}
    by_row: dict[int, list[str]] = {}
    for e in errors:
        said = e["message"] if e["message"].startswith(f"{e['column']} ") else f"{e['column']}: {e['message']}"
        by_row.setdefault(e["row"], []).append(said)
    result = {"created": 0, "updated": 0,
              "errors": [{"row": row, "message": "; ".join(messages)} for row, messages in by_row.items()]}
    for start in range(0, len(entries), users.MAX_USERS):
        part = entries[start:start + users.MAX_USERS]
        outcome = users.upsert([entry for _, entry in part], types)
        result["created"] += outcome["created"]
        result["updated"] += outcome["updated"]
        result["errors"] += [{"row": part[e["index"]][0], "message": e["message"]} for e in outcome["errors"]]
    result["errors"].sort(key=lambda e: e["row"])
    get_redis().delete(_key(token))
    return result
