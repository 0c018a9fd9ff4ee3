"""Static lists of userIds: CRUD, bulk member writes (one statement per call, never one per
user), CSV imports through a staged validation preview, and "save a campaign's recipients as a
list" by one INSERT ... SELECT. `user_lists.size` is recounted with one COUNT after each change.
Members need not be in the user directory."""

from __future__ import annotations

import json
from dataclasses import dataclass

from sqlalchemy import String, bindparam, func, insert, literal, select, text
from sqlalchemy import delete as sa_delete
from sqlalchemy.dialects.postgresql import ARRAY

from dashboard.errors import LifecycleError, NotFound, TooLarge, ValidationError
from dashboard.extensions import db, get_redis
from dashboard.inputs import MAX_ID, text_problem
from dashboard.models import Campaign, CampaignStatus, Recipient, RecipientStatus, utcnow
from dashboard.models.user import ListMember, UserList
from dashboard.recipients_csv import CsvError, read_csv
from dashboard.recipients_csv.reader import read_limited
from dashboard.recipients_csv.validation import user_id_problem
from dashboard.services import audit
from dashboard.services import campaigns as campaign_service
from dashboard.services.actor import Actor
from dashboard.services.uploads import (
    MAX_ERRORS_IN_JSON,
    STAGE_TTL,
    UploadError,
    load_staged,
    refuse_rejected,
    stage_json,
    write_csv,
)

MAX_PER_CALL = 10_000
MAX_NAME = 200
MAX_DESCRIPTION = 2_000
MAX_CURSOR = 200
MEMBERS_PAGE = 50
SAMPLE_SIZE = 5
BLOCKING = (CampaignStatus.DRAFT, CampaignStatus.SCHEDULED)


# -- reading ---------------------------------------------------------------------------------

def get(list_id: int, lock: bool = False) -> UserList:
    stmt = select(UserList).where(UserList.id == list_id) if 0 < list_id <= MAX_ID else None
    if stmt is not None and lock:
        stmt = stmt.with_for_update()
    found = db.session.scalars(stmt).first() if stmt is not None else None
    if found is None:
        raise NotFound(f"No list {list_id}.")
    return found


def list_all(search: str | None = None) -> list[UserList]:
    stmt = select(UserList).order_by(UserList.name)
    if search:
        prefix = search.strip().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        stmt = stmt.where(func.lower(UserList.name).like(f"%{prefix.lower()}%", escape="\\"))
    return list(db.session.scalars(stmt))


@dataclass
class MembersPage:
    items: list[ListMember]
    next_cursor: str | None


def members(list_id: int, cursor: str | None = None, limit: int = MEMBERS_PAGE) -> MembersPage:
    """One page of members in userId order; the cursor is the last userId of the previous page."""
    get(list_id)
    if cursor is not None and len(cursor) > MAX_CURSOR:
        raise ValidationError("cursor is not a cursor from a previous page.",
                              [{"field": "cursor", "message": "is not a cursor from a previous page"}])
    stmt = select(ListMember).where(ListMember.list_id == list_id)
    if cursor:
        stmt = stmt.where(ListMember.user_id > cursor)
    rows = list(db.session.scalars(stmt.order_by(ListMember.user_id).limit(limit + 1)))
    more = len(rows) > limit
    rows = rows[:limit]
    return MembersPage(rows, rows[-1].user_id if more else None)


def using_campaigns(list_id: int) -> list[Campaign]:
    """Drafts and scheduled campaigns whose audience is this list (they would send to it)."""
    return list(db.session.scalars(select(Campaign).where(
        Campaign.audience_kind == "list", Campaign.audience_id == list_id,
        Campaign.status.in_(list(BLOCKING))).order_by(Campaign.id)))


# -- validation ------------------------------------------------------------------------------

def _text(data: dict, key: str, errors: list, *, required: bool, maximum: int) -> str | None:
    value = data.get(key)
    if value is None:
        if required:
            errors.append({"field": key, "message": "is required"})
        return None
    if not isinstance(value, str):
        errors.append({"field": key, "message": "must be a string"})
        return None
    if len(value) > maximum:  # before trimming: what was sent is what is measured
        errors.append({"field": key, "message": f"must be at most {maximum:,} characters"})
        return None
    value = value.strip(" \t\r\n")
    if required and not value:
        errors.append({"field": key, "message": "is required"})
    elif problem := text_problem(value):
        errors.append({"field": key, "message": problem})
    return value or None


def _name_taken(name: str, except_id: int | None = None) -> bool:
    stmt = select(UserList.id).where(func.lower(UserList.name) == name.lower())
    if except_id is not None:
        stmt = stmt.where(UserList.id != except_id)
    return db.session.scalars(stmt).first() is not None


