"""Audiences → Segments: saved filters over the user directory, a builder with a live count.

The builder is one form of flat rows (`c-<i>-kind`, `c-<i>-parent`, ...): a row whose parent is a
group row sits inside that group. Structural edits (add/remove a row, change an attribute or an
operator) post the form to `builder`, which answers the re-rendered builder; typing posts it to
`count_preview`, which answers the count and, out of band, each row's problem. Saving goes
through the same service validation as the API (the error paths map back to rows)."""

from __future__ import annotations

import re

from flask import Blueprint, flash, redirect, render_template, request, url_for
from sqlalchemy import select

from dashboard.access import ALL_ROLES, WRITERS, current_actor, roles
from dashboard.errors import LifecycleError, ValidationError
from dashboard.extensions import db
from dashboard.models import Campaign, CampaignStatus, Segment, UserList
from dashboard.services import segments as service

bp = Blueprint("segments", __name__, url_prefix="/audiences/segments")

KINDS = ("attribute", "campaign", "inactive", "list", "group")
DELIVERED = (CampaignStatus.SENDING, CampaignStatus.PAUSED, CampaignStatus.SENT, CampaignStatus.CANCELLED,
             CampaignStatus.FAILED)
EVENT_LABELS = {"received": "received", "read": "read", "clicked": "clicked"}
MAX_ROWS = service.MAX_CONDITIONS + 10
INTENT_RE = re.compile(r"^(add-(attribute|campaign|inactive|list|group)(?:-in-(\d+))?|remove-(\d+))$")


# ----------------------------------------------------------------------------------------------
# form rows <-> definition


def _int(text):
    try:
        return int(str(text).strip())
    except (TypeError, ValueError):
        return None


def _number(text):
    text = (text or "").strip()
    try:
        number = float(text)
    except ValueError:
        return text  # validation says "must be a number"
    return int(number) if number.is_integer() and "." not in text and "e" not in text.lower() else number


def rows_from_form(form) -> list[dict]:
    count = min(_int(form.get("rows")) or 0, MAX_ROWS)
    rows, renumber = [], {}
    for i in range(count):
        kind = form.get(f"c-{i}-kind")
        if kind not in KINDS:
            continue
        renumber[i] = len(rows)
        parent = _int(form.get(f"c-{i}-parent"))
        rows.append({
            "kind": kind, "parent": parent, "was": i,
            "attribute": form.get(f"c-{i}-attribute", ""), "operator": form.get(f"c-{i}-operator", ""),
            "value": form.get(f"c-{i}-value", ""), "value2": form.get(f"c-{i}-value2", ""),
            "event": form.get(f"c-{i}-event", "received"), "campaign": form.get(f"c-{i}-campaign", ""),
            "negate": form.get(f"c-{i}-negate") == "1", "days": form.get(f"c-{i}-days", ""),
            "list": form.get(f"c-{i}-list", ""), "match": form.get(f"c-{i}-match", "all"),
        })
    for row in rows:  # parents by their new positions; a parent that is gone or not a group: top level
        parent = renumber.get(row["parent"]) if row["parent"] is not None else None
        row["parent"] = parent if parent is not None and rows[parent]["kind"] == "group" else None
    return rows


def _new_row(kind: str, parent: int | None, types: dict[str, str]) -> dict:
    row = {"kind": kind, "parent": parent, "attribute": "", "operator": "", "value": "", "value2": "",
           "event": "received", "campaign": "", "negate": False, "days": "30", "list": "", "match": "any"}
    if kind == "attribute" and types:
        row["attribute"] = next(iter(sorted(types)))
    return row


def _descendants_end(rows: list[dict], index: int) -> int:
    """The position just past row `index` and everything nested under it."""
    inside = {index}
    end = index + 1
    while end < len(rows) and rows[end]["parent"] in inside:
        inside.add(end)
        end += 1
    return end


def _shift_parents(rows: list[dict], at: int, delta: int) -> None:
    for row in rows:
        if row["parent"] is not None and row["parent"] >= at:
            row["parent"] += delta


