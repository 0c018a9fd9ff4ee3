"""`make run`: migrate, seed the demo accounts, start a private Redis when REDIS_URL is
unset, then web + worker (with scheduler) + the inbox demo host (another port, so another
origin) under honcho until Ctrl-C."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scripts import redis_server  # noqa: E402

BIN = Path(sys.executable).parent


def port_is_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def free_port_from(port: int, taken: tuple[int, ...] = ()) -> int:
    while port in taken or not port_is_free(port):
        port += 1
    return port


def main() -> int:
    env = dict(os.environ)
    env.setdefault("HERALD_ENV", "development")
    env.setdefault("HERALD_WEBHOOK_ALLOW_PRIVATE", "1")  # local webhook receivers (127.0.0.1) are fine here
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    instance = ROOT / "instance"
    instance.mkdir(exist_ok=True)
    flask = [str(BIN / "flask"), "--app", "wsgi"]

    port = free_port_from(int(env.get("PORT", "5000")))
    demo_port = free_port_from(port + 1)
    herald, demo = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{demo_port}"
    env.update(HERALD_WEB_PORT=str(port), HERALD_DEMO_PORT=str(demo_port), HERALD_INBOX_DEMO_URL=f"{demo}/")

    subprocess.run([*flask, "db", "upgrade"], cwd=ROOT, env=env, check=True)
    subprocess.run([*flask, "seed-demo", "--inbox-origin", demo, "--inbox-origin", f"http://localhost:{demo_port}"],
                   cwd=ROOT, env=env, check=True)

    redis_proc = None
    if not env.get("REDIS_URL"):
        redis_proc, env["REDIS_URL"] = redis_server.start(instance / "redis")
        print(f"Started a private Redis at {env['REDIS_URL']} (data under instance/redis, nothing persisted).")

    print()
    print("=" * 64)
    print(f"  Herald is starting at  {herald}/")
    print(f"  Inbox demo (another origin): {demo}/ — send an in-app campaign to demo-001 and watch it arrive")
    print("  Sign in as  marketer@herald.test / herald-marketer")
    print("         or   admin@herald.test / herald-admin")
    print("         or   support@herald.test / herald-support")
    print("  Press Ctrl-C to stop web, worker, demo and Redis.")
    print("=" * 64, flush=True)

    honcho = subprocess.Popen([str(BIN / "honcho"), "start", "-f", "Procfile.dev", "-p", str(port)],
                              cwd=ROOT, env=env)
    try:
        return honcho.wait()
    except KeyboardInterrupt:
        honcho.send_signal(signal.SIGINT)
        return honcho.wait()
    finally:
        if redis_proc is not None:
            redis_proc.terminate()
            redis_proc.wait(timeout=10)
        print("Herald stopped.")


if __name__ == "__main__":
    sys.exit(main())
