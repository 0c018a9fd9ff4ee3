"""Segment counts over 1,000,000 users on PostgreSQL (issue 16's bar: p95 ≤ 300 ms).

`measure(session, definitions)` times `SELECT count(*) FROM users WHERE <compiled definition>` for
each definition (20 runs after one warm-up) and returns p50/p95 per definition; `make bench` can
call it on its own data. Run as a script it builds a scratch database itself (never the app's):

    DATABASE_URL=postgresql://postgres@localhost:5432/segbench .venv/bin/python -m scripts.bench_segments

(creates the database if missing, runs the migrations, fills 1,000,000 users with 5 attributes by
INSERT … SELECT generate_series, a sent campaign with 200,000 recipients and notifications, a list
of 10,000, ANALYZE), then prints one JSON line with the figures.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time

from sqlalchemy import func, select, text

REPEATS = 20
USERS = int(os.environ.get("HERALD_BENCH_SEGMENT_USERS", "1000000"))


def _p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[max(0, int(round(len(ordered) * 0.95)) - 1)]


def measure(session, definitions: dict[str, dict], repeats: int = REPEATS) -> dict[str, dict]:
    """{name: {"count", "p50_ms", "p95_ms", "max_ms"}} for each definition, counted `repeats` times
    (after one warm-up run) on `session`. Needs an app context (the attribute registry)."""
    from dashboard.models import User
    from dashboard.services import segments

    results = {}
    for name, definition in definitions.items():
        clean = segments.validate(definition)
        query = select(func.count()).select_from(User).where(segments.compile(clean))
        found = session.scalar(query)
        runs = []
        for _ in range(repeats):
            start = time.perf_counter()
            session.scalar(query)
            runs.append((time.perf_counter() - start) * 1000)
        session.rollback()
        results[name] = {"count": found, "p50_ms": round(statistics.median(runs), 1),
                         "p95_ms": round(_p95(runs), 1), "max_ms": round(max(runs), 1)}
    return results


def floor(session, repeats: int = REPEATS) -> dict:
    """The same run's floor: a count that reads every user's attributes without testing them
    (`attributes IS NOT NULL`, the seq scan every attribute filter pays at least)."""
    query = text("SELECT count(*) FROM users WHERE attributes IS NOT NULL AND attributes <> '{}'::jsonb")
    session.scalar(query)
    runs = []
    for _ in range(repeats):
        start = time.perf_counter()
        session.scalar(query)
        runs.append((time.perf_counter() - start) * 1000)
    session.rollback()
    return {"p50_ms": round(statistics.median(runs), 1), "p95_ms": round(_p95(runs), 1)}


def _attr(name, op, value=None) -> dict:
    condition = {"type": "attribute", "attribute": name, "operator": op}
    if value is not None:
        condition["value"] = value
    return condition


def definitions(campaign_id: int, list_id: int) -> dict[str, dict]:
    return {
        "plan = pro (eq)": {"match": "all", "conditions": [_attr("plan", "eq", "pro")]},
        "age > 40 (range)": {"match": "all", "conditions": [_attr("age", "gt", 40)]},
        "age between 25 and 34 and vip": {"match": "all", "conditions": [_attr("age", "between", [25, 34]),
                                                                         _attr("vip", "is_true")]},
        "signup within 90 days": {"match": "all", "conditions": [_attr("signup", "within_last_days", 90)]},
        "country in NO,SE,DK (in)": {"match": "all", "conditions": [_attr("country", "in", ["NO", "SE", "DK"])]},
        "(pro or team) and Nordics and signup after 2022": {"match": "all", "conditions": [
            {"type": "group", "match": "any", "conditions": [_attr("plan", "eq", "pro"), _attr("plan", "eq", "team")]},
            _attr("country", "in", ["NO", "SE", "DK", "FI"]), _attr("signup", "after", "2022-01-01")]},
        "vip or (not free and age <= 30)": {"match": "any", "conditions": [
            _attr("vip", "is_true"),
            {"type": "group", "match": "all", "conditions": [_attr("plan", "neq", "free"), _attr("age", "lte", 30)]}]},
        "in list (10k)": {"match": "all", "conditions": [{"type": "list", "listId": list_id, "negate": False}]},
        "pro and read campaign": {"match": "all", "conditions": [
            _attr("plan", "eq", "pro"), {"type": "campaign", "event": "read", "campaignId": campaign_id}]},
        "received campaign, not clicked": {"match": "all", "conditions": [
            {"type": "campaign", "event": "received", "campaignId": campaign_id},
            {"type": "campaign", "event": "clicked", "campaignId": campaign_id, "negate": True}]},
        "inactive 30 days": {"match": "all", "conditions": [{"type": "inactive", "days": 30}]},
    }


FILL_USERS = """
INSERT INTO users (user_id, name, attributes, created_at, updated_at)
SELECT 'u-' || lpad(i::text, 7, '0'), 'User ' || i,
       jsonb_build_object(
         'plan', (ARRAY['free','free','pro','team','enterprise'])[1 + (hashint4(i) & 2147483647) % 5],
         'age', 18 + (hashint4(i + 1) & 2147483647) % 60,
         'vip', (hashint4(i + 2) & 2147483647) % 10 = 0,
         'signup', to_char(DATE '2026-11-27' - ((hashint4(i + 3) & 2147483647) % 2000), 'YYYY-MM-DD'),
         'country', (ARRAY['NO','SE','DK','FI','DE','FR','US','GB'])[1 + (hashint4(i + 4) & 2147483647) % 8]),
       now(), now()
