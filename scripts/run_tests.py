"""`make test`: the whole suite on PostgreSQL (when reachable) and then on SQLite.

HERALD_REQUIRE_POSTGRES=1 (set by .ci/run) turns an unreachable PostgreSQL into a failure."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.services import postgres_admin_url, postgres_reachable  # noqa: E402


def run(db: str, extra: list[str]) -> int:
    print(f"\n===== test suite on {db} =====", flush=True)
    env = dict(os.environ, HERALD_TEST_DB=db)
    return subprocess.call([sys.executable, "-m", "pytest", *extra], cwd=ROOT, env=env)


def main() -> int:
    extra = sys.argv[1:]
    results = {}
    if postgres_reachable():
        results["postgresql"] = run("postgresql", extra)
    elif os.environ.get("HERALD_REQUIRE_POSTGRES") == "1":
        print(f"PostgreSQL is required but not reachable at {postgres_admin_url()}", file=sys.stderr)
        results["postgresql"] = 1
    else:
        print(f"NOTE: PostgreSQL not reachable at {postgres_admin_url()}; running on SQLite only.")
    results["sqlite"] = run("sqlite", extra)
    print("\n===== summary =====")
    for db, code in results.items():
        print(f"  {db:<10} {'passed' if code == 0 else f'FAILED (exit {code})'}")
    return 0 if all(code == 0 for code in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
