"""The recipient-time parts of `make bench` (SPEC §10), one per process; each prints one JSON line.

plan_time: a local-time send of a draft of 100,000 recipients over 300 IANA zones (from the CSV's
`timezone` value, the user directory, or unknown -> the fallback), timed around lifecycle.send —
the grouped zone query, the waves, the recipients' UPDATE, the commit — then checked recipient by
recipient against the instant its zone gives. Floor: a raw UPDATE of `wave` on the same rows.

caps: the 100k in-app send on one worker without cap rules and with one (all channels, 5 per 24 h),
in the order A B B A within the run (so drift on a shared machine falls on both), the cap's Redis
keys cleared before every send so the capped sends check and reserve all 100,000 users."""

from __future__ import annotations

import os
import statistics
import time
import zoneinfo
from datetime import UTC, datetime, timedelta
from datetime import time as clock

from sqlalchemy import func, insert, select, text

from dashboard import create_app
from dashboard.extensions import db, get_redis
from dashboard.models import Campaign, CampaignWave, Recipient, User
from dashboard.ratelimit import TokenBucket
from dashboard.services import campaigns, channel_settings, control, lifecycle, recipient_time, recipients, workspace
from dashboard.services.delivery import caps
from dashboard.services.recipient_time import SendAt, local_instant
from scripts.bench_parts import ACTOR, ROWS, add_recipients, setup, wait_final
from scripts.bench_procs import Children, main

ZONES = 300
FALLBACK = "Europe/Paris"
AREAS = {"Africa", "America", "Antarctica", "Asia", "Atlantic", "Australia", "Europe", "Indian", "Pacific"}
CAP_RULE = {"channel": "all", "limit": 5, "window": "24h"}


def pick_zones(n: int = ZONES) -> list[str]:
    """n geographic zones: the fallback and the half-hour / 45-minute / +14 ones, then the rest spread
    evenly over the sorted IANA list."""
    chosen = [FALLBACK, "Asia/Kolkata", "Asia/Kathmandu", "Australia/Adelaide", "Pacific/Chatham",
              "Pacific/Kiritimati", "America/St_Johns", "Asia/Tehran"]
    names = sorted(z for z in zoneinfo.available_timezones() if z.split("/")[0] in AREAS and z not in chosen)
    step = len(names) / (n - len(chosen))
    chosen += [names[int(i * step)] for i in range(n - len(chosen))]
    assert len(set(chosen)) == n
    return chosen