def apply_intent(rows: list[dict], intent: str, types: dict[str, str]) -> None:
    match = INTENT_RE.match(intent or "")
    if not match:
        return
    if match.group(4) is not None:  # remove a row and everything inside it
        index = int(match.group(4))
        if 0 <= index < len(rows):
            end = _descendants_end(rows, index)
            del rows[index:end]
            for row in rows:
                if row["parent"] is not None and row["parent"] >= end:
                    row["parent"] -= end - index
        return
    if len(rows) >= service.MAX_CONDITIONS:
        return
    kind, group = match.group(2), match.group(3)
    parent = int(group) if group is not None else None
    if parent is not None and not (0 <= parent < len(rows) and rows[parent]["kind"] == "group"):
        return
    at = _descendants_end(rows, parent) if parent is not None else len(rows)
    _shift_parents(rows, at, 1)
    rows.insert(at, _new_row(kind, parent, types))
    if kind == "group":  # a group starts with one condition in it
        _shift_parents(rows, at + 1, 1)
        rows.insert(at + 1, _new_row("attribute", at, types))


def normalise(rows: list[dict], types: dict[str, str]) -> None:
    """Operators follow the attribute's type (a new attribute of another type starts at its first)."""
    for row in rows:
        if row["kind"] != "attribute":
            continue
        kind = types.get(row["attribute"])
        row["type"] = kind
        if kind and row["operator"] not in service.OPERATORS[kind]:
            row["operator"] = service.OPERATORS[kind][0]


def blank_rows(rows: list[dict], types: dict[str, str]) -> dict[int, str]:
    """Rows still waiting for their value (a new row, or one cleared): what to ask for. These are
    prompts, not errors: an untouched row never says "Must be a number"."""
    asks: dict[int, str] = {}
    for i, row in enumerate(rows):
        if row["kind"] == "inactive" and not str(row["days"]).strip():
            asks[i] = "Enter a number of days"
        if row["kind"] != "attribute" or not types.get(row["attribute"]):
            continue
        op = row["operator"]
        if op in service.NO_VALUE:
            continue
        if op == "between":
            if not (row["value"] or "").strip() or not (row["value2"] or "").strip():
                asks[i] = "Enter both ends of the range to count"
        elif not (row["value"] or "").strip():
            asks[i] = ("Enter a number of days to count" if op in ("within_last_days", "more_than_days_ago")
                       else "Enter a value to count")
    return asks


def _attribute_value(row: dict, kind: str | None):
    op = row["operator"]
    if op in service.NO_VALUE:
        return None
    if op == "between":
        convert = _number if kind == "number" else (lambda v: (v or "").strip())
        return [convert(row["value"]), convert(row["value2"])]
    if op in ("in", "not_in"):
        return [part.strip() for part in (row["value"] or "").split(",") if part.strip()]
    if op in ("within_last_days", "more_than_days_ago"):
        return _int(row["value"]) if _int(row["value"]) is not None else row["value"]
    if kind == "number":
        return _number(row["value"])
    if kind == "date":
        return (row["value"] or "").strip()
    return row["value"]


def definition_from_rows(match: str, rows: list[dict], types: dict[str, str]) -> tuple[dict, dict[str, int]]:
    """The definition the rows describe, and which row each `definition.conditions[...]` path is."""
    paths: dict[str, int] = {}

    def build(parent, path) -> list[dict]:
        out = []
        for i, row in enumerate(rows):
            if row["parent"] != parent:
                continue
            here = f"{path}.conditions[{len(out)}]"
            paths[here] = i
            kind = row["kind"]
            if kind == "group":
                cond = {"type": "group", "match": row["match"], "conditions": build(i, here)}
            elif kind == "attribute":
                cond = {"type": "attribute", "attribute": row["attribute"], "operator": row["operator"]}
                value = _attribute_value(row, types.get(row["attribute"]))
                if value is not None:
                    cond["value"] = value
            elif kind == "campaign":
                cond = {"type": "campaign", "event": row["event"], "campaignId": _int(row["campaign"]),
                        "negate": row["negate"]}
            elif kind == "inactive":
                cond = {"type": "inactive", "days": _int(row["days"]) if _int(row["days"]) is not None
                        else row["days"]}
            else:
                cond = {"type": "list", "listId": _int(row["list"]), "negate": row["negate"]}
            out.append(cond)
        return out

    return {"match": match if match in ("all", "any") else "all", "conditions": build(None, "definition")}, paths


FIELD_WORDS = {"campaignId": "Pick a campaign", "listId": "Pick a list"}


