"""Campaign reports over a 1,000,000-recipient campaign on PostgreSQL (issue 16: the report must
stay fast at that size). Builds a scratch database itself (never the app's):

    DATABASE_URL=postgresql://postgres@localhost:5432/reportbench .venv/bin/python -m scripts.bench_report

(creates the database if missing, runs the migrations, fills one sent in-app campaign and one sent
email campaign of 1,000,000 recipients each by INSERT … SELECT generate_series: deliveries over 6
hours, in-app reads for 30% and clicks for 5% over 3 days, 1% failed with 5 reasons; email: link
clicks for 5% of recipients on up to 3 links; ten earlier sent campaigns for the benchmark;
VACUUM ANALYZE), then times `reports.report()` (hour and day buckets, each 10 times after a
warm-up): cold (the Redis cache entry deleted before each run: the grouped queries) and warm
(an unchanged campaign looked at again), and the whole engagement CSV of the email campaign, and
prints one JSON line. Floor: a plain `count(*)` of the campaign's recipient rows with the same
index, in the same run. REDIS_URL: a Redis to cache in (default: the app's)."""

from __future__ import annotations

import json
import os
import statistics
import sys
import time

from sqlalchemy import func, select, text

RECIPIENTS = int(os.environ.get("HERALD_BENCH_REPORT_RECIPIENTS", "1000000"))
REPEATS = 10


def _p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[max(0, int(round(len(ordered) * 0.95)) - 1)]


def _timed(fn, repeats: int = REPEATS) -> dict:
    fn()
    runs = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        runs.append((time.perf_counter() - start) * 1000)
    return {"p50_ms": round(statistics.median(runs), 1), "p95_ms": round(_p95(runs), 1)}


FILL_RECIPIENTS = """
INSERT INTO recipients (campaign_id, user_id, variables, email, status, attempts, last_error, created_at, updated_at,
                        sent_at)
SELECT :c, 'u-' || lpad(i::text, 7, '0'), '{}', CASE WHEN :email THEN 'u' || i || '@x.test' END,
       CASE WHEN i % 100 = 0 THEN 'failed' ELSE 'sent' END, 1,
       CASE WHEN i % 100 = 0 THEN 'SMTP 55' || (i / 100 % 5) || ' refused' END,
       :t0, :t0, CASE WHEN i % 100 <> 0 THEN :t0 + (i % 21600) * interval '1 second' END
FROM generate_series(1, :n) AS i
"""
FILL_NOTIFICATIONS = """
INSERT INTO notifications (recipient_id, campaign_id, user_id, title, body, action_url, created_at, read_at,
                           clicked_at)
SELECT r.id, :c, r.user_id, 'T', 'B', 'https://app.example/offer', r.sent_at,
       CASE WHEN r.id % 10 < 3 THEN r.sent_at + (r.id % 259200) * interval '1 second' END,
       CASE WHEN r.id % 20 = 0 THEN r.sent_at + (r.id % 259200) * interval '1 second' END
FROM recipients r WHERE r.campaign_id = :c AND r.status = 'sent'
"""
FILL_CLICKS = """
INSERT INTO link_clicks (campaign_id, recipient_id, user_id, url, clicked_at)
SELECT :c, r.id, r.user_id, 'https://shop.example/' || k, r.sent_at + (r.id % 172800 + k * 60) * interval '1 second'
FROM recipients r CROSS JOIN generate_series(1, 3) AS k
WHERE r.campaign_id = :c AND r.status = 'sent' AND r.id % 20 = 0 AND k <= 1 + r.id % 3
"""


