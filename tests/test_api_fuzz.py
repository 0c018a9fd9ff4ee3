"""Schemathesis fuzzes every API operation against the OpenAPI document, in process (WSGI), with
every check: no server error, documented status codes, content types and bodies, invalid input
rejected, valid input accepted, auth enforced. Paths reach real, seeded objects. The end-user inbox
(/inbox/v1, its own server in the document) is called with a user token for user-1."""

import copy
import hashlib
import itertools
import os
from datetime import timedelta

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from hypothesis.stateful import run_state_machine_as_test
from schemathesis.core.parameters import ParameterLocation
from sqlalchemy import select, update

from dashboard import rendering
from dashboard.api.openapi import document
from dashboard.extensions import db
from dashboard.models import ApiKey, Campaign, Notification, Recipient, Template, UserList, utcnow
from dashboard.queries import encode_cursor
from dashboard.services import accounts, campaigns, inbox, lifecycle, lists, recipients, users
from dashboard.services.actor import Actor
from tests.engine import drain
from tests.test_api_campaigns import make_template

# Sized for CI (the suite runs on both backends); HERALD_FUZZ_SEED / HERALD_FUZZ_EXAMPLES dig deeper by hand.
SEED = int(os.environ.get("HERALD_FUZZ_SEED", "20261127"))
EXAMPLES = int(os.environ.get("HERALD_FUZZ_EXAMPLES", "25"))
WORKFLOWS = int(os.environ.get("HERALD_FUZZ_WORKFLOWS", "10"))
ACTOR = Actor.system("fuzz")
USERS = ["user-1", "user-2", "user.three@example.com"]
# Every operation's test starts from an empty database, so the seeded ids are known in advance.
CAMPAIGN_IDS = [1, 2, 3, 4]  # draft, scheduled, sent (one recipient failed), cancelled
NOTIFICATION_IDS = [1, 2, 3]
KEY = "hrld_fuzz0000_" + "k" * 43  # an admin key, so every operation is allowed
INBOX_USER = USERS[0]  # the inbox token's user: notification 1 is theirs, 2 and 3 are others' (404)
INBOX_TOKEN = "inbox-token-minted-at-call-time"  # cases are made before the app: realistic() mints the real one


def _campaign(name: str, user_ids: list[str]) -> Campaign:
    campaign = campaigns.create({"name": name, "templateId": "promo", "variables": {"offer": "10% off"}}, ACTOR)
    recipients.add_manual(campaign.id, user_ids, {user_ids[0]: {"firstName": "Ada"}}, ACTOR)
    return campaign


def _seed() -> dict:
    """A draft, a scheduled, a sent (with one failed recipient) and a cancelled campaign; an
    approved and a draft template; directory users with in-app notifications."""
    make_template("promo")
    make_template("spare")  # approved too: workflows may archive promo
    make_template("drafty", status="draft")
    users.upsert([{"userId": u, "name": f"User {u}", "email": "u@example.com", "timezone": "Europe/Oslo"}
                  for u in USERS])
    draft = _campaign("Draft", USERS)
    scheduled = _campaign("Scheduled", USERS[:2])
    lifecycle.send(scheduled.id, (utcnow() + timedelta(days=2)).isoformat(), ACTOR)
    sent = _campaign("Sent", USERS)
    lifecycle.send(sent.id, None, ACTOR)
    drain()
    db.session.execute(update(Recipient).where(Recipient.campaign_id == sent.id, Recipient.user_id == USERS[1])
                       .values(status="failed", last_error="HTTP 500 from the provider"))
    db.session.execute(update(Campaign).where(Campaign.id == sent.id).values(sent=2, failed=1))
    cancelled = _campaign("Cancelled", USERS[:2])
    lifecycle.cancel(cancelled.id, ACTOR)
    db.session.execute(update(Recipient).where(Recipient.campaign_id == cancelled.id, Recipient.user_id == USERS[0])
                       .values(status="failed", last_error="timed out"))
    db.session.execute(update(Campaign).where(Campaign.id == cancelled.id).values(skipped=1, failed=1))
    db.session.commit()
    assert [draft.id, scheduled.id, sent.id, cancelled.id] == CAMPAIGN_IDS
    assert db.session.scalars(select(Notification.id).order_by(Notification.id)).all() == NOTIFICATION_IDS


