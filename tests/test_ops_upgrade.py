"""A rolling deploy mid-send: a campaign started by the previous release (its rows written under
the previous schema, one chunk done, one chunk's job waiting in Redis, one chunk whose job was
lost with the old worker) finishes after `db upgrade` to head with a worker of this release,
every recipient delivered exactly once and the counters equal to the rows."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta

from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from flask_migrate import upgrade
from sqlalchemy import MetaData, func, select

from dashboard import create_app, jobs
from dashboard.extensions import db
from dashboard.models import Campaign, CampaignChunk, Notification, Recipient
from tests import services
from tests.engine import start_worker, stop_worker, wait_for
from tests.test_delivery_faults import assert_counters_match_rows

PREVIOUS = "b7d1e2f3a4c5"  # the schema of the release before delivery control
N, CHUNK = 30, 10


def _database(tmp_path) -> str:
    if os.environ.get("HERALD_TEST_DB", "sqlite") == "postgresql":
        return services.create_postgres_database()
    return f"sqlite:///{tmp_path / 'previous-release.db'}"


def _write_a_send_in_progress(now: datetime) -> int:
    """What the previous release left in its database, written with its own tables (reflected:
    the models describe the new schema, which has columns this one does not)."""
    md = MetaData()
    md.reflect(db.engine)
    t = md.tables
    assert "paused_reason" not in t["campaigns"].c and "wave" not in t["campaign_chunks"].c  # really the old one
    conn = db.session.connection()
    template = conn.execute(t["templates"].insert().values(
        template_id="promo", name="Promo", category="", tags=[], status="approved", version=1, created_at=now,
        updated_at=now, approved_at=now)).inserted_primary_key[0]
    conn.execute(t["template_versions"].insert().values(
        template_pk=template, version=1, name="Promo", created_at=now, created_by="previous release",
        approved_at=now, channels={"in_app": {"title": "Hi {{ firstName }}", "body": "{{ offer }}"}},
        variable_schema=[{"key": "firstName", "type": "string", "defaultValue": "there"},
                         {"key": "offer", "type": "string", "required": True}]))
    started = now - timedelta(minutes=1)
    campaign = conn.execute(t["campaigns"].insert().values(
        name="Started before the deploy", template_pk=template, template_version=1, channel="in_app",
        delivery_mode="batch", variables={"offer": "10% off"}, failure_threshold=0.5, status="sending", revision=1,
        created_at=started, updated_at=started, created_by="marketer@example.com", started_at=started,
        planned_at=started, progress_at=started, total=N, pending=N - CHUNK, sent=CHUNK, failed=0,
        skipped=0)).inserted_primary_key[0]
    conn.execute(t["recipients"].insert(), [
        {"campaign_id": campaign, "user_id": f"u{i}", "variables": {"firstName": f"User {i}"},
         "attempts": int(i < CHUNK), "status": "sent" if i < CHUNK else "pending",
         "sent_at": now if i < CHUNK else None, "created_at": started}
        for i in range(N)])
    ids = conn.execute(select(t["recipients"].c.id).where(t["recipients"].c.campaign_id == campaign)
                       .order_by(t["recipients"].c.id)).scalars().all()
    conn.execute(t["notifications"].insert(), [
        {"recipient_id": ids[i], "campaign_id": campaign, "user_id": f"u{i}", "title": f"Hi User {i}",
         "body": "10% off", "created_at": now} for i in range(CHUNK)])
    for n, (lo, hi) in enumerate((ids[k], ids[k + CHUNK - 1]) for k in range(0, N, CHUNK)):
        conn.execute(t["campaign_chunks"].insert().values(
            campaign_id=campaign, lo=lo, hi=hi, done=n == 0, attempts=0, run=0,
            # chunk 2's job is waiting in Redis; chunk 3's job died with the old worker a minute ago
            enqueued_at=now if n == 1 else started))
    db.session.commit()
    return campaign


def test_a_send_started_under_the_previous_schema_finishes_after_the_upgrade(app, tmp_path):
    url = _database(tmp_path)
    release = create_app({"HERALD_ENV": "testing", "TESTING": True, "SECRET_KEY": "test-secret-key",
                          "DATABASE_URL": url, "REDIS_URL": app.config["REDIS_URL"], "HERALD_STALL_SECONDS": 2,
                          "HERALD_BATCH_CHUNK": CHUNK})
    worker = None
    try:
        with release.app_context():
            upgrade(revision=PREVIOUS)
            campaign_id = _write_a_send_in_progress(datetime.now(UTC))
            waiting = db.session.scalars(select(CampaignChunk.id).where(CampaignChunk.campaign_id == campaign_id)
                                         .order_by(CampaignChunk.id)).all()[1]
            jobs.enqueue_chunks([(waiting, 0)], urgent=False)  # enqueued by the previous release's worker
            db.session.commit()  # hold no lock: the migration's ALTER TABLEs wait for open transactions

            upgrade()  # the release phase of this release, while the send is in flight
            with db.engine.connect() as conn:
                current = MigrationContext.configure(conn).get_current_revision()
            assert current == ScriptDirectory.from_config(release.extensions["migrate"].migrate.get_config()
                                                          ).get_current_head()

            worker = start_worker(release, HERALD_SWEEP_SECONDS="1")
            wait_for(lambda: db.session.get(Campaign, campaign_id).status == "sent" or db.session.expire_all(), 60,
                     "the send to finish after the upgrade")
            campaign = assert_counters_match_rows(campaign_id)
            assert (campaign.sent, campaign.failed, campaign.pending) == (N, 0, 0)
            per_user = dict(db.session.execute(select(Notification.user_id, func.count())
                                               .where(Notification.campaign_id == campaign_id)
                                               .group_by(Notification.user_id)).all())
            assert per_user == {f"u{i}": 1 for i in range(N)}  # the first chunk's ten were not sent again
            chunks = db.session.scalars(select(CampaignChunk).where(CampaignChunk.campaign_id == campaign_id)
                                        .order_by(CampaignChunk.id)).all()
            assert [c.done for c in chunks] == [True, True, True]
            assert [c.wave for c in chunks] == [0, 0, 0]  # the new column's default, for the old rows
            assert chunks[2].attempts == 1  # the lost job, counted and run again by the sweep
            assert campaign.canary_state is None and campaign.paused_reason is None
            assert db.session.scalar(select(func.count()).where(Recipient.campaign_id == campaign_id,
                                                                Recipient.wave.is_not(None))) == 0
    finally:
        if worker is not None:
            stop_worker(worker)
        with release.app_context():
            db.session.remove()
            db.engine.dispose()
        if url.startswith("postgresql"):
            services.drop_postgres_database(url)
