"""`make bench`: the performance figures of QUALITY.md, each printed beside its bar and its
ratio to a floor measured in the same run. Needs the local PostgreSQL and a Redis."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests import services  # noqa: E402

RUNS = int(os.environ.get("HERALD_BENCH_RUNS", "3"))


def run_part(part: str, env: dict) -> dict:
    out = subprocess.run([sys.executable, "-m", "scripts.bench_parts", part], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=1800)
    if out.returncode != 0:
        sys.stderr.write(out.stdout + out.stderr)
        raise SystemExit(f"benchmark part {part} failed")
    return json.loads(out.stdout.strip().splitlines()[-1])


def line(label: str, value: float, unit: str, bar: float, floor: float | None, lower_is_better: bool = True) -> str:
    ok = value <= bar if lower_is_better else value >= bar
    ratio = f"{value / floor:5.1f}x floor ({floor:.3f}{unit})" if floor else ""
    sign = "<=" if lower_is_better else ">="
    return f"  {label:<46} {value:8.3f}{unit:<3} bar {sign} {bar:g}{unit:<3} {'PASS' if ok else 'FAIL':<5} {ratio}"


def main() -> int:
    if not services.postgres_reachable():
        print(f"PostgreSQL is not reachable at {services.postgres_admin_url()}; the bars are for PostgreSQL.")
        return 2
    redis_url = os.environ.get("HERALD_TEST_REDIS_URL", services.DEFAULT_REDIS)
    proc = None
    if not services.redis_reachable(redis_url):
        from scripts import redis_server

        proc, redis_url = redis_server.start(ROOT / "instance" / "bench-redis")
    db_url = services.create_postgres_database()
    env = dict(os.environ, HERALD_ENV="testing", SECRET_KEY="bench", DATABASE_URL=db_url,
               REDIS_URL=redis_url.rsplit("/", 1)[0] + "/13" if redis_url.count("/") > 2 else redis_url + "/13")
    try:
        only = {x for x in os.environ.get("HERALD_BENCH_ONLY", "").split(",") if x}
        print(f"Herald benchmarks — median of {RUNS} runs, PostgreSQL, {os.cpu_count()} CPUs")
        copy_floor = None
        if not only or "csv" in only:
            print("\nCSV recipients (100,000 rows, 4 variables)")
            runs = [run_part("csv", env) for _ in range(RUNS)]
            med = {k: statistics.median(r[k] for r in runs) for k in runs[0] if isinstance(runs[0][k], float)}
            copy_floor = med["floor_copy_s"]
            print(f"  file size {runs[0]['size_mb']:.2f} MB")
            print(line("validate (dry run), server time", med["validate_s"], " s", 2.0, med["floor_parse_s"]))
            print(line("web process peak RSS during validate", med["rss_mb"], " MB", 300, None))
            print(line("confirm/import into PostgreSQL", med["import_s"], " s", 3.0, copy_floor))
            print("  floors: stdlib csv parse of the same bytes; raw COPY of the same 100,000 rows")
        if not only or "send" in only:
            print("\nSend 100,000 recipients, in_app, batch")
            one = [run_part("send1", env) for _ in range(RUNS)]
            two = [run_part("send2", env) for _ in range(RUNS)]
            t1 = statistics.median(r["send_s"] for r in one)
            t2 = statistics.median(r["send_s"] for r in two)
            print(line("send -> sent, 1 worker", t1, " s", 20.0, copy_floor))
            print(line("deliveries per second, 1 worker", 100_000 / t1, "/s", 5_000, None, lower_is_better=False))
            print(line("worker RSS (parent + work horse), peak", max(r["worker_rss_mb"] for r in one), " MB", 250,
                       None))
            print(line("send -> sent, 2 workers", t2, " s", t1 / 1.6, None))
            print(line("speed-up with 2 workers", t1 / t2, " x", 1.6, None, lower_is_better=False))
            if copy_floor:
                print("  floor: raw COPY of 100,000 rows (the least a send must write)")
        if not only or "channels" in only:
            print("\nExternal channels, 10,000 recipients, batch, 1 worker, local sinks")
            hooks = [run_part("webhook", env) for _ in range(RUNS)]
            mails = [run_part("email", env) for _ in range(RUNS)]
            print(line("webhook deliveries per second", statistics.median(r["per_s"] for r in hooks), "/s", 1000,
                       None, lower_is_better=False))
            print(line("email deliveries per second", statistics.median(r["per_s"] for r in mails), "/s", 500,
                       None, lower_is_better=False))
            throttle = run_part("throttle", env)
            print(line("throttle 200/s, 2 workers: busiest 1 s window", throttle["busiest_1s"], "", 220, None))
            print(f"  (2,000 webhooks took {throttle['elapsed_s']:.1f} s; 200/s allows no less than ~10 s)")
        if not only or "load" in only:
            print("\nDashboard under load (gunicorn, 2 processes x 8 threads) while 100,000 in-app recipients send")
            loads = [run_part("load", env) for _ in range(RUNS)]
            print(line("status partial p95, 20 concurrent pollers",
                       statistics.median(r["status_p95_ms"] for r in loads), " ms", 50, None))
            print(line("campaign page p95 (100k recipients, first page)",
                       statistics.median(r["page_p95_ms"] for r in loads), " ms", 150, None))
            print(f"  ({int(loads[0]['status_requests']):,} status requests during a {loads[0]['send_s']:.1f} s send)")
        if not only or "onecall" in only:
            print("\nOne-call notification, 10,000 targets, in_app, 1 worker")
            calls = [run_part("onecall", env) for _ in range(RUNS)]
            print(line("accepted (202)", statistics.median(r["accepted_s"] for r in calls), " s", 0.5, None))
            print(line("delivered (every feed row written)", statistics.median(r["delivered_s"] for r in calls),
                       " s", 5.0, None))
    finally:
        services.drop_postgres_database(db_url)
        if proc is not None:
            proc.terminate()
    return 0


if __name__ == "__main__":
    sys.exit(main())