def build() -> tuple[int, int]:
    from datetime import UTC, datetime

    from dashboard.extensions import db
    from dashboard.models import Campaign
    from dashboard.services import campaigns, recipients, templates
    from dashboard.services.actor import Actor

    actor = Actor.system("bench")
    db.session.execute(text("TRUNCATE campaigns, templates RESTART IDENTITY CASCADE"))
    db.session.commit()
    templates.create({"name": "Bench", "templateId": "bench", "channels": {
        "in_app": {"title": "T", "body": "B"}, "email": {"subject": "S", "text": "T"}}}, actor)
    templates.transition("bench", "approve", actor)
    t0 = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
    for i in range(10):  # the benchmark's earlier campaigns
        c = campaigns.create({"name": f"Earlier {i}", "templateId": "bench"}, actor)
        c.status, c.total, c.sent, c.read_count, c.clicked_count = "sent", 1000, 1000, 300 + 10 * i, 40 + i
        c.completed_at = t0
    ids = []
    for channel in ("in_app", "email"):
        c = campaigns.create({"name": f"Million {channel}", "templateId": "bench", "channel": channel}, actor)
        db.session.execute(text(FILL_RECIPIENTS), {"c": c.id, "n": RECIPIENTS, "t0": t0, "email": channel == "email"})
        db.session.execute(text(FILL_NOTIFICATIONS if channel == "in_app" else FILL_CLICKS), {"c": c.id})
        c = db.session.get(Campaign, c.id)
        recipients.recount(c)
        c.status, c.started_at, c.completed_at = "sent", t0, t0
        if channel == "in_app":
            c.read_count = db.session.scalar(text("SELECT count(*) FROM notifications WHERE campaign_id = :c "
                                                  "AND read_at IS NOT NULL"), {"c": c.id})
            c.clicked_count = db.session.scalar(text("SELECT count(*) FROM notifications WHERE campaign_id = :c "
                                                     "AND clicked_at IS NOT NULL"), {"c": c.id})
        else:
            c.clicked_count = db.session.scalar(text("SELECT count(DISTINCT recipient_id) FROM link_clicks "
                                                     "WHERE campaign_id = :c"), {"c": c.id})
        ids.append(c.id)
        db.session.commit()
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        for table in ("recipients", "notifications", "link_clicks", "campaigns"):
            conn.execute(text(f"VACUUM ANALYZE {table}"))
    return ids[0], ids[1]


def main() -> int:
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith("postgresql") or url.rsplit("/", 1)[-1] in ("herald", "postgres"):
        print("set DATABASE_URL to a scratch PostgreSQL database, e.g. postgresql://postgres@localhost/reportbench",
              file=sys.stderr)
        return 2
    import psycopg
    from flask_migrate import upgrade

    from dashboard import create_app
    from dashboard.extensions import db, get_redis
    from dashboard.models import Campaign, Recipient
    from dashboard.services import reports

    admin, name = url.rsplit("/", 1)
    with psycopg.connect(admin + "/postgres", autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')
    config = {"DATABASE_URL": url, "SECRET_KEY": os.environ.get("SECRET_KEY", "bench-only"),
              "HERALD_ENV": os.environ.get("HERALD_ENV", "development")}
    if os.environ.get("REDIS_URL"):
        config["REDIS_URL"] = os.environ["REDIS_URL"]
    app = create_app(config)
    with app.app_context():
        upgrade()
        found = db.session.scalars(select(Campaign.id).where(Campaign.total == RECIPIENTS)
                                   .order_by(Campaign.id)).all()
        if len(found) != 2 or os.environ.get("HERALD_BENCH_REBUILD"):
            start = time.perf_counter()
            in_app, email = build()
            print(f"built 2 x {RECIPIENTS} recipients in {time.perf_counter() - start:.1f} s", file=sys.stderr)
        else:
            in_app, email = found
        out = {"recipients": RECIPIENTS}
        for label, cid in (("in_app", in_app), ("email", email)):
            campaign = db.session.get(Campaign, cid)
            floor = _timed(lambda cid=cid: db.session.scalar(
                select(func.count()).select_from(Recipient).where(Recipient.campaign_id == cid)))
            part = {"floor_count_rows": floor}
            for bucket in ("hour", "day"):
                def cold(c=campaign, b=bucket):
                    get_redis().delete(reports._cache_key(c, b))
                    return reports.report(c, b)
                part[f"report_{bucket}_cold"] = _timed(cold)
                part[f"report_{bucket}_cold"]["ratio_to_floor"] = round(
                    part[f"report_{bucket}_cold"]["p50_ms"] / max(floor["p50_ms"], 0.1), 1)
                part[f"report_{bucket}_warm"] = _timed(lambda c=campaign, b=bucket: reports.report(c, b))
            sample = reports.report(campaign, "hour")
            part["points_hour"] = len(sample["series"]["points"])
            part["totals"] = sample["totals"]
            out[label] = part
        start = time.perf_counter()
        size = rows = 0
        for chunk in reports._engagement_lines(email):
            size += len(chunk)
            rows += chunk.count("\n")
        out["engagement_csv_email"] = {"rows": rows - 1, "mb": round(size / 1e6, 1),
                                       "seconds": round(time.perf_counter() - start, 1)}
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
