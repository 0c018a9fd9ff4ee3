"""`make bench`: the performance figures of QUALITY.md, each printed beside its bar and its
ratio to a floor measured in the same run. Needs the local PostgreSQL and a Redis.

Each part runs in its own process and session, with a timeout; a part that fails or times out
is reported with its output and the bench goes on (exit status 1 at the end). Whatever
happens, including Ctrl-C, every process a part started is stopped and reaped, and the bench's
database and private Redis are removed."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scripts import bench_procs  # noqa: E402
from tests import services  # noqa: E402

RUNS = int(os.environ.get("HERALD_BENCH_RUNS", "3"))
PART_TIMEOUT = float(os.environ.get("HERALD_BENCH_PART_TIMEOUT", "600"))
STOP_GRACE = 45.0  # a part asked to stop stops its workers and sinks (30 s each at most), then exits
CHANNEL_PARTS = {"webhook", "email", "throttle", "limit-webhook", "limit-email", "kill-webhook", "kill-email"}
TIME_PARTS = {"plan_time", "caps"}
AUDIENCE_PARTS = {"audience"}
INBOX_PARTS = {"inbox"}
AUDIENCE_RUNS = int(os.environ.get("HERALD_BENCH_AUDIENCE_RUNS", "1"))  # ~5 minutes a run
ROWS = 100_000
failures: list[str] = []


@contextlib.contextmanager
def signals_ignored():
    """Cleanup runs to the end even if Ctrl-C (or SIGTERM) comes again."""
    previous = [signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)]
    try:
        yield
    finally:
        for sig, handler in zip((signal.SIGINT, signal.SIGTERM), previous, strict=True):
            signal.signal(sig, handler)


def run_part(part: str, env: dict) -> dict | None:
    """The part's JSON result, or None (reported, counted as a failure) if it failed or timed out."""
    module = ("scripts.bench_channels" if part in CHANNEL_PARTS else
              "scripts.bench_time" if part in TIME_PARTS else
              "scripts.bench_audience" if part in AUDIENCE_PARTS else
              "scripts.bench_inbox" if part in INBOX_PARTS else "scripts.bench_parts")
    timeout = PART_TIMEOUT * 2 if part in AUDIENCE_PARTS else PART_TIMEOUT
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen([sys.executable, "-m", module, part], cwd=ROOT, env=env, stdout=out, stderr=err,
                                start_new_session=True)
        try:
            finished = bench_procs.exited(proc, timeout)
        except KeyboardInterrupt:
            print(f"\ninterrupted: stopping part {part} and everything it started", file=sys.stderr)
            raise
        finally:
            with signals_ignored():
                bench_procs.end_session(proc, STOP_GRACE)
        out.seek(0)
        err.seek(0)
        return _result(part, finished, proc.returncode, out.read(), err.read())


def _result(part: str, finished: bool, code: int, out: str, err: str) -> dict | None:
    lines = out.strip().splitlines()
    if finished and code == 0 and lines:
        with contextlib.suppress(ValueError):
            return json.loads(lines[-1])
    why = f"timed out after {PART_TIMEOUT:g} s" if not finished else f"exit status {code}"
    failures.append(part)
    sys.stderr.write(f"\n--- part {part} failed ({why}); its output:\n{out}{err}--- end of {part}\n")
    return None


def measure(part: str, env: dict, runs: int = RUNS) -> list[dict]:
    """The results of the runs that succeeded."""
    return [r for r in (run_part(part, env) for _ in range(runs)) if r is not None]


def median(results: list[dict], key: str) -> float:
    return statistics.median(r[key] for r in results)


def line(label: str, value: float, unit: str, bar: float, floor: float | None, lower_is_better: bool = True) -> str:
    ok = value <= bar if lower_is_better else value >= bar
    ratio = f"{value / floor:5.1f}x floor ({floor:.3f}{unit})" if floor else ""
    sign = "<=" if lower_is_better else ">="
    return f"  {label:<46} {value:8.3f}{unit:<3} bar {sign} {bar:g}{unit:<3} {'PASS' if ok else 'FAIL':<5} {ratio}"


