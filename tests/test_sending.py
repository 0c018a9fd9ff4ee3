import threading
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from dashboard.errors import LifecycleError, ValidationError
from dashboard.extensions import db, get_queue
from dashboard.models import AuditEvent, Campaign, CampaignChunk, Notification, Recipient, utcnow
from dashboard.services import campaigns, lifecycle, recipients, recovery
from dashboard.services.actor import Actor
from dashboard.services.delivery import chunks, plan
from tests.engine import drain
from tests.test_api_campaigns import make_template

ACTOR = Actor.system("test")


def make_campaign(n: int = 5, mode: str = "batch", approve: bool = True, **variables) -> Campaign:
    make_template(status="approved" if approve else "draft")
    campaign = campaigns.create({"name": "C", "templateId": "promo", "deliveryMode": mode,
                                 "variables": variables or {"offer": "10%"}}, ACTOR)
    for start in range(0, n, 10_000):
        recipients.add_manual(campaign.id, [f"u{i}" for i in range(start, min(n, start + 10_000))], None, ACTOR)
    return db.session.get(Campaign, campaign.id)


def fresh(campaign_id: int) -> Campaign:
    db.session.expire_all()
    return db.session.get(Campaign, campaign_id)


def feed_count() -> int:
    return db.session.scalar(select(func.count()).select_from(Notification))


def test_send_now_delivers_in_app_and_completes(app):
    c = make_campaign(2500)
    sent = lifecycle.send(c.id, None, ACTOR)
    assert sent.status == "sending" and sent.template_version == 1
    drain()
    c = fresh(c.id)
    assert (c.status, c.sent, c.pending, c.total) == ("sent", 2500, 0, 2500)
    assert c.completed_at is not None
    assert feed_count() == 2500
    assert db.session.scalar(select(func.count()).select_from(CampaignChunk)) == 3  # 1000-row chunks
    note = db.session.scalar(select(Notification).where(Notification.user_id == "u7"))
    assert (note.title, note.body) == ("Hi there", "10% ")
    statuses = set(db.session.scalars(select(Recipient.status)).all())
    assert statuses == {"sent"}


def test_realtime_mode_uses_one_job_per_recipient(app):
    c = make_campaign(3, mode="realtime")
    lifecycle.send(c.id, None, ACTOR)
    drain()
    assert get_queue("realtime").count == 0
    assert db.session.scalar(select(func.count()).select_from(CampaignChunk)) == 3
    assert fresh(c.id).status == "sent" and feed_count() == 3


def test_rerunning_a_chunk_never_delivers_twice(app):
    c = make_campaign(1500)
    lifecycle.send(c.id, None, ACTOR)
    plan.plan(c.id)
    chunk = db.session.scalar(select(CampaignChunk).order_by(CampaignChunk.id))
    assert chunks.deliver(chunk.id)["delivered"] == 1000
    assert chunks.deliver(chunk.id) == {"skipped": "done"}
    db.session.execute(CampaignChunk.__table__.update().where(CampaignChunk.id == chunk.id).values(done=False))
    db.session.commit()  # pretend the job ran again (e.g. re-enqueued by the sweep)
    assert chunks.deliver(chunk.id)["delivered"] == 0
    drain()
    assert feed_count() == 1500 and fresh(c.id).sent == 1500


@pytest.mark.parametrize("move,status", [("unschedule", "draft"), ("cancel", "draft"), ("send", "sent"),
                                         ("cancel", "sent"), ("unschedule", "sending"), ("send", "cancelled"),
                                         ("cancel", "cancelled"), ("send", "failed"), ("unschedule", "failed")])
def test_illegal_moves_are_409(app, move, status):
    c = make_campaign(1)
    c.status = status
    db.session.commit()
    if move == "cancel" and status == "draft":
        assert lifecycle.cancel(c.id, ACTOR).status == "cancelled"  # legal: drafts can be cancelled
        return
    with pytest.raises(LifecycleError) as err:
        {"send": lambda: lifecycle.send(c.id, None, ACTOR), "unschedule": lambda: lifecycle.unschedule(c.id, ACTOR),
         "cancel": lambda: lifecycle.cancel(c.id, ACTOR)}[move]()
    assert err.value.status == 409 and status in err.value.message


def test_send_checks(app):
    empty = make_campaign(0)
    with pytest.raises(ValidationError, match="no recipients"):
        lifecycle.send(empty.id, None, ACTOR)
    db.session.execute(Campaign.__table__.delete())
    db.session.commit()