def _raise(errors: list[dict]) -> None:
    if errors:
        first = errors[0]
        raise ValidationError(f"{first['field']} {first['message']}.", errors)


def _name_conflict(name: str) -> LifecycleError:
    """A name another list has: 409 (the request is well-formed; the name is taken)."""
    error = LifecycleError(f"name: “{name}” is already the name of another list; choose another name.",
                           [{"field": "name", "message": f"“{name}” is already the name of another list"}])
    error.code = "name_taken"
    return error


def clean_user_ids(user_ids, field: str = "userIds", allow_empty: bool = False) -> list[str]:
    """Validated, de-duplicated userIds (first position kept); any invalid one rejects
    the whole call with its positions, nothing done (like recipients.add_manual)."""
    if user_ids is None and allow_empty:
        return []
    if not isinstance(user_ids, list) or (not user_ids and not allow_empty):
        raise ValidationError(f"{field} must be a non-empty list of userIds.",
                              [{"field": field, "message": "must be a non-empty list"}])
    if len(user_ids) > MAX_PER_CALL:
        raise ValidationError(f"At most {MAX_PER_CALL:,} userIds per call; this call has {len(user_ids):,}.",
                              [{"field": field, "message": f"at most {MAX_PER_CALL:,} per call"}])
    errors: list[dict] = []
    for index, user_id in enumerate(user_ids):
        problem = user_id_problem(user_id) if isinstance(user_id, str) else "userId must be a string"
        if problem:
            errors.append({"field": f"{field}[{index}]", "index": index,
                           "userId": user_id if isinstance(user_id, str) else None, "message": problem})
    if errors:
        positions = ", ".join(str(e["index"]) for e in errors)[:200]
        plural = "s" if len(errors) > 1 else ""
        raise ValidationError(f"{len(errors)} invalid userId{plural} at position{plural} {positions}; "
                              "nothing was changed.", errors[:1000])
    return list(dict.fromkeys(user_ids))


# -- bulk member writes ----------------------------------------------------------------------

def _insert_members(list_id: int, user_ids: list[str]) -> None:
    """One INSERT ... SELECT over the ids bound as ONE parameter (an array on PostgreSQL, a JSON
    array on SQLite), ON CONFLICT DO NOTHING: members already there stay as they were."""
    if not user_ids:
        return
    now = utcnow()
    if db.session.get_bind().dialect.name == "postgresql":
        stmt = text("INSERT INTO user_list_members (list_id, user_id, added_at) "
                    "SELECT :lid, u, :now FROM unnest(:ids) AS u ON CONFLICT DO NOTHING"
                    ).bindparams(bindparam("ids", type_=ARRAY(String)))
        db.session.execute(stmt, {"lid": list_id, "now": now, "ids": user_ids})
    else:  # SQLite: `WHERE true` keeps ON CONFLICT from being read as part of the SELECT
        db.session.execute(text("INSERT INTO user_list_members (list_id, user_id, added_at) "
                                "SELECT :lid, value, :now FROM json_each(:ids) WHERE true ON CONFLICT DO NOTHING"),
                           {"lid": list_id, "now": now.replace(tzinfo=None).isoformat(sep=" "),
                            "ids": json.dumps(user_ids)})


def _recount(user_list: UserList) -> int:
    """size := the member rows, by one COUNT; returns how the size changed."""
    before = user_list.size or 0
    user_list.size = db.session.scalar(select(func.count()).select_from(ListMember)
                                       .where(ListMember.list_id == user_list.id))
    user_list.updated_at = utcnow()
    return user_list.size - before


def _new_list(name, description, actor: Actor) -> UserList:
    """Validate and add the list row (flushed for its id; the caller commits)."""
    data = {"name": name, "description": description}
    errors: list[dict] = []
    clean_name = _text(data, "name", errors, required=True, maximum=MAX_NAME)
    clean_description = _text(data, "description", errors, required=False, maximum=MAX_DESCRIPTION)
    _raise(errors)
    if _name_taken(clean_name):
        raise _name_conflict(clean_name)
    user_list = UserList(name=clean_name, description=clean_description, size=0, created_by=actor.label)
    db.session.add(user_list)
    db.session.flush()
    return user_list


def create(name, description, actor: Actor, user_ids=None) -> UserList:
    """A new list, optionally with its first members (≤ 10,000), in one transaction."""
    ids = clean_user_ids(user_ids, allow_empty=True)
    user_list = _new_list(name, description, actor)
    _insert_members(user_list.id, ids)
    _recount(user_list)
    audit.record(actor, "list.created", "list", user_list.id,
                 details={"name": user_list.name, "size": user_list.size})
    db.session.commit()
    return user_list