def section_csv(env: dict) -> float | None:
    print("\nCSV recipients (100,000 rows, 4 variables)")
    runs = measure("csv", env)
    if not runs:
        return None
    copy_floor = median(runs, "floor_copy_s")
    print(f"  file size {runs[0]['size_mb']:.2f} MB")
    print(line("validate (dry run), server time", median(runs, "validate_s"), " s", 2.0, median(runs, "floor_parse_s")))
    print(line("web process peak RSS during validate", median(runs, "rss_mb"), " MB", 300, None))
    print(line("confirm/import into PostgreSQL", median(runs, "import_s"), " s", 3.0, copy_floor))
    print("  floors: stdlib csv parse of the same bytes; raw COPY of the same 100,000 rows")
    return copy_floor


def section_send(env: dict, copy_floor: float | None) -> None:
    print("\nSend 100,000 recipients, in_app, batch (second release: time-boxed slices, per-step progress)")
    one, two = measure("send1", env), measure("send2", env)
    if one:
        t1 = median(one, "send_s")
        print(line("send -> sent, 1 worker", t1, " s", 10.0, copy_floor))
        print(line("deliveries per second, 1 worker", ROWS / t1, "/s", ROWS / 10.0, None, lower_is_better=False))
        print(line("worker RSS (parent + work horse), peak", max(r["worker_rss_mb"] for r in one), " MB", 250, None))
    if one and two:
        t2 = median(two, "send_s")
        print(line("send -> sent, 2 workers", t2, " s", t1 / 1.6, None))
        print(line("speed-up with 2 workers", t1 / t2, " x", 1.6, None, lower_is_better=False))
    if copy_floor:
        print("  floor: raw COPY of 100,000 rows (the least a send must write)")


def section_throughput(env: dict) -> None:
    print("\nExternal channels, 10,000 recipients, batch, 1 worker, local sinks (rate limit raised to 100,000/s)")
    for kind, bar in (("webhook", 1000), ("email", 500)):
        runs = measure(kind, env)
        if runs:
            print(line(f"{kind} deliveries per second", median(runs, "per_s"), "/s", bar, None, lower_is_better=False))
    throttle = run_part("throttle", env)
    if throttle:
        print(line("throttle 200/s, 2 workers: busiest 1 s window", throttle["busiest_1s"], "", 220, None))
        print(f"  (2,000 webhooks took {throttle['elapsed_s']:.1f} s; 200/s allows no less than ~10 s)")


def section_limits(env: dict) -> None:
    print("\nAt the shipped default rate limits (nothing set), 1 worker, local sinks; sustained = the sink's "
          "first to last delivery")
    for kind in ("email", "webhook"):
        runs = measure(f"limit-{kind}", env)
        if not runs:
            continue
        rate, per_s = runs[0]["rate"], median(runs, "per_s")
        print(line(f"{kind} sustained deliveries/s (limit {rate:g}/s)", per_s, "/s", 0.95 * rate, None,
                   lower_is_better=False))
        print(line(f"{kind} sustained, % of the limit", median(runs, "pct"), " %", 95, None, lower_is_better=False))
        print(f"    {runs[0]['count']:,} deliveries over {median(runs, 'span_s'):.1f} s at the sink "
              f"({median(runs, 'elapsed_s'):.1f} s send -> sent); duplicates {max(r['duplicates'] for r in runs)}")


def section_kills(env: dict) -> None:
    print("\nkill -9 of the worker (its process group and its work horse's) at ~30% and ~70% of a send of 2,000, "
          "default limits, 1 worker (restarted each time)")
    for kind in ("email", "webhook"):
        r = run_part(f"kill-{kind}", env)
        if r is None:
            continue
        print(line(f"{kind} duplicates per kill (one bucket step = {r['step']})", r["duplicates"] / r["kills"], "",
                   r["step"], None))
        print(f"    {r['duplicates']} duplicate deliveries over {r['kills']} kills; {r['missing']} recipients never "
              f"delivered; {r['status']} after {r['elapsed_s']:.1f} s")
        added = r["pending"] + r["sent"] + r["failed"] + r["skipped"]
        print(f"    counters: pending {r['pending']} + sent {r['sent']} + failed {r['failed']} + skipped "
              f"{r['skipped']} = {added}; total {r['total']}, recipient rows {r['rows']}   "
              f"{'PASS' if r['counters_ok'] else 'FAIL'}")
        if not r["counters_ok"]:
            failures.append(f"kill-{kind}: counters")


