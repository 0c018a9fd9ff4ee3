"""The audience parts of `make bench` (issue 16), PostgreSQL, one process; prints one JSON line.

audience, in order, on one database:
1. import: 1,000,000 users with 5 typed attributes through `POST /api/v1/users` (100 calls of
   10,000, 2 clients at once) against gunicorn as the Procfile runs it. Floor: a raw COPY of the
   same rows into a copy of the users table (same indexes).
2. count: segment counts over the 1,000,000 users (attribute filters of each type, AND/OR groups,
   a list condition), each definition 20 times; p50/p95 over all of them.
3. materialise: a campaign whose audience is a segment matching ~1,000,000 users, frozen (one
   INSERT ... SELECT with the template's variables from the attributes). Floor: a raw COPY of the
   same 1,000,000 recipient rows into a copy of the recipients table (same indexes).
4. send: that campaign sent in-app with 2 workers, from Send to status sent.
5. engagement counts after the send ("received the campaign", "read nothing in 30 days": joins
   against 1,000,000 recipients / notifications), 20 times each."""

from __future__ import annotations

import io
import json
import os
import statistics
import threading
import time

import httpx
from sqlalchemy import func, select, text

from dashboard import create_app
from dashboard.extensions import db
from dashboard.models import Campaign, Notification, Recipient, User
from dashboard.services import audiences, campaigns, lifecycle, lists, segments, templates
from scripts.bench_parts import ACTOR, _gunicorn, setup, wait_final
from scripts.bench_procs import Children, main

USERS = int(os.environ.get("HERALD_BENCH_AUDIENCE_USERS", "1000000"))
CALL = 10_000
CLIENTS = 2
COUNT_REPEATS = 20
PLANS = ["free", "pro", "team", "enterprise"]
COUNTRIES = ["NO", "SE", "DK", "FI", "DE", "FR", "US", "GB"]


def user_row(i: int) -> dict:
    return {"userId": f"u-{i:07d}", "name": f"User {i}", "email": f"u{i}@example.com",
            "attributes": {"plan": PLANS[i % 4], "age": 18 + i % 60, "vip": i % 10 == 0,
                           "signup": f"{2020 + i % 6}-{1 + i % 12:02d}-{1 + i % 28:02d}",
                           "country": COUNTRIES[i % 8]}}


def bodies() -> list[bytes]:
    return [json.dumps({"users": [user_row(i) for i in range(start, min(start + CALL, USERS))]}).encode()
            for start in range(0, USERS, CALL)]


def import_users(base: str, key: str) -> float:
    payloads = bodies()  # encoded before the clock starts: the client's JSON is not the server's work
    queue = list(reversed(payloads))
    lock = threading.Lock()
    errors: list[str] = []

    def client():
        with httpx.Client(base_url=base, timeout=120, headers={"Authorization": f"Bearer {key}",
                                                               "Content-Type": "application/json"}) as c:
            while True:
                with lock:
                    if not queue:
                        return
                    body = queue.pop()
                response = c.post("/api/v1/users", content=body)
                result = response.json()
                if response.status_code != 200 or result.get("errors"):
                    errors.append(f"{response.status_code} {str(result)[:300]}")

    start = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    assert not errors, errors[:3]
    return elapsed


def copy_floor(table: str, columns: list[str], rows) -> float:
    """COPY the rows into an empty copy of `table` with the same indexes; the seconds it took."""
    scratch = f"floor_{table}"
    db.session.execute(text(f"DROP TABLE IF EXISTS {scratch}"))
    db.session.execute(text(f"CREATE TABLE {scratch} (LIKE {table} INCLUDING DEFAULTS INCLUDING INDEXES)"))
    db.session.commit()
    buffer = io.StringIO()
    for row in rows:
        buffer.write("\t".join(_copy_text(v) for v in row) + "\n")
    data = buffer.getvalue()
    conn = db.session.connection()
    raw = conn.connection.driver_connection
    start = time.perf_counter()
    with raw.cursor() as cur:
        with cur.copy(f"COPY {scratch} ({', '.join(columns)}) FROM STDIN") as copy:
            copy.write(data)
    db.session.commit()
    elapsed = time.perf_counter() - start
    db.session.execute(text(f"DROP TABLE {scratch}"))
    db.session.commit()
    return elapsed


def _copy_text(value) -> str:
    if value is None:
        return "\\N"
    if isinstance(value, dict):
        value = json.dumps(value, separators=(",", ":"))
    return str(value).replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")


def vacuum(*tables: str) -> None:
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        for table in tables:
            conn.execute(text(f"VACUUM ANALYZE {table}"))


def time_counts(definitions: dict[str, dict]) -> dict[str, list[float]]:
    samples: dict[str, list[float]] = {}
    for name, definition in definitions.items():
        clean = segments.validate(definition)
        segments.count(clean)  # warm the plan cache like a builder's first keystroke
        runs = []
        for _ in range(COUNT_REPEATS):
            start = time.perf_counter()
            segments.count(clean)
            runs.append((time.perf_counter() - start) * 1000)
            db.session.rollback()
        samples[name] = runs
    return samples


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[max(0, int(round(len(ordered) * 0.95)) - 1)]


def _attr(name, op, value=None) -> dict:
    condition = {"type": "attribute", "attribute": name, "operator": op}
    if value is not None:
        condition["value"] = value
    return condition