def row_errors(details: list[dict], paths: dict[str, int]) -> tuple[dict[int, str], list[str]]:
    """Validation details as one message per row (the deepest matching path) and the rest."""
    by_row: dict[int, str] = {}
    other: list[str] = []
    for detail in details:
        field, message = detail.get("field", ""), detail.get("message", "")
        best = max((p for p in paths if field == p or field.startswith(p + ".")), key=len, default=None)
        if best is None:
            other.append(f"{field}: {message}" if field.startswith("definition.") else message)
            continue
        leaf = field[len(best) + 1:]
        if leaf in FIELD_WORDS and ("no campaign" in message or "no list" in message or "must be" in message):
            message = FIELD_WORDS[leaf] if "must be" in message else message[:1].upper() + message[1:]
        elif leaf and leaf not in ("value", "attribute", "operator"):
            message = f"{leaf}: {message}"
        else:
            message = message[:1].upper() + message[1:]
        by_row.setdefault(paths[best], message)
    return by_row, other


def rows_from_definition(definition: dict, types: dict[str, str]) -> list[dict]:
    rows: list[dict] = []

    def walk(node, parent):
        for cond in node.get("conditions", []):
            kind = cond.get("type")
            row = _new_row(kind, parent, {})
            row["match"] = cond.get("match", "all")
            if kind == "attribute":
                value = cond.get("value")
                row.update(attribute=cond["attribute"], operator=cond["operator"])
                if isinstance(value, list) and cond["operator"] == "between":
                    row["value"], row["value2"] = (str(v) for v in value)
                elif isinstance(value, list):
                    row["value"] = ", ".join(value)
                elif value is not None:
                    row["value"] = str(value)
            elif kind == "campaign":
                row.update(event=cond["event"], campaign=str(cond["campaignId"]), negate=cond.get("negate", False))
            elif kind == "inactive":
                row["days"] = str(cond["days"])
            elif kind == "list":
                row.update(list=str(cond["listId"]), negate=cond.get("negate", False))
            rows.append(row)
            if kind == "group":
                walk(cond, len(rows) - 1)

    walk(definition, None)
    normalise(rows, types)
    return rows


# ----------------------------------------------------------------------------------------------
# rendering helpers


def _choices() -> dict:
    campaigns = db.session.execute(select(Campaign.id, Campaign.name, Campaign.status)
                                   .where(Campaign.status.in_(DELIVERED)).order_by(Campaign.id.desc())
                                   .limit(200)).all()
    lists = db.session.execute(select(UserList.id, UserList.name, UserList.size).order_by(UserList.name)).all()
    return {"campaign_choices": campaigns, "list_choices": lists}


def _count_context(definition: dict, paths: dict[str, int], rows: list[dict], types: dict[str, str]) -> dict:
    """The live count, or the problems that stop it (never a 500 for an incomplete filter). A row
    without its value yet asks for it (a prompt, not an error) and stops the count: an empty value
    would count "0 of N" for a filter nobody has written."""
    asks = blank_rows(rows, types)
    try:
        matched = service.count(definition, check_refs=True)
        errors, other = {}, []
    except ValidationError as err:
        matched = None
        errors, other = row_errors(err.details, paths)
    if asks:
        matched = None
        errors.update(asks)
    return {"matched": matched, "total": service.total_users(), "row_errors": errors, "other_errors": other,
            "row_count": len(rows), "row_prompts": set(asks)}


def _builder_context(match: str, rows: list[dict], types: dict[str, str], *, with_count: bool = True) -> dict:
    normalise(rows, types)
    definition, paths = definition_from_rows(match, rows, types)
    context = {"match": match, "rows": rows, "types": types, "operators": service.OPERATORS,
               "labels": service.OPERATOR_LABELS, "no_value": service.NO_VALUE, "row_prompts": set(), **_choices()}
    if with_count:
        context.update(_count_context(definition, paths, rows, types))
    return context


def _form_state(types: dict[str, str], *, structural: bool = True) -> tuple[str, list[dict]]:
    """The builder's match and rows; with `structural`, after the add/remove its `intent` asks for."""
    match = request.form.get("match", "all")
    rows = rows_from_form(request.form)
    if structural:
        apply_intent(rows, request.form.get("intent", ""), types)
    return (match if match in ("all", "any") else "all"), rows


def _editor(segment: Segment | None, name: str, description: str, match: str, rows: list[dict],
            types: dict[str, str], errors: dict | None = None, status: int = 200):
    context = _builder_context(match, rows, types)
    if errors:  # a failed save: its problems win over the live count's (and are errors, not prompts)
        context["row_prompts"] = set()
        context["row_errors"] = errors.get("rows", {}) or context["row_errors"]
        context["other_errors"] = errors.get("other", []) or context["other_errors"]
    return render_template("audiences/segment_form.html", segment=segment, name=name, description=description,
                           field_errors=(errors or {}).get("fields", {}), **context), status