def section_load(env: dict) -> None:
    workers, kind = env.get("WEB_CONCURRENCY", "2"), env.get("HERALD_WEB_WORKER_CLASS", "gevent")
    print(f"\nDashboard under load (the Procfile's web line: gunicorn.conf.py, {workers} {kind} processes) "
          "while 100,000 in-app recipients send, 1% of them failing")
    loads = measure("load", env)
    if loads:
        print(line("status partial p95, 20 concurrent pollers", median(loads, "status_p95_ms"), " ms", 50, None))
        print(line("campaign page p95 while sending (uncached)", median(loads, "page_sending_p95_ms"), " ms", 150,
                   None))
        print(line("campaign page p95 after, with failures (uncached)", median(loads, "page_p95_ms"), " ms", 150,
                   None))
        print(f"  ({int(loads[0]['status_requests']):,} status requests and "
              f"{int(loads[0]['page_sending_requests']):,} campaign pages during a {loads[0]['send_s']:.1f} s send; "
              f"{int(loads[0]['failed']):,} recipients failed; first page of 100k recipients)")


def section_onecall(env: dict) -> None:
    print("\nOne-call notification, 10,000 targets, in_app, 1 worker")
    calls = measure("onecall", env)
    if calls:
        print(line("accepted (202)", median(calls, "accepted_s"), " s", 0.5, None))
        print(line("delivered (every feed row written)", median(calls, "delivered_s"), " s", 5.0, None))


def section_plan_time(env: dict) -> None:
    print("\nLocal-time send of 100,000 recipients across 300 zones (CSV timezone, user directory, fallback): "
          "lifecycle.send with sendAt")
    runs = measure("plan_time", env)
    if not runs:
        return
    print(line("plan waves + recipients UPDATE + commit", median(runs, "plan_s"), " s", 2.0,
               median(runs, "floor_s")))
    print(f"    {runs[0]['waves']} waves over {runs[0]['zones']} zones; every recipient has a wave, the waves sum "
          f"to {ROWS:,}, each recipient's wave due at 09:00 in its zone   PASS")
    print(f"    statements alone: send checks (required variables) {median(runs, 'check_s'):.3f} s, grouped zone "
          f"query {median(runs, 'count_s'):.3f} s ({runs[0]['distinct_keys']} keys), waves "
          f"{median(runs, 'waves_s'):.3f} s, recipients UPDATE + waves rows {median(runs, 'store_s'):.3f} s")
    print("  floor: raw UPDATE recipients SET wave = 2 over the same 100,000 rows, and its commit")


def section_caps(env: dict) -> None:
    print("\nFrequency cap (all channels, 5 per 24 h) during the 100,000 in-app send, 1 worker; sends in the order "
          "none, cap, cap, none; cap keys cleared before each")
    runs = measure("caps", env)
    if not runs:
        return
    none_s, cap_s = median(runs, "none_s"), median(runs, "cap_s")
    print(f"  {'send -> sent, no cap rule':<46} {none_s:8.3f} s")
    print(f"  {'send -> sent, with the cap (100,000 users)':<46} {cap_s:8.3f} s")
    print(line("added by the cap check", median(runs, "added_pct"), " %", 20, None))
    for r in runs:
        print(f"    runs: none {', '.join(f'{x:.2f}' for x in r['none_runs'])} s; "
              f"cap {', '.join(f'{x:.2f}' for x in r['cap_runs'])} s")
    print(line("cap check alone, % of the uncapped send", median(runs, "alone_pct"), " %", 20, None))
    print(f"    caps.reserve of 100,000 users in steps of {runs[0]['step']:,} (the worker's), nothing else: "
          f"{median(runs, 'reserve_alone_s'):.3f} s; Redis time in the cap script during a capped send: "
          f"{median(runs, 'redis_cap_s'):.3f} s")
    print(f"    CPU of the worker (work horses included) + Redis per send: none {median(runs, 'cpu_none_s'):.2f} s, "
          f"cap {median(runs, 'cpu_cap_s'):.2f} s ({median(runs, 'cpu_pct'):+.1f} %)")
    print("  the send-to-send difference is noisy on a shared machine; the check alone is its cost without the noise")


