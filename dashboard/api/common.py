from __future__ import annotations

import functools
import hashlib
import json

from flask import Blueprint, g, make_response, request

from dashboard.errors import LifecycleError, TooLarge, ValidationError
from dashboard.extensions import get_redis
from dashboard.inputs import MAX_JSON_BYTES, MAX_JSON_DEPTH, json_problem
from dashboard.params import field_error

bp = Blueprint("api", __name__, url_prefix="/api/v1")
IDEMPOTENCY_TTL = 24 * 3600


@bp.before_request
def check_json_body():
    """Every JSON body, before any view reads it: bounded in size and depth, and every key and
    string held to the text rule (path and query are checked app-wide, in dashboard.params)."""
    if not request.is_json or request.endpoint is None:
        return
    if (request.content_length or 0) > MAX_JSON_BYTES or len(request.get_data()) > MAX_JSON_BYTES:
        raise TooLarge(f"The JSON body is larger than {MAX_JSON_BYTES // (1024 * 1024)} MB.")
    try:
        # Parsed once (views read the cached result); strings are checked only when the raw body
        # has an escape, the one way a JSON string can hold a control character or a surrogate.
        problem = json_problem(request.get_json(silent=True), texts=b"\\" in request.get_data())
    except RecursionError:
        problem = ("body", f"is nested more than {MAX_JSON_DEPTH} levels deep")
    if problem:
        raise field_error(*problem)


def json_body(optional: bool = False) -> dict:
    """The request's JSON object, or a 400 that says what is wrong with it."""
    if optional and not request.get_data():
        return {}
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        raise ValidationError("Send a JSON object with Content-Type: application/json.")
    return data


def idempotent(view):
    """`Idempotency-Key` on POSTs that create or send: a retry with the same key gets the
    first answer again instead of acting twice (kept 24 h per API key)."""

    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        key = request.headers.get("Idempotency-Key")
        if not key:
            return view(*args, **kwargs)
        if len(key) > 255:
            raise ValidationError("Idempotency-Key must be at most 255 characters.")
        digest = hashlib.sha256(f"{request.method} {request.path} {key}".encode()).hexdigest()
        slot = f"herald:idem:{g.api_key.id}:{digest}"
        redis = get_redis()
        fingerprint = hashlib.sha256(request.get_data()).hexdigest()
        stored = redis.get(slot)
        if stored is not None:
            saved = json.loads(stored)
            if saved.get("fingerprint") != fingerprint:
                error = ValidationError("This Idempotency-Key was already used for a different request body; "
                                        "use a new key for a new request.")
                error.status, error.code = 422, "idempotency_key_reused"
                raise error
            response = make_response(saved["body"], saved["status"])
            response.headers["Content-Type"] = "application/json"
            response.headers["Idempotent-Replayed"] = "true"
            return response
        if not redis.set(slot + ":lock", "1", nx=True, ex=60):
            raise LifecycleError("A request with this Idempotency-Key is still being processed; retry shortly.")
        try:
            response = make_response(view(*args, **kwargs))
            if response.status_code < 500:
                redis.set(slot, json.dumps({"status": response.status_code, "fingerprint": fingerprint,
                                            "body": response.get_data(as_text=True)}), ex=IDEMPOTENCY_TTL)
            return response
        finally:
            redis.delete(slot + ":lock")

    return wrapper


def whole_numbers(data: dict, *fields: str) -> dict:
    """A copy of `data` where the named integer fields (`a` or `a.b`) given as 60.0 are 60: JSON has
    one number type, and the document's `integer` accepts a zero fraction, so the API does too."""
    def whole(value):
        return int(value) if isinstance(value, float) and value.is_integer() else value

    out = dict(data)
    for field in fields:
        head, _, tail = field.partition(".")
        if not tail and head in out:
            out[head] = whole(out[head])
        elif tail and isinstance(out.get(head), dict) and tail in out[head]:
            out[head] = {**out[head], tail: whole(out[head][tail])}
    return out