def _config() -> schemathesis.Config:
    return schemathesis.Config.from_dict({
        "seed": SEED,
        "generation": {"mode": "all", "max-examples": EXAMPLES, "deterministic": True},
        "checks": {"enabled": True},
        "auth": {"openapi": {"bearerAuth": {"bearer": KEY}, "inboxToken": {"bearer": INBOX_TOKEN}}},
        "phases": {"examples": {"enabled": True}, "coverage": {"enabled": True}, "fuzzing": {"enabled": True},
                   "stateful": {"enabled": True, "max-steps": 8, "checks": {"positive_data_acceptance": {
                       # In a workflow an earlier step may archive the campaign's template or send the
                       # draft: SPEC §3 then refuses a well-formed send/create with 400 ("not approved",
                       # "no recipients", "nothing to retry"). The check cannot see state, so workflows
                       # also accept 400 there; per-operation runs (fresh seeds) keep it strict.
                       "expected-statuses": ["2xx", "3xx", "400", "401", "403", "404", "409", "429", "5xx"]}}}},
        "dictionaries": {
            "campaignIds": {"values": CAMPAIGN_IDS},
            "templateIds": {"values": ["promo", "drafty"]},
            "userIds": {"values": USERS},
            "notificationIds": {"values": NOTIFICATION_IDS},
        },
        "parameters": {
            "path.campaignId": {"dictionary": "campaignIds", "probability": 0.7},
            "path.templateId": {"dictionary": "templateIds", "probability": 0.7},
            "path.userId": {"dictionary": "userIds", "probability": 0.7},
            "path.notificationId": {"dictionary": "notificationIds", "probability": 0.7},
        },
    })


class _SessionApp:
    """The schema is built at import, the app by a session fixture: requests (and the checks'
    own probes) go through this WSGI callable, bound to the app when a test starts."""

    target = None

    def __call__(self, environ, start_response):
        return self.target(environ, start_response)


WSGI = _SessionApp()


@pytest.fixture
def seeded(app, make_account):
    WSGI.target = app
    inbox._cache.clear()  # the inbox secret is made anew in each emptied database
    # A stream answers its first events at once; short heartbeats and lives end the rest quickly.
    saved = {name: app.config[name] for name in ("HERALD_INBOX_HEARTBEAT", "HERALD_INBOX_STREAM_SECONDS")}
    app.config.update(HERALD_INBOX_HEARTBEAT=0.1, HERALD_INBOX_STREAM_SECONDS=0.3)
    _seed()
    key, _ = accounts.create_api_key(make_account("admin"), "fuzz", ACTOR)
    key.prefix, key.key_hash = KEY.split("_")[1], hashlib.sha256(KEY.encode()).hexdigest()
    db.session.commit()
    assert db.session.scalar(select(ApiKey.id).where(ApiKey.prefix == "fuzz0000")) == key.id
    yield
    app.config.update(saved)


INBOX = "/inbox/v1/"


def _part(inbox: bool) -> dict:
    """The /api/v1 operations, or the /inbox/v1 ones with their own server (the root) made the
    document's: Schemathesis builds and checks request paths from the document's first server."""
    raw = copy.deepcopy(document())
    raw["paths"] = {path: item for path, item in raw["paths"].items() if path.startswith(INBOX) is inbox}
    for item in raw["paths"].values():
        if inbox:
            raw["servers"] = item.pop("servers")  # the same on every inbox path (tests/test_openapi.py)
    return raw


# The document as GET /api/v1/openapi.json serves it (tests/test_openapi.py checks they are equal), in
# its two parts.
schema = schemathesis.openapi.from_dict(_part(inbox=False), config=_config())  # it writes inferred links in
schema.app = WSGI
inbox_schema = schemathesis.openapi.from_dict(_part(inbox=True), config=_config())
inbox_schema.app = WSGI

# What JSON Schema cannot say: a cursor is one the API handed out, a templateId names a template,
# variables are the template's, a schedule is in the future, a file is a CSV, channel settings are
# that channel's, URLs are http(s), a new templateId or Idempotency-Key is one not used before, and
# fields a body does not document are left out. Valid (positive) cases get real ones, so "valid data is
# accepted" is checked on requests a correct client would send; invalid (negative) cases are
# sent exactly as generated.
STRING_VARIABLES = {"firstName", "offer"}  # promo's string variables (make_template)
CSV = "userId,offer,banner\nuser-1,5% off,https://img.example.com/b.png\nuser-9,7% off,\n"
SETTINGS = {"in_app": (), "email": ("sender",), "webhook": ("timeoutSeconds",)}
UNIQUE = itertools.count()