def section_audience(env: dict) -> None:
    print(f"\nAudiences (issue 16): users with 5 typed attributes; segments, materialise, send "
          f"(median of {AUDIENCE_RUNS} run{'s' if AUDIENCE_RUNS > 1 else ''})")
    runs = measure("audience", env, runs=AUDIENCE_RUNS)
    if not runs:
        return
    n = runs[0]["users"]
    print(line(f"import {n:,} users via POST /users", median(runs, "import_s"), " s", 60,
               median(runs, "floor_import_s")))
    print(f"    {n // 10_000:,} calls of 10,000 users, 2 clients at once, gunicorn as the Procfile runs it")
    print(line(f"segment count over {n:,} users, p95", median(runs, "count_p95_ms"), " ms", 300, None))
    for name, figures in runs[0]["counts"].items():
        print(f"    {name:<52} p50 {figures['p50']:7.1f} ms  p95 {figures['p95']:7.1f} ms")
    print(line(f"materialise {n:,} recipients (freeze)", median(runs, "materialise_s"), " s", 15,
               median(runs, "floor_materialise_s")))
    print(line(f"send {n:,} in-app with 2 workers", median(runs, "send_s"), " s", 90, None))
    print("  floors: raw COPY of the same rows into a copy of the table with the same indexes")
    if n != 1_000_000:
        print(f"  (HERALD_BENCH_AUDIENCE_USERS={n}: the bars are for 1,000,000)")


def section_inbox(env: dict) -> None:
    runs = measure("inbox", env)
    if not runs:
        return
    r, n = runs[0], runs[0]["streams"]
    print(f"\nEnd-user inbox (issue 17): {n:,} open streams on one web process (gunicorn.conf.py, gevent, "
          f"WEB_CONCURRENCY=1) while {r['rows']:,} in-app recipients send ({r['mode']}, {r['workers']} workers)")
    print(line("inbox: commit -> client p95", median(runs, "delay_p95_s"), " s", 1.0, median(runs, "floor_p95_s")))
    print(f"    p50 {median(runs, 'delay_p50_s'):.3f} s, max {max(x['delay_max_s'] for x in runs):.3f} s; "
          "commit = the worker's PUBLISH after the chunk's commit ('at'), client = the SSE event parsed")
    once = min(x["once"] for x in runs)
    exact = all(x["once"] == n for x in runs)
    print(f"  {'inbox: streams that got their item exactly once':<46} {once:8,d}/{n:<,d}"
          f"{'':<11} {'PASS' if exact else 'FAIL'}")
    if not exact:
        failures.append("inbox: exactly once")
        for x in runs:
            print(f"    missing {x['missing']}, more than one {x['duplicated']}, another item {x['wrong']}; "
                  f"{x['missing_after'] or ''} {', '.join(x['other'])}")
    print(line("inbox: web RSS (master + worker) peak", max(x["rss_peak_mb"] for x in runs), " MB", 400, None))
    print(f"    {r['rss_empty_mb']:.0f} MB before any stream, {r['rss_streams_mb']:.0f} MB with {n:,} open; "
          f"sampled every 0.5 s during the send")
    print(line("inbox: status partial p95, 20 pollers", median(runs, "status_p95_ms"), " ms", 50,
               median(runs, "baseline_status_p95_ms")))
    print(f"    {int(r['status_requests']):,} status requests during a {r['send_s']:.1f} s send; {r['publishes']} "
          f"PUBLISHes; streams connected in {r['connect_s']:.1f} s ({r['connects']:,} connects)")
    print(f"    web worker during the send: on a CPU {median(runs, 'web_cpu_pct'):.0f} %, runnable but waiting for "
          f"one {median(runs, 'web_wait_pct'):.0f} % (without streams: {median(runs, 'baseline_web_cpu_pct'):.0f} % "
          f"and {median(runs, 'baseline_web_wait_pct'):.0f} %)")
    for label, key in (("without streams", "baseline_cpu_pct"), ("with streams", "cpu_pct")):
        spent = r[key]
        print(f"    CPU during the send {label} (% of one CPU; {os.cpu_count() * 100} % in all): "
              + ", ".join(f"{name} {pct:.0f}" for name, pct in spent.items())
              + f"; total {sum(spent.values()):.0f}")
    print(f"    stream client: CPU {median(runs, 'client_cpu_pct'):.0f} %, waiting for one "
          f"{median(runs, 'client_wait_pct'):.0f} %; load average {r['load'][0]:.2f} on {os.cpu_count()} CPUs")
    per_poll = r["baseline_web_cpu_s"] / max(r["baseline_status_requests"], 1)
    per_item = (r["web_cpu_s"] - per_poll * r["status_requests"]) / n
    print(f"    web worker CPU: {1000 * per_poll:.1f} ms per status request (the send without streams), "
          f"~{1000 * per_item:.1f} ms per streamed item (the rest of the second send's CPU / {n:,}); "
          f"RSS {1024 * (r['rss_streams_mb'] - r['rss_empty_mb']) / n:.0f} kB per open stream")
    print("  floors: commit -> client: the bench's own Redis subscriber, 'at' -> heard (Redis alone); status "
          "partial: the same pollers during the same send before any stream was opened "
          f"({median(runs, 'baseline_send_s'):.1f} s)")