def test_send_refuses_unapproved_template(app):
    c = make_campaign(1, approve=False)
    with pytest.raises(ValidationError, match="approve it before sending"):
        lifecycle.send(c.id, None, ACTOR)
    assert fresh(c.id).status == "draft"


def test_send_refuses_missing_required_variable_with_examples(app):
    make_template()
    c = campaigns.create({"name": "C", "templateId": "promo", "variables": {"offer": "5%"}}, ACTOR)
    recipients.add_manual(c.id, ["a", "b", "c"], {"b": {"offer": "x"}}, ACTOR)
    campaigns.edit(c.id, {"variables": {}}, ACTOR)  # the default goes after the add; a and c now have no offer
    with pytest.raises(ValidationError) as err:
        lifecycle.send(c.id, None, ACTOR)
    assert "2 recipients are missing a required variable (offer), e.g. a, c." in err.value.message


@pytest.mark.parametrize("raw,fragment", [("2026-01-01T10:00:00", "no UTC offset"), ("yesterday", "not an ISO"),
                                          ("2001-01-01T10:00:00+00:00", "in the past"),
                                          ("2099-01-01T10:00:00Z", "more than 365 days")])
def test_bad_schedule_is_400(app, raw, fragment):
    c = make_campaign(1)
    with pytest.raises(ValidationError) as err:
        lifecycle.send(c.id, raw, ACTOR)
    assert fragment in err.value.message and err.value.status == 400
    assert fresh(c.id).status == "draft"


def test_schedule_then_fire_once(app):
    c = make_campaign(3)
    when = utcnow() + timedelta(hours=1)
    scheduled = lifecycle.send(c.id, when.isoformat(), ACTOR)
    assert scheduled.status == "scheduled" and scheduled.scheduled_at == when
    assert recovery.fire_scheduled(c.id, when.isoformat()) is True
    assert recovery.fire_scheduled(c.id, when.isoformat()) is False  # a second firing does nothing
    drain()
    assert fresh(c.id).status == "sent" and feed_count() == 3


def test_stale_scheduled_job_after_unschedule_or_cancel_does_nothing(app):
    c = make_campaign(3)
    first = utcnow() + timedelta(hours=1)
    lifecycle.send(c.id, first.isoformat(), ACTOR)
    lifecycle.unschedule(c.id, ACTOR)
    assert recovery.fire_scheduled(c.id, first.isoformat()) is False
    second = utcnow() + timedelta(hours=2)
    lifecycle.send(c.id, second.isoformat(), ACTOR)
    assert recovery.fire_scheduled(c.id, first.isoformat()) is False  # the old job: stale time
    lifecycle.cancel(c.id, ACTOR)
    assert recovery.fire_scheduled(c.id, second.isoformat()) is False
    drain()
    c = fresh(c.id)
    assert c.status == "cancelled" and feed_count() == 0 and c.skipped == 3


def test_send_now_overrides_schedule(app):
    c = make_campaign(2)
    when = utcnow() + timedelta(days=1)
    lifecycle.send(c.id, when.isoformat(), ACTOR)
    assert lifecycle.send(c.id, None, ACTOR).status == "sending"
    drain()
    assert fresh(c.id).status == "sent"
    assert recovery.fire_scheduled(c.id, when.isoformat()) is False


def test_cancel_mid_send_skips_the_rest(app):
    c = make_campaign(3000)
    lifecycle.send(c.id, None, ACTOR)
    plan.plan(c.id)
    first = db.session.scalar(select(CampaignChunk).order_by(CampaignChunk.id))
    chunks.deliver(first.id)
    lifecycle.cancel(c.id, ACTOR)
    drain()  # the remaining chunk jobs find the campaign cancelled
    c = fresh(c.id)
    assert (c.status, c.sent, c.skipped, c.pending) == ("cancelled", 1000, 2000, 0)
    assert feed_count() == 1000