def audience(zones: list[str]) -> tuple[list[tuple[str, dict, None]], list[dict], dict[str, str | None]]:
    """Recipients (userId, variables), directory rows, and each user's expected zone (None: fallback).
    Of every 10 recipients: 2 have a CSV zone and a different directory zone (the CSV's wins), 2 a CSV
    zone only, 4 a directory zone only, 1 a directory row without a zone, 1 nothing at all."""
    rows, users, expected = [], [], {}
    for i in range(ROWS):
        user, kind, zone = f"u-{i:06d}", i % 10, zones[(i // 10) % len(zones)]
        variables = {"firstName": "Ann", "offer": "20%"}
        if kind < 4:
            variables["timezone"] = zone
            if kind < 2:
                users.append({"user_id": user, "timezone": zones[(i // 10 + 1) % len(zones)]})
        elif kind < 8:
            users.append({"user_id": user, "timezone": zone})
        elif kind == 8:
            users.append({"user_id": user, "timezone": None if i % 20 < 10 else ""})
        rows.append((user, variables, None))
        expected[user] = zone if kind < 8 else None
    return rows, users, expected


def vacuum(*tables: str) -> None:
    """What autovacuum does after a bulk load, so every timed statement starts from the same state."""
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        for table in tables:
            conn.execute(text(f"VACUUM ANALYZE {table}"))


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _floor(campaign_id: int) -> float:
    """The least the planning must do: one UPDATE of every recipient's wave, and the commit."""
    def run():
        db.session.execute(text("UPDATE recipients SET wave = 2 WHERE campaign_id = :c"), {"c": campaign_id})
        db.session.commit()

    elapsed = timed(run)
    db.session.execute(text("UPDATE recipients SET wave = NULL WHERE campaign_id = :c"), {"c": campaign_id})
    db.session.commit()
    vacuum("recipients")
    return elapsed


def _check(campaign_id: int, send_at: SendAt, sent_at: datetime, expected: dict[str, str | None]) -> dict:
    """Every recipient has a wave; the waves' counts sum to 100,000 and match the rows; every
    recipient's wave is due at 09:00 in its own zone (or the fallback's), next day if already passed."""
    db.session.expire_all()
    campaign = db.session.get(Campaign, campaign_id)
    waves = db.session.scalars(select(CampaignWave).where(CampaignWave.campaign_id == campaign_id)).all()
    due = {w.number: w.due_at for w in waves}
    rows = db.session.execute(select(Recipient.user_id, Recipient.wave)
                              .where(Recipient.campaign_id == campaign_id)).all()
    per_wave: dict[int, int] = {}
    wrong = 0
    for user, wave in rows:
        assert wave is not None and wave in due, (user, wave)
        per_wave[wave] = per_wave.get(wave, 0) + 1
        zone = expected[user] or FALLBACK
        instant = local_instant(send_at.day, send_at.local_time, zone)
        if instant <= sent_at.replace(microsecond=0):
            instant = local_instant(send_at.day + timedelta(days=1), send_at.local_time, zone)
        wrong += due[wave] != instant
    assert len(rows) == ROWS and sum(w.recipients for w in waves) == ROWS, (len(rows), [w.recipients for w in waves])
    assert per_wave == {w.number: w.recipients for w in waves}, "a wave's count differs from its rows"
    assert wrong == 0, f"{wrong} recipients in a wave not due at 09:00 in their zone"
    zones = {z for w in waves for z in w.zones}
    assert len(zones) == ZONES, len(zones)  # the fallback is one of the 300
    assert campaign.wave_count == len(waves) and campaign.status == "scheduled", (campaign.wave_count, campaign.status)
    assert campaign.scheduled_at == min(due.values())
    return {"waves": len(waves), "zones": len(zones)}


def _profile(campaign_id: int, send_at: SendAt) -> dict:
    """The send's statements one by one (rolled back): the checks every send makes (a scan of the
    recipients for required variables), the grouped zone query, the waves, the UPDATE."""
    now = datetime.now(UTC)
    check_s = timed(lambda: lifecycle.check_ready(db.session.get(Campaign, campaign_id)))
    counts: dict = {}

    def count():
        counts.update(recipient_time.zone_counts(campaign_id))

    count_s = timed(count)
    waves: list = []
    waves_s = timed(lambda: waves.extend(recipient_time.compute_waves(counts, now, send_at, None)))
    store_s = timed(lambda: recipient_time.store_waves(campaign_id, waves))
    db.session.rollback()
    return {"check_s": check_s, "count_s": count_s, "waves_s": waves_s, "store_s": store_s,
            "distinct_keys": len(counts)}


def part_plan_time() -> dict:
    app = create_app()
    with app.app_context():
        setup(app)
        db.session.execute(text("TRUNCATE users, workspace_settings"))
        db.session.commit()
        campaign = campaigns.create({"name": "Local time", "templateId": "bench"}, ACTOR)
        zones = pick_zones()
        rows, users, expected = audience(zones)
        recipients.bulk_upsert(campaign.id, rows)
        db.session.execute(insert(User), users)
        recipients.recount(db.session.get(Campaign, campaign.id))
        db.session.commit()
        vacuum("recipients", "users")
        floor_s = _floor(campaign.id)
        day = datetime.now(UTC).date() + timedelta(days=1)  # tomorrow 09:00: passed already in the far east
        send_at = SendAt(clock(9, 0), day, FALLBACK, "next_day")
        options = control.SendOptions(send_at=send_at)
        sent_at = datetime.now(UTC)
        start = time.perf_counter()
        lifecycle.send(campaign.id, None, ACTOR, options=options)
        plan_s = time.perf_counter() - start
        checked = _check(campaign.id, send_at, sent_at, expected)
        # The statements one by one, on the same rows (scheduled, still pending), rolled back.
        profile = _profile(campaign.id, send_at)
    return {"plan_s": plan_s, "floor_s": floor_s, **checked, **profile}


# -- caps -----------------------------------------------------------------------------------------

def clear_caps() -> int:
    """Delete every frequency-cap key (herald:fcap:*); how many there were."""
    r, n = get_redis(), 0
    batch = []
    for key in r.scan_iter(match=f"{caps.PREFIX}:*", count=5000):
        batch.append(key)
        if len(batch) >= 5000:
            n += r.unlink(*batch)
            batch = []
    if batch:
        n += r.unlink(*batch)
    return n


def count_caps() -> int:
    return sum(1 for _ in get_redis().scan_iter(match=f"{caps.PREFIX}:*", count=5000))


def cpu_s(pid: int) -> float:
    """CPU seconds of a process and its reaped children (the worker's work horses), from /proc."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return sum(int(x) for x in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def redis_cpu_s() -> float:
    info = get_redis().info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def evalsha_usec() -> int:
    """Microseconds Redis has spent in EVALSHA so far (the cap check is one script per step)."""
    return int(get_redis().info("commandstats").get("cmdstat_evalsha", {}).get("usec", 0))


def reserve_alone(campaign_id: int, step: int) -> float:
    """caps.reserve over 100,000 users in the worker's steps, as a step makes it (nothing else)."""
    rule = workspace.parse_cap_rules([CAP_RULE])[0]
    capped = caps.Caps(campaign_id, ("all",), ((1, rule.limit, rule.seconds, rule.reason()),))
    items = [(i, f"u-{i:06d}") for i in range(ROWS)]
    clear_caps()
    start = time.perf_counter()
    for lo in range(0, ROWS, step):
        assert not caps.reserve(capped, items[lo:lo + step])
    elapsed = time.perf_counter() - start
    clear_caps()
    return elapsed


def part_caps() -> dict:
    app = create_app()
    order = ["none", "cap", "cap", "none"]
    with app.app_context(), Children() as children:
        setup(app)
        db.session.execute(text("TRUNCATE workspace_settings"))
        db.session.commit()
        ids = []
        for i in range(len(order)):
            campaign = campaigns.create({"name": f"Caps {i}", "templateId": "bench"}, ACTOR)
            add_recipients(campaign.id, ROWS)
            ids.append(campaign.id)
        vacuum("recipients")
        worker = children.worker().pid
        time.sleep(2.0)  # let the worker boot and subscribe
        times: dict[str, list[float]] = {"none": [], "cap": []}
        script_s, cpu = [], []
        for mode, campaign_id in zip(order, ids, strict=True):
            workspace.set_frequency_caps([CAP_RULE] if mode == "cap" else [], ACTOR)
            db.session.commit()
            clear_caps()
            before = evalsha_usec()  # the token bucket's script counts too: the difference is compared
            cpu_before = cpu_s(worker) + redis_cpu_s()
            start = time.perf_counter()
            lifecycle.send(campaign_id, None, ACTOR)
            campaign = wait_final(campaign_id, 600)
            times[mode].append(time.perf_counter() - start)
            script_s.append((mode, (evalsha_usec() - before) / 1e6))
            cpu.append((mode, cpu_s(worker) + redis_cpu_s() - cpu_before))
            assert (campaign.status, campaign.sent, campaign.skipped) == ("sent", ROWS, 0), \
                (campaign.status, campaign.sent, campaign.skipped)
            keys = count_caps()
            assert keys == (ROWS if mode == "cap" else 0), (mode, keys)  # one reservation per user, or none
        clear_caps()
        workspace.set_frequency_caps([], ACTOR)
        db.session.commit()
        step = TokenBucket("in_app", channel_settings.get("in_app").rate_limit).step
        alone = statistics.median(reserve_alone(ids[0], step) for _ in range(3))
        skipped = db.session.scalar(select(func.count()).select_from(Recipient)
                                    .where(Recipient.status == "skipped"))
        assert skipped == 0, skipped
    none_s, cap_s = statistics.mean(times["none"]), statistics.mean(times["cap"])
    scripts = {m: statistics.mean(x for mode, x in script_s if mode == m) for m in ("none", "cap")}
    cpus = {m: statistics.mean(x for mode, x in cpu if mode == m) for m in ("none", "cap")}
    return {"none_s": none_s, "cap_s": cap_s, "added_pct": (cap_s / none_s - 1) * 100,
            "none_runs": times["none"], "cap_runs": times["cap"], "step": step, "reserve_alone_s": alone,
            "alone_pct": alone / none_s * 100, "redis_cap_s": scripts["cap"] - scripts["none"],
            "cpu_none_s": cpus["none"], "cpu_cap_s": cpus["cap"], "cpu_pct": (cpus["cap"] / cpus["none"] - 1) * 100}


if __name__ == "__main__":
    main({"plan_time": part_plan_time, "caps": part_caps})