def part_audience() -> dict:
    app = create_app()
    with app.app_context(), Children() as children:
        _, key = setup(app)
        db.session.execute(text("TRUNCATE users, user_attributes, segments, user_lists RESTART IDENTITY CASCADE"))
        db.session.commit()
        templates.create({"name": "Audience", "templateId": "audience",
                          "channels": {"in_app": {"title": "Hi {{ name }}", "body": "Your {{ plan }} plan in "
                                                                                      "{{ country }}"}},
                          "variableSchema": [{"key": "name", "type": "string"},
                                             {"key": "plan", "type": "string", "required": True},
                                             {"key": "country", "type": "string"}]}, ACTOR)
        templates.transition("audience", "approve", ACTOR)
        base = _gunicorn(children)

        # 1. import through the API
        import_s = import_users(base, key)
        users = db.session.scalar(select(func.count()).select_from(User))
        assert users == USERS, users
        vacuum("users")
        floor_import_s = copy_floor("users", ["user_id", "name", "email", "attributes", "created_at", "updated_at"],
                                    ((u["userId"], u["name"], u["email"], u["attributes"], "2026-11-27 00:00:00+00",
                                      "2026-11-27 00:00:00+00") for u in map(user_row, range(USERS))))

        # 2. segment counts
        vip_list = lists.create("VIP sample", None, ACTOR, user_ids=[f"u-{i:07d}" for i in range(0, 100_000, 10)])
        db.session.commit()
        vacuum("user_list_members")
        definitions = {
            "plan = pro": {"match": "all", "conditions": [_attr("plan", "eq", "pro")]},
            "age > 40": {"match": "all", "conditions": [_attr("age", "gt", 40)]},
            "age between 25 and 34 and vip": {"match": "all", "conditions": [_attr("age", "between", [25, 34]),
                                                                             _attr("vip", "is_true")]},
            "signup after 2024-06-01": {"match": "all", "conditions": [_attr("signup", "after", "2024-06-01")]},
            "country in NO,SE,DK": {"match": "all", "conditions": [_attr("country", "in", ["NO", "SE", "DK"])]},
            "pro or team, in the Nordics, signed up since 2022": {"match": "all", "conditions": [
                {"type": "group", "match": "any",
                 "conditions": [_attr("plan", "eq", "pro"), _attr("plan", "eq", "team")]},
                _attr("country", "in", ["NO", "SE", "DK", "FI"]), _attr("signup", "after", "2022-01-01")]},
            "vip, or not free and at most 30": {"match": "any", "conditions": [
                _attr("vip", "is_true"),
                {"type": "group", "match": "all", "conditions": [_attr("plan", "neq", "free"),
                                                                  _attr("age", "lte", 30)]}]},
            "in the VIP list": {"match": "all", "conditions": [{"type": "list", "listId": vip_list.id,
                                                                "negate": False}]},
        }
        counts = time_counts(definitions)

        # 3. materialise a segment of ~1,000,000 users
        everyone = segments.create({"name": "Everyone with a plan",
                                    "definition": {"match": "all", "conditions": [_attr("plan", "exists")]}}, ACTOR)
        db.session.commit()
        campaign = campaigns.create({"name": "Audience bench", "templateId": "audience"}, ACTOR)
        db.session.commit()
        audiences.set_audience(campaign.id, "segment", everyone.id, ACTOR)
        db.session.commit()
        start = time.perf_counter()
        audiences.freeze(campaign.id, ACTOR)
        db.session.commit()
        materialise_s = time.perf_counter() - start
        db.session.expire_all()
        campaign = db.session.get(Campaign, campaign.id)
        assert campaign.total == USERS and campaign.pending == USERS, (campaign.total, campaign.pending)
        sample = db.session.scalar(select(Recipient.variables).where(Recipient.campaign_id == campaign.id,
                                                                     Recipient.user_id == "u-0000005"))
        assert sample == {"name": "User 5", "plan": "pro", "country": "FR"} or sample.get("plan") == "pro", sample
        floor_materialise_s = copy_floor(
            "recipients", ["campaign_id", "user_id", "variables", "email", "status", "attempts", "created_at"],
            ((campaign.id, f"u-{i:07d}", {"plan": PLANS[i % 4], "country": COUNTRIES[i % 8]}, f"u{i}@example.com",
              "pending", 0, "2026-11-27 00:00:00+00") for i in range(USERS)))
        vacuum("recipients")

        # 4. send it in-app with 2 workers
        for _ in range(2):
            children.worker()
        time.sleep(2.0)
        start = time.perf_counter()
        lifecycle.send(campaign.id, None, ACTOR)
        campaign = wait_final(campaign.id, 600, poll=0.2)
        send_s = time.perf_counter() - start
        assert (campaign.status, campaign.sent) == ("sent", USERS), (campaign.status, campaign.sent)
        feed = db.session.scalar(select(func.count()).select_from(Notification)
                                 .where(Notification.campaign_id == campaign.id))
        assert feed == USERS, feed

        # 5. engagement conditions against 1,000,000 recipients and notifications
        vacuum("recipients", "notifications")
        counts |= time_counts({
            "received the bench campaign": {"match": "all", "conditions": [
                {"type": "campaign", "event": "received", "campaignId": campaign.id, "negate": False}]},
            "read nothing in the last 30 days, pro": {"match": "all", "conditions": [
                {"type": "inactive", "days": 30}, _attr("plan", "eq", "pro")]},
        })
        matched = segments.count(segments.validate(definitions["plan = pro"]))
        assert matched == USERS // 4, matched
    every = [ms for runs in counts.values() for ms in runs]
    return {"users": USERS, "import_s": import_s, "floor_import_s": floor_import_s,
            "count_p50_ms": statistics.median(every), "count_p95_ms": p95(every),
            "counts": {name: {"p50": statistics.median(r), "p95": p95(r)} for name, r in counts.items()},
            "materialise_s": materialise_s, "floor_materialise_s": floor_materialise_s, "send_s": send_s}


if __name__ == "__main__":
    main({"audience": part_audience})