FROM generate_series(1, :n) AS i
"""


def build(app) -> tuple[int, int]:
    """Fill the scratch database; the campaign id and list id the definitions refer to."""
    from dashboard.extensions import db
    from dashboard.models import Campaign, UserAttribute, UserList
    from dashboard.services import campaigns, templates
    from dashboard.services.actor import Actor

    actor = Actor.system("bench")
    db.session.execute(text("TRUNCATE users, user_attributes, user_lists, campaigns, templates RESTART IDENTITY "
                            "CASCADE"))
    for name, kind in (("plan", "string"), ("age", "number"), ("vip", "boolean"), ("signup", "date"),
                       ("country", "string")):
        db.session.add(UserAttribute(name=name, type=kind))
    db.session.commit()
    db.session.execute(text(FILL_USERS), {"n": USERS})
    templates.create({"name": "Bench", "templateId": "bench", "channels": {"in_app": {"title": "T", "body": "B"}}},
                     actor)
    templates.transition("bench", "approve", actor)
    campaign = campaigns.create({"name": "Sent one", "templateId": "bench"}, actor)
    db.session.get(Campaign, campaign.id).status = "sent"
    # every 5th user received it; a third of those read it, a tenth clicked
    db.session.execute(text("""
        INSERT INTO recipients (campaign_id, user_id, variables, status, attempts, created_at)
        SELECT :c, 'u-' || lpad(i::text, 7, '0'), '{}', 'sent', 1, now()
        FROM generate_series(5, :n, 5) AS i"""), {"c": campaign.id, "n": USERS})
    db.session.execute(text("""
        INSERT INTO notifications (recipient_id, campaign_id, user_id, title, body, created_at, read_at, clicked_at)
        SELECT r.id, :c, r.user_id, 'T', 'B', now() - interval '40 days',
               CASE WHEN r.id % 3 = 0 THEN now() - (r.id % 60) * interval '1 day' END,
               CASE WHEN r.id % 10 = 0 THEN now() - interval '1 day' END
        FROM recipients r WHERE r.campaign_id = :c"""), {"c": campaign.id})
    vip = UserList(name="VIP sample", size=10_000)
    db.session.add(vip)
    db.session.flush()
    db.session.execute(text("""
        INSERT INTO user_list_members (list_id, user_id, added_at)
        SELECT :l, 'u-' || lpad(i::text, 7, '0'), now() FROM generate_series(7, 700000, 70) AS i"""), {"l": vip.id})
    db.session.commit()
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        for table in ("users", "recipients", "notifications", "user_list_members"):
            conn.execute(text(f"VACUUM ANALYZE {table}"))
    return campaign.id, vip.id


def main() -> int:
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith("postgresql") or url.rsplit("/", 1)[-1] in ("herald", "postgres"):
        print("set DATABASE_URL to a scratch PostgreSQL database, e.g. postgresql://postgres@localhost/segbench",
              file=sys.stderr)
        return 2
    import psycopg
    from flask_migrate import upgrade

    from dashboard import create_app
    from dashboard.extensions import db
    from dashboard.models import Campaign, UserList

    admin, name = url.rsplit("/", 1)
    with psycopg.connect(admin + "/postgres", autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')
    app = create_app({"DATABASE_URL": url, "SECRET_KEY": os.environ.get("SECRET_KEY", "bench-only"),
                      "HERALD_ENV": os.environ.get("HERALD_ENV", "development")})
    with app.app_context():
        upgrade()
        have = db.session.scalar(text("SELECT count(*) FROM users"))
        if have != USERS or os.environ.get("HERALD_BENCH_REBUILD"):
            start = time.perf_counter()
            campaign_id, list_id = build(app)
            print(f"built {USERS} users in {time.perf_counter() - start:.1f} s", file=sys.stderr)
        else:
            campaign_id = db.session.scalar(select(Campaign.id).order_by(Campaign.id))
            list_id = db.session.scalar(select(UserList.id).order_by(UserList.id))
        base = floor(db.session)
        results = measure(db.session, definitions(campaign_id, list_id))
        base_after = floor(db.session)
    worst = max(r["p95_ms"] for r in results.values())
    for result in results.values():
        result["p50_vs_floor"] = round(result["p50_ms"] / base["p50_ms"], 2)
    print(json.dumps({"users": USERS, "bar_p95_ms": 300, "worst_p95_ms": worst, "floor_before": base,
                      "floor_after": base_after, "definitions": results}))
    return 0 if worst <= 300 else 1


if __name__ == "__main__":
    sys.exit(main())