def update_list(list_id: int, data: dict, actor: Actor) -> UserList:
    """Rename and/or change the description (PATCH: only the keys given)."""
    if not isinstance(data, dict):
        raise ValidationError("Send a JSON object.")
    errors: list[dict] = []  # fields a list does not have are ignored, as everywhere in the API
    user_list = get(list_id, lock=True)
    changes: dict = {}
    if "name" in data:
        name = _text(data, "name", errors, required=True, maximum=MAX_NAME)
        changes["name"] = name
    if "description" in data:
        changes["description"] = _text(data, "description", errors, required=False, maximum=MAX_DESCRIPTION)
    if errors:
        db.session.rollback()
        _raise(errors)
    if changes.get("name") and _name_taken(changes["name"], except_id=list_id):
        db.session.rollback()
        raise _name_conflict(changes["name"])
    details = {}
    if "name" in changes and changes["name"] != user_list.name:
        details = {"from": user_list.name, "to": changes["name"]}
    for key, value in changes.items():
        setattr(user_list, key, value)
    user_list.updated_at = utcnow()
    audit.record(actor, "list.renamed" if details else "list.edited", "list", list_id, details=details)
    db.session.commit()
    return user_list


rename = update_list


def delete_list(list_id: int, actor: Actor) -> None:
    user_list = get(list_id, lock=True)
    blocking = using_campaigns(list_id)
    if blocking:
        db.session.rollback()
        names = ", ".join(f"“{c.name}” ({c.status})" for c in blocking[:5]) + (", …" if len(blocking) > 5 else "")
        raise LifecycleError(f"The list is the audience of {len(blocking)} campaign{'s' if len(blocking) > 1 else ''} "
                             f"that {'have' if len(blocking) > 1 else 'has'} not been sent: {names}. "
                             "Change their audience first.",
                             [{"field": "campaigns", "campaignId": c.id, "name": c.name, "status": c.status,
                               "message": "uses this list"} for c in blocking])
    db.session.execute(sa_delete(ListMember).where(ListMember.list_id == list_id))
    db.session.execute(sa_delete(UserList).where(UserList.id == list_id))
    audit.record(actor, "list.deleted", "list", list_id, details={"name": user_list.name, "size": user_list.size})
    db.session.commit()


def add_members(list_id: int, user_ids, actor: Actor) -> dict:
    """Up to 10,000 userIds; duplicates merged; one INSERT ... ON CONFLICT DO NOTHING."""
    ids = clean_user_ids(user_ids)
    user_list = get(list_id, lock=True)
    _insert_members(list_id, ids)
    added = _recount(user_list)
    audit.record(actor, "list.members_added", "list", list_id,
                 details={"added": added, "given": len(user_ids), "size": user_list.size})
    db.session.commit()
    return {"added": added, "alreadyMembers": len(ids) - added, "duplicates": len(user_ids) - len(ids),
            "size": user_list.size}


def remove_members(list_id: int, user_ids, actor: Actor) -> dict:
    ids = clean_user_ids(user_ids)
    user_list = get(list_id, lock=True)
    db.session.execute(sa_delete(ListMember).where(ListMember.list_id == list_id, ListMember.user_id.in_(ids)))
    removed = -_recount(user_list)
    audit.record(actor, "list.members_removed", "list", list_id, details={"removed": removed, "size": user_list.size})
    db.session.commit()
    return {"removed": removed, "notMembers": len(ids) - removed, "size": user_list.size}


def import_rows(list_id: int, user_ids: list[str], actor: Actor, source: str = "csv") -> dict:
    """Add the userIds of a validated CSV (≤ 100,000) in one transaction: all or nothing."""
    user_list = get(list_id, lock=True)
    ids = list(dict.fromkeys(user_ids))
    _insert_members(list_id, ids)
    added = _recount(user_list)
    audit.record(actor, "list.members_imported", "list", list_id,
                 details={"imported": len(ids), "added": added, "size": user_list.size, "source": source})
    db.session.commit()
    return {"imported": len(ids), "added": added, "alreadyMembers": len(ids) - added, "size": user_list.size}