def run_sections(env: dict) -> None:
    only = {x for x in os.environ.get("HERALD_BENCH_ONLY", "").split(",") if x}
    print(f"Herald benchmarks — median of {RUNS} runs, PostgreSQL, {os.cpu_count()} CPUs")
    copy_floor = section_csv(env) if not only or "csv" in only else None
    if not only or "send" in only:
        section_send(env, copy_floor)
    if not only or "channels" in only:
        section_throughput(env)
        section_limits(env)
        section_kills(env)
    if not only or "load" in only:
        section_load(env)
    if not only or "onecall" in only:
        section_onecall(env)
    if not only or "plan_time" in only:
        section_plan_time(env)
    if not only or "caps" in only:
        section_caps(env)
    if not only or "audience" in only:
        section_audience(env)
    if not only or "inbox" in only:
        section_inbox(env)


def bench_env(db_url: str, redis_url: str) -> dict:
    base = redis_url.rsplit("/", 1)[0] if redis_url.count("/") > 2 else redis_url
    return dict(os.environ, HERALD_ENV="testing", SECRET_KEY="bench", DATABASE_URL=db_url, REDIS_URL=base + "/13",
                HERALD_WEBHOOK_ALLOW_PRIVATE="1")  # the sinks listen on 127.0.0.1


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt  # SIGTERM (e.g. `timeout make bench`) cleans up like Ctrl-C


def main() -> int:
    signal.signal(signal.SIGTERM, _interrupt)
    if not services.postgres_reachable():
        print(f"PostgreSQL is not reachable at {services.postgres_admin_url()}; the bars are for PostgreSQL.")
        return 2
    redis_url = os.environ.get("HERALD_TEST_REDIS_URL", services.DEFAULT_REDIS)
    redis_proc = db_url = None
    try:
        if not services.redis_reachable(redis_url):
            from scripts import redis_server

            redis_proc, redis_url = redis_server.start(ROOT / "instance" / "bench-redis")
        db_url = services.create_postgres_database()
        run_sections(bench_env(db_url, redis_url))
    except KeyboardInterrupt:
        failures.append("interrupted")
        return 130
    finally:
        with signals_ignored():
            if db_url:
                services.drop_postgres_database(db_url)
            if redis_proc is not None:
                bench_procs.stop(redis_proc, grace=10)
    if failures:
        print(f"\nFailed: {', '.join(failures)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