def test_concurrent_sends_start_one_delivery(app):
    c = make_campaign(50)
    outcomes = []

    def attempt():
        with app.app_context():
            try:
                lifecycle.send(c.id, None, ACTOR)
                outcomes.append("ok")
            except LifecycleError:
                outcomes.append("409")
            finally:
                db.session.remove()

    threads = [threading.Thread(target=attempt) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["409", "409", "409", "ok"]
    drain()
    assert feed_count() == 50
    sends = db.session.scalar(select(func.count()).select_from(AuditEvent).where(AuditEvent.action == "campaign.send"))
    assert sends == 1


def test_duplicate_and_retry_failed(app):
    c = make_campaign(4)
    lifecycle.send(c.id, None, ACTOR)
    drain()
    db.session.execute(Recipient.__table__.update().where(Recipient.user_id.in_(["u1", "u3"]))
                       .values(status="failed", last_error="boom"))
    c = fresh(c.id)
    recipients.recount(c)
    db.session.commit()
    retry = lifecycle.retry_failed(c.id, ACTOR)
    assert retry.status == "draft" and retry.total == 2
    retried = db.session.scalars(select(Recipient.user_id).where(Recipient.campaign_id == retry.id))
    assert sorted(retried) == ["u1", "u3"]
    copy = lifecycle.duplicate(c.id, ACTOR)
    assert copy.total == 4 and copy.name == "C (copy)" and copy.variables == {"offer": "10%"}
    assert set(db.session.scalars(select(Recipient.status).where(Recipient.campaign_id == copy.id))) == {"pending"}


def test_transitions_are_audited(app):
    c = make_campaign(1)
    lifecycle.send(c.id, None, ACTOR)
    drain()
    rows = db.session.execute(select(AuditEvent.action, AuditEvent.from_status, AuditEvent.to_status,
                                     AuditEvent.actor_label).where(AuditEvent.target_id == str(c.id),
                                                                   AuditEvent.action.in_(["campaign.send",
                                                                                          "campaign.complete"]))
                              .order_by(AuditEvent.id)).all()
    assert [tuple(r) for r in rows] == [("campaign.send", "draft", "sending", "test"),
                                        ("campaign.complete", "sending", "sent", "worker")]


def test_sweep_replans_lost_start_and_requeues_lost_chunks(app):
    from dashboard.extensions import get_redis

    app.config["HERALD_STALL_SECONDS"] = 0
    try:
        c = make_campaign(2500)
        lifecycle.send(c.id, None, ACTOR)
        get_redis().flushdb()  # Redis lost everything: the start job is gone
        assert recovery.sweep()["planned"] == 1
        get_redis().flushdb()  # ... and again: the chunk jobs are gone
        assert recovery.sweep()["requeued"] == 3
        drain()
        assert fresh(c.id).status == "sent" and feed_count() == 2500
    finally:
        app.config["HERALD_STALL_SECONDS"] = 30


def test_sweep_fires_missed_schedule(app):
    c = make_campaign(2)
    lifecycle.send(c.id, (utcnow() + timedelta(hours=1)).isoformat(), ACTOR)
    db.session.get(Campaign, c.id).scheduled_at = utcnow() - timedelta(minutes=1)
    db.session.commit()
    assert recovery.sweep()["fired"] == 1
    drain()
    assert fresh(c.id).status == "sent"


def test_plan_handles_sparse_ids_with_exact_chunks(app):
    """Interleaved imports leave gaps in a campaign's ids: chunks still hold 1,000 recipients each."""
    a = make_campaign(0)
    b = campaigns.create({"name": "B", "templateId": "promo", "variables": {"offer": "x"}}, ACTOR)
    for start in range(0, 2400, 100):  # a and b take turns, so a's ids are half-empty
        recipients.add_manual(a.id, [f"a{i}" for i in range(start, start + 100)], None, ACTOR)
        recipients.add_manual(b.id, [f"b{i}" for i in range(start, start + 100)], None, ACTOR)
    lifecycle.send(a.id, None, ACTOR)
    drain()
    sizes = [hi - lo for lo, hi in db.session.execute(select(CampaignChunk.lo, CampaignChunk.hi)
                                                       .where(CampaignChunk.campaign_id == a.id)).all()]
    assert len(sizes) == 3  # 2,400 recipients -> 1,000 + 1,000 + 400, not ~5 id windows
    assert fresh(a.id).status == "sent" and fresh(a.id).sent == 2400 and fresh(b.id).status == "draft"


def test_sweep_requeues_a_chunk_taken_by_a_worker_that_died(app):
    """A worker killed just after popping a job leaves it 'queued' but out of the queue."""
    from dashboard.extensions import get_redis

    app.config["HERALD_STALL_SECONDS"] = 0
    try:
        c = make_campaign(10)
        lifecycle.send(c.id, None, ACTOR)
        drain_start = get_queue("batch")
        from rq import SimpleWorker

        SimpleWorker([drain_start], connection=get_redis()).work(burst=True, max_jobs=1)  # plans, enqueues chunk
        popped = get_redis().lpop(drain_start.key)  # a worker takes the chunk job... and dies
        assert popped is not None
        assert recovery.sweep()["requeued"] == 1
        drain()
        assert fresh(c.id).status == "sent" and feed_count() == 10
    finally:
        app.config["HERALD_STALL_SECONDS"] = 30