def from_campaign(campaign_id: int, name, actor: Actor, status: str | None = None,
                  description: str | None = None) -> UserList:
    """A new list of a campaign's recipients (optionally only those with `status`), by one
    INSERT ... SELECT from recipients."""
    campaign = campaign_service.get(campaign_id)
    if status is not None and status not in list(RecipientStatus):
        raise ValidationError(f"status must be one of {', '.join(RecipientStatus)}.",
                              [{"field": "status", "message": f"must be one of {', '.join(RecipientStatus)}"}])
    user_list = _new_list(name, description, actor)
    picked = select(literal(user_list.id), Recipient.user_id).where(Recipient.campaign_id == campaign.id)
    if status:
        picked = picked.where(Recipient.status == status)
    db.session.execute(insert(ListMember).from_select(["list_id", "user_id"], picked))
    _recount(user_list)
    audit.record(actor, "list.created", "list", user_list.id,
                 details={"name": user_list.name, "size": user_list.size, "campaign": campaign.id, "status": status})
    db.session.commit()
    return user_list


# -- CSV import: validate into a preview, stage the accepted userIds, import on confirm ------

def _key(token: str) -> str:
    return f"herald:list-upload:{token}"


def check_csv(list_id: int, stream) -> dict:
    """Read a CSV with a userId column (the recipient CSV reader and limits: 25 MB, 100,000
    rows) and validate each row's userId; stage the accepted ids in Redis under `token`."""
    get(list_id)
    try:
        table = read_csv(read_limited(stream))
        uid_at = table.user_id_index
        accepted: dict[str, None] = {}
        errors: list[dict] = []
        rejected_rows: list[list[str]] = []
        duplicates = 0
        for number, cells in table.rows:
            cell = cells[uid_at].strip() if uid_at < len(cells) else ""
            problem = text_problem(cell) or user_id_problem(cell)
            if problem:
                errors.append({"row": number, "column": table.header[uid_at], "message": problem})
                rejected_rows.append([*cells, problem])
            elif cell in accepted:
                duplicates += 1
            else:
                accepted[cell] = None
    except CsvError as err:
        if err.status == 413:
            raise TooLarge(err.message) from None
        raise UploadError(err.message) from None
    warnings = []
    ignored = [h for i, h in enumerate(table.header) if i != uid_at and h]
    if ignored:
        warnings.append({"message": f"Column{'s' if len(ignored) > 1 else ''} ignored: {', '.join(ignored)[:200]} "
                                    "(a list keeps userIds only)"})
    if duplicates:
        warnings.append({"message": f"{duplicates:,} duplicate userId row{'s' if duplicates > 1 else ''} merged"})
    if not accepted and not errors:
        warnings.append({"message": "The file has a header but no data rows."})
    ids = list(accepted)
    preview = {"listId": list_id, "accepted": len(ids), "rejected": len(errors), "imported": 0,
               "errors": errors[:MAX_ERRORS_IN_JSON], "errorCount": len(errors), "warnings": warnings,
               "sample": ids[:SAMPLE_SIZE]}
    if len(errors) > MAX_ERRORS_IN_JSON:
        warnings.append({"message": f"Showing the first {MAX_ERRORS_IN_JSON:,} of {len(errors):,} errors; "
                                    "download the rejected rows for all."})
    staged = {"listId": list_id, "accepted": ids, "preview": preview,
              "rejectedCsv": write_csv([*table.header, "error"], rejected_rows)}
    preview["token"] = stage_json(_key, staged)
    return preview


def _load(list_id: int, token: str) -> dict:
    return load_staged(_key, token, "listId", list_id, "list")


def confirm_csv(list_id: int, token: str, actor: Actor) -> dict:
    """Import exactly the previewed accepted userIds (once: the token is spent)."""
    staged = _load(list_id, token)
    outcome = import_rows(list_id, staged["accepted"], actor)
    redis = get_redis()
    redis.delete(_key(token))
    redis.set(_key(token) + ":rejected", staged["rejectedCsv"], ex=STAGE_TTL)
    return outcome


def rejected_csv(list_id: int, token: str) -> str:
    kept = get_redis().get(_key(token) + ":rejected") if token and len(token) < 100 else None
    if kept is not None:
        return kept.decode()
    return _load(list_id, token)["rejectedCsv"]


def import_now(list_id: int, stream, actor: Actor, skip_invalid: bool = False) -> dict:
    """API: all or nothing (any bad row → 400 with the rows, nothing saved), or only the
    accepted rows with skipInvalid."""
    preview = check_csv(list_id, stream)
    token = preview.pop("token")
    if not skip_invalid:
        refuse_rejected(_key, token, preview)
    outcome = confirm_csv(list_id, token, actor)
    preview.update(imported=outcome["imported"], added=outcome["added"], size=outcome["size"])
    return preview




delete = delete_list  # the contract's name (services.lists.delete)