def _save(segment: Segment | None):
    types = service.attribute_types()
    match, rows = _form_state(types)
    name, description = request.form.get("name", ""), request.form.get("description", "")
    if request.form.get("intent", "save") != "save":  # add/remove without scripts: the same page again
        return _editor(segment, name, description, match, rows, types)
    normalise(rows, types)
    definition, paths = definition_from_rows(match, rows, types)
    data = {"name": name, "description": description, "definition": definition}
    try:
        if blank_rows(rows, types):  # an empty value is a condition not written yet, not "is the empty text"
            service._clean(data, partial=False)  # noqa: SLF001 -- the name's and other rows' problems, nothing saved
            raise ValidationError("Some conditions have no value yet.", [])
        saved = service.update(segment.id, data, current_actor()) if segment else service.create(data, current_actor())
    except ValidationError as err:
        fields = {d["field"]: d["message"] for d in err.details if d.get("field") in ("name", "description")}
        by_row, other = row_errors([d for d in err.details if d.get("field", "").startswith("definition")], paths)
        for i, ask in blank_rows(rows, types).items():
            by_row[i] = ask.removesuffix(" to count")
        return _editor(segment, name, description, match, rows, types,
                       {"fields": fields, "rows": by_row, "other": other}, 400)
    matched = service.count(saved.definition)
    flash(f"Segment “{saved.name}” saved: {matched:,} users match it now.", "success")
    return redirect(url_for("segments.index"))


# ----------------------------------------------------------------------------------------------
# views


@bp.get("")
@roles(*ALL_ROLES)
def index():
    items = service.list_all()
    campaigns, lists = service.names_for([s.definition for s in items])
    summaries = {s.id: service.describe(s.definition, campaigns, lists) for s in items}
    return render_template("audiences/segments.html", segments=items, summaries=summaries,
                           total=service.total_users())


@bp.get("/<int:segment_id>/count")
@roles(*ALL_ROLES)
def count(segment_id: int):
    segment = service.get(segment_id)
    return render_template("audiences/_segment_row_count.html", matched=service.count(segment.definition),
                           total=service.total_users())


@bp.get("/new")
@roles(*WRITERS)
def new():
    types = service.attribute_types()
    return _editor(None, "", "", "all", [], types)  # no rows: everyone, until a condition narrows it


@bp.post("/new")
@roles(*WRITERS)
def create():
    return _save(None)


@bp.get("/<int:segment_id>/edit")
@roles(*WRITERS)
def edit(segment_id: int):
    segment = service.get(segment_id)
    types = service.attribute_types()
    rows = rows_from_definition(segment.definition, types)
    return _editor(segment, segment.name, segment.description or "", segment.definition.get("match", "all"), rows,
                   types)


@bp.post("/<int:segment_id>/edit")
@roles(*WRITERS)
def update(segment_id: int):
    return _save(service.get(segment_id))


@bp.post("/builder")
@roles(*WRITERS)
def builder():
    """HTMX: the builder re-rendered after a structural change (a row added or removed, an
    attribute or operator changed), with the count of what it now says."""
    types = service.attribute_types()
    match, rows = _form_state(types)
    return render_template("audiences/_segment_builder.html", **_builder_context(match, rows, types))


@bp.post("/count")
@roles(*WRITERS)
def count_preview():
    """HTMX: the live count of the unsaved filter, and each row's problem out of band."""
    types = service.attribute_types()
    # A count never changes the form: HTMX sends the last button the form saw focused (Tab from a
    # value onto "Remove" would send remove-N), so the intent is not read here.
    match, rows = _form_state(types, structural=False)
    normalise(rows, types)
    definition, paths = definition_from_rows(match, rows, types)
    return render_template("audiences/_segment_count.html", oob=True,
                           **_count_context(definition, paths, rows, types))


@bp.get("/<int:segment_id>/delete")
@roles(*WRITERS)
def confirm_delete(segment_id: int):
    segment = service.get(segment_id)
    return render_template("audiences/segment_delete.html", segment=segment, using=service.users_of(segment.id))


@bp.post("/<int:segment_id>/delete")
@roles(*WRITERS)
def delete(segment_id: int):
    segment = service.get(segment_id)
    name = segment.name
    try:
        service.delete(segment.id, current_actor())
    except LifecycleError as err:
        return render_template("audiences/segment_delete.html", segment=segment, using=service.users_of(segment.id),
                               error=err.message), 409
    flash(f"Segment “{name}” deleted.", "success")
    return redirect(url_for("segments.index"))
