"""CSV uploads: validate into a preview, stage the accepted rows in Redis under a token,
and import exactly those rows on confirm (unless the campaign changed meanwhile)."""

from __future__ import annotations

import csv
import io
import json
import secrets
import zlib

from dashboard import rendering
from dashboard.errors import AppError, LifecycleError, NotFound, TooLarge, ValidationError
from dashboard.extensions import get_redis
from dashboard.recipients_csv import CsvError, read_csv, validate_rows
from dashboard.recipients_csv.reader import read_limited
from dashboard.services import campaigns, recipients
from dashboard.services.actor import Actor

STAGE_TTL = 3600
MAX_ERRORS_IN_JSON = 1000
SAMPLE_SIZE = 5
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def neutralise(cell) -> str:
    """Spreadsheet-safe cell: a leading = + - @ would start a formula, so prefix a quote."""
    text = "" if cell is None else str(cell)
    return "'" + text if text.startswith(FORMULA_PREFIXES) else text


def write_csv(header: list[str], rows) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([neutralise(h) for h in header])
    for row in rows:
        writer.writerow([neutralise(c) for c in row])
    return out.getvalue()


class UploadError(AppError):
    code = "unreadable_file"


def validate_upload(campaign_id: int, stream) -> dict:
    """Read and validate an uploaded CSV; return the preview (staged under `token`)."""
    campaign = campaigns.get(campaign_id)
    if not campaign.is_draft:
        raise LifecycleError(f"Campaign is {campaign.status}; only drafts can be changed.")
    try:
        table = read_csv(read_limited(stream))
        version = campaigns.send_version(campaign)
        result = validate_rows(table, version.variable_schema, campaign.variables, rendering.url_keys(version.channels))
    except CsvError as err:
        if err.status == 413:
            raise TooLarge(err.message) from None
        raise UploadError(err.message) from None
    accepted = [(uid, own, email) for uid, (own, email) in result.accepted.items()]
    preview = {
        "accepted": len(accepted),
        "rejected": result.rejected,
        "imported": 0,
        "errors": result.errors[:MAX_ERRORS_IN_JSON],
        "errorCount": len(result.errors),
        "warnings": result.warnings,
        "sample": recipients.preview_rows(campaign, [(u, v) for u, v, _ in accepted[:SAMPLE_SIZE]]),
    }
    if len(result.errors) > MAX_ERRORS_IN_JSON:
        preview["warnings"].append({"message": f"Showing the first {MAX_ERRORS_IN_JSON:,} of "
                                               f"{len(result.errors):,} errors; download the rejected rows for all."})
    rejected_csv = write_csv([*result.header, "error"],
                             ([*cells, reason] for _, cells, reason in result.rejected_rows))
    staged = {"campaignId": campaign.id, "revision": campaign.revision, "accepted": accepted,
              "rejectedCsv": rejected_csv, "preview": preview}
    preview["token"] = stage_json(_key, staged)
    return preview


def _key(token: str) -> str:
    return f"herald:upload:{token}"


def stage_json(key, staged: dict) -> str:
    """Keep a checked upload in Redis (compressed, for STAGE_TTL) under a new token; `key` makes
    the Redis key from the token (each kind of upload has its own)."""
    token = secrets.token_urlsafe(24)
    get_redis().set(key(token), zlib.compress(json.dumps(staged, separators=(",", ":")).encode(), 1), ex=STAGE_TTL)
    return token


def load_staged(key, token: str, owner: str, owner_id: int, noun: str) -> dict:
    """A staged upload, or NotFound when it expired, never existed, or belongs to another `noun`
    (staged[owner] is not owner_id)."""
    raw = get_redis().get(key(token)) if token and len(token) < 100 else None
    if raw is None:
        raise NotFound("This upload has expired or does not exist. Upload the file again.")
    staged = json.loads(zlib.decompress(raw))
    if staged[owner] != owner_id:
        raise NotFound(f"This upload belongs to another {noun}.")
    return staged


def load(campaign_id: int, token: str) -> dict:
    return load_staged(_key, token, "campaignId", campaign_id, "campaign")


def confirm(campaign_id: int, token: str, actor: Actor) -> dict:
    """Import exactly the previewed accepted rows; a changed campaign invalidates the upload."""
    staged = load(campaign_id, token)
    campaign = campaigns.get(campaign_id)
    if campaign.is_draft and campaign.revision != staged["revision"]:
        raise LifecycleError("The campaign changed after this file was checked "
                             "(its template, defaults or recipients). Upload the file again.")
    rows = [(u, v, e) for u, v, e in staged["accepted"]]
    outcome = recipients.import_accepted(campaign_id, rows, actor, expected_revision=staged["revision"])
    get_redis().delete(_key(token))
    get_redis().set(_key(token) + ":rejected", staged["rejectedCsv"], ex=STAGE_TTL)
    return outcome


def rejected_csv(campaign_id: int, token: str) -> str:
    redis = get_redis()
    kept = redis.get(_key(token) + ":rejected") if token and len(token) < 100 else None
    if kept is not None:
        return kept.decode()
    return load(campaign_id, token)["rejectedCsv"]


def import_now(campaign_id: int, stream, actor: Actor, skip_invalid: bool) -> dict:
    """API upload without dryRun: all-or-nothing, or only accepted rows with skipInvalid."""
    preview = validate_upload(campaign_id, stream)
    token = preview.pop("token")
    if not skip_invalid:
        refuse_rejected(_key, token, preview)
    outcome = confirm(campaign_id, token, actor)
    preview["imported"] = outcome["imported"]
    return preview


def refuse_rejected(key, token: str, preview: dict) -> None:
    """An all-or-nothing API import with rejected rows: drop the staged upload and answer 400
    (code invalid_rows) with the rows, nothing imported."""
    if not preview["rejected"]:
        return
    get_redis().delete(key(token))
    error = ValidationError(f"{preview['rejected']} row{'s' if preview['rejected'] > 1 else ''} rejected; "
                            "nothing was imported. Fix them, or pass skipInvalid=true to import "
                            "the accepted rows only.", preview["errors"])
    error.code = "invalid_rows"
    raise error