def _documented_fields(case) -> set[str] | None:
    operation = document()["paths"][case.operation.path][case.operation.method.lower()]
    body = operation.get("requestBody", {}).get("content", {}).get("application/json")
    schema = body["schema"] if body is not None else {}
    if "$ref" in schema:
        schema = document()["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return set(schema["properties"]) if "properties" in schema else None


def _approved_template() -> str:
    """promo, unless a workflow archived it (both approved templates share content and variables)."""
    found = db.session.scalar(select(Template.template_id).where(
        Template.template_id.in_(["promo", "spare"]), Template.status == "approved").order_by(Template.template_id))
    db.session.rollback()  # no transaction left open beside the app's requests
    return found or "promo"


def _audience_list() -> int:
    """A list of the seeded users, for a valid campaign `audience`."""
    found = db.session.scalar(select(UserList.id).where(UserList.name == "Fuzz audience"))
    if found is None:
        found = lists.create("Fuzz audience", None, ACTOR, user_ids=USERS).id
    return found


def _keep(data: dict, names: set[str]) -> None:
    for name in set(data) - names:
        del data[name]


def _variables(values):
    if not isinstance(values, dict):
        return values
    return {k: v for k, v in values.items() if k in STRING_VARIABLES and not isinstance(v, (dict, list))}


def _template_body(body: dict) -> None:
    if body.get("templateId"):  # a slug no earlier example has taken
        body["templateId"] = f"{body['templateId'][:50]}-fuzz{next(UNIQUE)}"
    seen = set()
    for variable in list(body.get("variableSchema") or []):
        if variable["key"] in seen:
            body["variableSchema"].remove(variable)
        seen.add(variable["key"])
        if variable.get("type") in ("image", "action"):
            variable.pop("defaultValue", None)
    for content in (body.get("channels") or {}).values():
        for field in ("imageUrl", "actionUrl"):
            if content.get(field):
                content[field] = "https://example.com/" + field
    used = [key for content in (body.get("channels") or {}).values() for text in content.values()
            if isinstance(text, str) for key in rendering.placeholders(text)]
    if used:  # every {{ placeholder }} in the content is declared (values seen in answers carry some)
        declared = body.get("variableSchema") or []
        body["variableSchema"] = declared + [{"key": key, "type": "string"} for key in dict.fromkeys(used)
                                             if key not in {v["key"] for v in declared}]


def _segment_body(body: dict) -> None:
    """Segments: a fresh name; conditions that name things which exist (the seeded campaigns; no
    attribute or list is seeded, so those leaves become an inactivity condition); ≤ 50 in all."""
    if isinstance(body.get("name"), str):
        body["name"] = f"{body['name'][:180]}-fuzz{next(UNIQUE)}"
    budget = [50]

    def walk(node):
        kept = []
        for cond in node.get("conditions") or []:
            if budget[0] <= 0:
                break
            budget[0] -= 1
            if cond.get("type") == "group":
                _keep(cond, {"type", "match", "conditions"})
                walk(cond)
            elif cond.get("type") == "campaign":
                _keep(cond, {"type", "event", "campaignId", "negate"})
                cond["campaignId"] = CAMPAIGN_IDS[int(cond["campaignId"]) % len(CAMPAIGN_IDS)]
            elif cond.get("type") == "inactive":
                _keep(cond, {"type", "days"})
            else:
                cond = {"type": "inactive", "days": 30}
            kept.append(cond)
        if "conditions" in node:
            node["conditions"] = kept
    if isinstance(body.get("definition"), dict):
        _keep(body["definition"], {"match", "conditions"})
        walk(body["definition"])


def _valid(case, location: ParameterLocation) -> bool:
    component = case.meta.components.get(location) if case.meta is not None else None
    return component is None or not component.mode.is_negative


def realistic(case) -> None:
    """Give the valid parts of a case the references and values a correct client would send."""
    label, body = case.operation.label, case.body
    if case.headers and case.headers.get("Authorization") == f"Bearer {INBOX_TOKEN}":
        # minted per case: a workflow's POST /settings/inbox/rotate revokes every earlier token
        case.headers["Authorization"] = f"Bearer {inbox.issue_token(INBOX_USER)[0]}"
        db.session.rollback()  # no transaction left open beside the app's requests
    if case.headers and "Idempotency-Key" in case.headers and _valid(case, ParameterLocation.HEADER):
        case.headers["Idempotency-Key"] = f"fuzz-{next(UNIQUE)}"
    if case.query and case.query.get("cursor") is not None and _valid(case, ParameterLocation.QUERY):
        case.query["cursor"] = encode_cursor(NOTIFICATION_IDS[-1])
    if not _valid(case, ParameterLocation.BODY):
        return
    if label == "POST /campaigns/{campaignId}/recipients/upload" and isinstance(body, dict):
        body["file"] = CSV
        return
    if label == "POST /users":
        if isinstance(body, dict):
            _keep(body, {"users"})
        for entry in (body.get("users") if isinstance(body, dict) else body) or []:
            _keep(entry, {"userId", "name", "email", "timezone"})
    if not isinstance(body, dict):
        return
    fields = _documented_fields(case)
    if fields is not None:
        _keep(body, fields)
    for variable in body.get("variableSchema") or []:
        _keep(variable, {"key", "type", "label", "required", "defaultValue"})
    if label in ("POST /campaigns", "PATCH /campaigns/{campaignId}", "POST /notifications") and "templateId" in body:
        body["templateId"] = _approved_template()
    if label in ("POST /campaigns", "PATCH /campaigns/{campaignId}") and isinstance(body.get("audience"), dict):
        body["audience"] = {"listId": _audience_list()}  # a list that exists
    if body.get("templateVersion") is not None:
        body["templateVersion"] = 1  # the approved version of promo and spare
    if label == "POST /campaigns/{campaignId}/test" and isinstance(body.get("targets"), list):
        body["targets"] = body["targets"][:10]
    if "variables" in body:
        body["variables"] = _variables(body["variables"])
    if label == "POST /notifications":
        body["channel"] = "in_app"
        body["variables"] = {**(body.get("variables") or {}), "offer": "10% off"}
    if isinstance(body.get("userVariables"), dict):
        body["userVariables"] = {u: _variables(v) for u, v in body["userVariables"].items()}
    if label in ("POST /templates", "PATCH /templates/{templateId}"):
        _template_body(body)
        if label.startswith("PATCH"):
            body.pop("templateId", None)
            if body.get("variableSchema") is not None and body.get("channels") is None:
                del body["variableSchema"]  # the stored content's {{ placeholders }} must stay declared
    if label == "POST /campaigns/{campaignId}/send" and body.get("scheduledAt") is not None:
        body["scheduledAt"] = (utcnow() + timedelta(days=1)).isoformat()
    if label == "POST /campaigns/{campaignId}/send" and isinstance(body.get("haltRule"), dict):
        _keep(body["haltRule"], {"percent", "window"})
    if label == "POST /campaigns/{campaignId}/send" and isinstance(body.get("sendAt"), dict):
        # a day ahead, a real zone, and none of the options a local-time send cannot have
        _keep(body["sendAt"], {"localTime", "date", "fallbackZone", "passed"})
        body["sendAt"] |= {"date": (utcnow() + timedelta(days=1)).date().isoformat(), "fallbackZone": "Asia/Kolkata"}
        for name in ("scheduledAt", "canary", "spreadMinutes"):
            body.pop(name, None)
    if label in ("POST /segments", "PATCH /segments/{segmentId}", "POST /segments/count"):
        _segment_body(body)
    if label == "PUT /settings/inbox" and isinstance(body.get("allowedOrigins"), list):
        body["allowedOrigins"] = [f"https://app{n}.example.com" for n in range(len(body["allowedOrigins"]))]
    if label == "PUT /settings/quiet-hours" and body.get("start") is not None and body.get("start") == body.get("end"):
        body["end"] = "08:00" if body["start"] != "08:00" else "07:00"  # an empty window is refused
    if label == "PUT /settings/frequency-caps" and isinstance(body.get("rules"), list):
        for rule in body["rules"]:
            _keep(rule, {"channel", "limit", "window"})
        seen = set()  # at most one rule per channel and window
        body["rules"] = [r for r in body["rules"] if (r.get("channel", "all"), r.get("window")) not in seen
                         and not seen.add((r.get("channel", "all"), r.get("window")))]
    if label == "POST /campaigns/{campaignId}/send" and isinstance(body.get("canary"), dict):
        # a first wave smaller than the audience (the seeded draft has 3 recipients)
        body["canary"] = {"size": 1, "holdMinutes": body["canary"].get("holdMinutes")}
    if label == "PUT /channels/{type}" and isinstance(body.get("settings"), dict):
        kind = case.path_parameters["type"]
        body["settings"] = {k: v for k, v in body["settings"].items() if k in SETTINGS.get(kind, ())}


@schema.parametrize()
@settings(max_examples=EXAMPLES, derandomize=True, deadline=None, database=None,
          suppress_health_check=list(HealthCheck))
def test_api_conforms_to_its_document(case, seeded):
    realistic(case)
    case.call_and_validate()


@inbox_schema.parametrize()
@settings(max_examples=EXAMPLES, derandomize=True, deadline=None, database=None,
          suppress_health_check=list(HealthCheck))
def test_inbox_api_conforms_to_its_document(case, seeded):
    realistic(case)
    case.call_and_validate()


# Workflows: the document's links (create -> read, edit, add recipients, send, cancel, ...) chain
# operations, each answer checked like above.
class Workflow(schema.as_state_machine()):
    def before_call(self, case):
        realistic(case)


def test_api_workflows_conform_to_the_document(seeded):
    run_state_machine_as_test(Workflow, settings=settings(
        max_examples=WORKFLOWS, stateful_step_count=8, derandomize=True, deadline=None, database=None,
        suppress_health_check=list(HealthCheck)))
