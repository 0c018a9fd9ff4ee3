"""The end-user inbox part of `make bench` (issue 17), PostgreSQL, one process; prints one JSON line.

inbox: one web process as production runs it (the Procfile's web line: gunicorn.conf.py, gevent,
WEB_CONCURRENCY=1, i.e. the master and one worker) and 2 RQ workers (the Procfile's worker line).
Two in-app campaigns (batch mode) of the same 100,000 recipients, loaded with the COPY path the
other parts use, are sent one after the other under 20 pollers of the status partial (a signed-in
dashboard session, as the `load` part does):
1. with no stream open: the status partial's p95 on this web process in this run (the floor);
2. with 1,000 of the users, spread evenly over the recipients, holding a stream (token minted
   in-process by inbox.issue_token; GET /inbox/v1/stream, no Last-Event-ID: from now on).
The 1,000 streams are held by ONE separate process (`python -m scripts.bench_inbox clients`:
asyncio over raw sockets, HTTP/1.1 chunked, SSE parsed by hand) that records when each
notification event arrives; its CPU during the send is reported (it must not be the bottleneck).

A subscriber in this process hears the workers' `{"k": "new", "u": [...], "at": epoch}` on Redis
channel herald:inbox, PUBLISHed right after each chunk step commits: per user, delay = arrival at
the client - `at` (same machine, same clock); its own delay (`at` -> heard here) is the floor.
Every stream must get exactly one item: the row the second send wrote for its user. The web
process's RSS (master + worker, summed, /proc/<pid>/status) is sampled every 0.5 s during the
second send; the web worker's time on a CPU and runnable-but-waiting for one (/proc/<pid>/schedstat)
tell its own cost from a busy machine's.

HERALD_BENCH_INBOX_STREAMS / HERALD_BENCH_INBOX_ROWS make it smaller while developing."""

from __future__ import annotations

import asyncio
import json
import os
import queue
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time

import httpx
import redis
from sqlalchemy import select, text

from dashboard import create_app
from dashboard.extensions import db
from dashboard.models import Campaign, Notification
from dashboard.services import campaigns, inbox, lifecycle
from scripts.bench_parts import ACTOR, _login, _p95, _poll_status, add_recipients, setup, wait_final
from scripts.bench_procs import Children, free_port, main, web_command

STREAMS = int(os.environ.get("HERALD_BENCH_INBOX_STREAMS", "1000"))
ROWS = int(os.environ.get("HERALD_BENCH_INBOX_ROWS", "100000"))
CONNECT_AT_ONCE = 100  # connections the client opens at a time (the listen backlog is gunicorn's 2048)
SAMPLE_EVERY = 0.5
TRACE = os.environ.get("HERALD_BENCH_INBOX_TRACE")  # a file for the per-user times, to see where a delay grows
DUPLICATE_WINDOW = 2.0  # after every stream has its item, how long the client keeps listening for a second one


# -- the stream client (a process of its own) ------------------------------------------------------

class Stream:
    def __init__(self, user: str, token: str):
        self.user, self.token = user, token
        self.last_id = 0
        self.got: list[tuple[int, float]] = []  # (notification id, arrival epoch)
        self.connected = asyncio.Event()
        self.connects = 0
        self.other: list[str] = []  # reset / expired / an HTTP error: none expected

    def event(self, block: bytes) -> None:
        kind, event_id, data = "message", None, []
        for line in block.decode().split("\n"):
            if line.startswith(":"):
                continue
            name, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if name == "event":
                kind = value
            elif name == "id":
                event_id = value
            elif name == "data":
                data.append(value)
        if kind == "notification":
            now = time.time()
            item = json.loads("\n".join(data))
            if str(item["id"]) != event_id:
                self.other.append(f"event id {event_id} for item {item['id']}")
            self.got.append((item["id"], now))
            self.last_id = item["id"]
        elif kind == "unread":
            self.connected.set()
        elif kind != "message":
            self.other.append(kind)


async def _chunks(reader: asyncio.StreamReader, chunked: bool):
    while True:
        if not chunked:
            data = await reader.read(65536)
            if not data:
                return
            yield data
            continue
        size = int((await reader.readline()).split(b";")[0].strip() or b"0", 16)
        if size == 0:
            return
        yield (await reader.readexactly(size + 2))[:-2]


async def _open(stream: Stream, host: str, port: int):
    reader, writer = await asyncio.open_connection(host, port)
    stream.connects += 1
    resume = f"Last-Event-ID: {stream.last_id}\r\n" if stream.last_id else ""  # none: from now on
    writer.write((f"GET /inbox/v1/stream HTTP/1.1\r\nHost: {host}:{port}\r\n"
                  f"Authorization: Bearer {stream.token}\r\nAccept: text/event-stream\r\n{resume}\r\n").encode())
    head = await reader.readuntil(b"\r\n\r\n")
    status = head.split(b" ", 2)[1].decode()
    if status != "200":
        writer.close()
        raise ValueError(f"HTTP {status}")
    return reader, writer, b"transfer-encoding: chunked" in head.lower()


async def _read(stream: Stream, reader: asyncio.StreamReader, chunked: bool) -> None:
    buffer = b""
    async for data in _chunks(reader, chunked):
        buffer += data
        while b"\n\n" in buffer:
            block, buffer = buffer.split(b"\n\n", 1)
            stream.event(block)
    stream.other.append("closed by the server")


async def _hold(stream: Stream, host: str, port: int, gate: asyncio.Semaphore, stop: asyncio.Event) -> None:
    """One stream, reconnected (with the newest id it holds) if it ever ends. At most
    CONNECT_AT_ONCE streams are between connect and their first event at a time."""
    while not stop.is_set():
        writer = None
        try:
            if stream.connected.is_set():
                reader, writer, chunked = await _open(stream, host, port)
                await _read(stream, reader, chunked)
                continue
            async with gate:
                reader, writer, chunked = await _open(stream, host, port)
                reading = asyncio.create_task(_read(stream, reader, chunked))
                first = asyncio.create_task(stream.connected.wait())
                await asyncio.wait({reading, first}, return_when=asyncio.FIRST_COMPLETED)
                first.cancel()
            await reading
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as err:
            stream.other.append(f"{type(err).__name__}: {err}"[:200])
            await asyncio.sleep(0.5)
        finally:
            if writer is not None:
                writer.close()


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def _clients(base: str) -> None:
    """Reads [[user, token], ...] from the first line of stdin, then the commands `mark` (the send
    starts) and `stop`. Writes `connected <seconds>`, `all` (every stream has an item) and, at
    stop, one JSON line."""
    host, port = base.split("//", 1)[1].rsplit(":", 1)
    loop = asyncio.get_running_loop()
    commands: asyncio.Queue = asyncio.Queue()

    def read_stdin():
        for line in sys.stdin:
            loop.call_soon_threadsafe(commands.put_nowait, line.strip())
        loop.call_soon_threadsafe(commands.put_nowait, "stop")

    first = sys.stdin.readline()
    streams = [Stream(user, token) for user, token in json.loads(first)]
    threading.Thread(target=read_stdin, daemon=True).start()
    stop, gate = asyncio.Event(), asyncio.Semaphore(CONNECT_AT_ONCE)
    start = time.monotonic()
    tasks = [asyncio.create_task(_hold(s, host, int(port), gate, stop)) for s in streams]
    await asyncio.gather(*(s.connected.wait() for s in streams))
    print(f"connected {time.monotonic() - start:.3f}", flush=True)
    marked = (time.monotonic(), _cpu(), _sched(os.getpid())[1])

    async def watch_all():
        while not all(s.got for s in streams):
            await asyncio.sleep(0.05)
        print("all", flush=True)

    watcher = asyncio.create_task(watch_all())
    while (command := await commands.get()) != "stop":
        if command == "mark":
            marked = (time.monotonic(), _cpu(), _sched(os.getpid())[1])
    wall, cpu, waited = time.monotonic() - marked[0], _cpu() - marked[1], _sched(os.getpid())[1] - marked[2]
    stop.set()
    for task in [*tasks, watcher]:
        task.cancel()
    await asyncio.gather(*tasks, watcher, return_exceptions=True)
    print(json.dumps({"cpu_s": cpu, "wall_s": wall, "waited_s": waited,
                      "streams": [{"u": s.user, "got": s.got, "connects": s.connects, "other": s.other[:5]}
                                  for s in streams]}), flush=True)


# -- the part ---------------------------------------------------------------------------------------

def _children_of(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return []


def _rss_mb(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def web_rss_mb(master: int) -> float:
    """The web process: gunicorn's master and its worker(s), summed."""
    return _rss_mb(master) + sum(_rss_mb(child) for child in _children_of(master))


class Sampler(threading.Thread):
    def __init__(self, master: int):
        super().__init__(daemon=True)
        self.master, self.peak, self.samples = master, 0.0, 0
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.is_set():
            self.peak = max(self.peak, web_rss_mb(self.master))
            self.samples += 1
            self.halt.wait(SAMPLE_EVERY)


class Listener(threading.Thread):
    """Hears the workers' PUBLISHes: per watched user, the `at` of the first message naming them
    (the chunk's commit) and when it was heard here."""

    def __init__(self, redis_url: str, users: set[str]):
        super().__init__(daemon=True)
        self.users = users
        self.at: dict[str, float] = {}
        self.heard: dict[str, float] = {}
        self.messages = 0
        self.pubsub = redis.Redis.from_url(redis_url).pubsub(ignore_subscribe_messages=True)
        self.pubsub.subscribe(inbox.CHANNEL)
        self.pubsub.get_message(timeout=1)  # the subscription is in place before the send starts

    def run(self) -> None:
        try:
            for message in self.pubsub.listen():
                now = time.time()
                if message.get("type") != "message":
                    continue
                data = json.loads(message["data"])
                if data.get("k") != "new":
                    continue
                self.messages += 1
                for user in data["u"]:
                    if user in self.users and user not in self.at:
                        self.at[user], self.heard[user] = data["at"], now
        except (redis.ConnectionError, ValueError, AttributeError):
            return  # closed at the end


def _web(children: Children, log) -> tuple[subprocess.Popen, str]:
    port = free_port()
    proc = children.spawn(web_command(port), env=dict(os.environ, WEB_CONCURRENCY="1"),
                          stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            httpx.get(base + "/healthz", timeout=1)
            return proc, base
        except httpx.HTTPError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("gunicorn did not start") from None
            time.sleep(0.1)


def _line(lines: queue.Queue, prefix: str, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        try:
            line = lines.get(timeout=left)
        except queue.Empty:
            break
        if line is None:
            raise SystemExit(f"the stream client exited before '{prefix}'")
        if line.startswith(prefix):
            return line
    raise SystemExit(f"the stream client did not say '{prefix}' within {timeout:g} s")


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, int(round(len(ordered) * q)) - 1)] if ordered else float("nan")


def _sched(pid: int) -> tuple[float, float]:
    """(seconds on a CPU, seconds runnable but waiting for one) of a process's main thread."""
    try:
        with open(f"/proc/{pid}/schedstat") as f:
            on, waiting, _ = f.read().split()
        return int(on) / 1e9, int(waiting) / 1e9
    except (OSError, ValueError):
        return 0.0, 0.0


def _stat_cpu(pid: int, children: bool) -> float:
    """CPU seconds of a process (all its threads), with its reaped children's if `children`."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return sum(int(x) for x in fields[11:15 if children else 13]) / os.sysconf("SC_CLK_TCK")


def _machine_busy() -> float:
    """CPU seconds the whole machine spent busy (all CPUs, /proc/stat)."""
    with open("/proc/stat") as f:
        values = [int(x) for x in f.readline().split()[1:]]
    return (sum(values[:8]) - values[3] - values[4]) / os.sysconf("SC_CLK_TCK")


class Budget:
    """Where the machine's CPU went during a send: per group of processes (a process's own time,
    plus its reaped and live children's: RQ work horses are forked per job), and everyone else."""

    def __init__(self, groups: dict[str, list[int]]):
        """groups: name -> pids (a pid's children count with it, except for this process's: they
        are the other groups)."""
        self.groups = groups

    def _total(self, pid: int) -> float:
        if pid == os.getpid():
            return _stat_cpu(pid, False)
        return _stat_cpu(pid, True) + sum(_stat_cpu(child, False) for child in _children_of(pid))

    def _now(self) -> dict[str, float]:
        taken = {name: sum(self._total(pid) for pid in pids) for name, pids in self.groups.items()}
        taken["machine"] = _machine_busy()
        return taken

    def start(self) -> None:
        self.before = self._now()

    def stop(self, seconds: float) -> dict[str, float]:
        """Percent of one CPU per group over `seconds`; "other" is the rest of the machine's busy time."""
        after = self._now()
        spent = {name: 100 * (after[name] - self.before[name]) / seconds for name in after}
        spent["other processes"] = spent.pop("machine") - sum(spent.values())
        return spent


class Send:
    """One send of a campaign under the 20 status pollers, the web worker's CPU time and its wait for a CPU."""

    def __init__(self, base: str, cookies: dict, worker: int, budget: Budget):
        self.base, self.cookies, self.worker, self.budget = base, cookies, worker, budget

    def run(self, campaign_id: int) -> dict:
        cpu0, wait0 = _sched(self.worker)
        self.budget.start()
        start = time.perf_counter()
        lifecycle.send(campaign_id, None, ACTOR)
        latencies = _poll_status(self.base, self.cookies, campaign_id, 600)
        campaign = wait_final(campaign_id, 120)
        elapsed = time.perf_counter() - start
        cpu, wait = (b - a for a, b in zip((cpu0, wait0), _sched(self.worker), strict=True))
        budget = self.budget.stop(elapsed)
        assert (campaign.status, campaign.sent) == ("sent", ROWS), (campaign.status, campaign.sent)
        return {"status_p95_ms": _p95(latencies), "status_requests": len(latencies), "send_s": elapsed,
                "web_cpu_s": cpu, "web_cpu_pct": 100 * cpu / elapsed, "web_wait_pct": 100 * wait / elapsed,
                "cpu_pct": budget}


def part_inbox() -> dict:
    """Two sends of the same 100,000 users on one web process: the first with no stream open (the
    status partial's baseline in this run), the second with the 1,000 streams."""
    app = create_app()
    with app.app_context(), Children() as children, tempfile.TemporaryFile("w+") as log:
        first, _ = setup(app)
        db.session.execute(text("TRUNCATE notifications RESTART IDENTITY CASCADE"))
        db.session.commit()
        second = campaigns.create({"name": "Bench, with streams", "templateId": "bench"}, ACTOR).id
        db.session.commit()
        for campaign_id in (first, second):
            add_recipients(campaign_id, ROWS)
            assert db.session.get(Campaign, campaign_id).delivery_mode == "batch"
        every = ROWS // STREAMS
        users = [f"u-{i * every + every // 2:06d}" for i in range(STREAMS)]
        tokens = [[user, inbox.issue_token(user)[0]] for user in users]
        db.session.commit()

        web, base = _web(children, log)
        (worker,) = _children_of(web.pid)
        rss_empty = web_rss_mb(web.pid)
        workers = [children.worker().pid for _ in range(2)]
        cookies = _login(base)
        groups = {"web (master + worker)": [web.pid], "RQ workers (+ work horses)": workers,
                  "bench: pollers, subscriber, sampler": [os.getpid()]}
        backend = db.session.execute(text("SELECT pg_backend_pid()")).scalar()
        with open(f"/proc/{backend}/stat") as f:  # its parent: the postmaster (RQ work horses connect per job)
            groups["PostgreSQL (the whole server)"] = [int(f.read().rsplit(")", 1)[1].split()[1])]
        budget = Budget(groups)
        send = Send(base, cookies, worker, budget)
        time.sleep(2.0)  # let the workers boot and subscribe
        baseline = send.run(first)

        client = children.spawn([sys.executable, "-m", "scripts.bench_inbox", "clients", base],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        lines: queue.Queue = queue.Queue()

        def pump():
            for line in client.stdout:
                lines.put(line.strip())
            lines.put(None)

        threading.Thread(target=pump, daemon=True).start()
        groups["stream client"] = [client.pid]
        client.stdin.write(json.dumps(tokens) + "\n")
        client.stdin.flush()
        connect_s = float(_line(lines, "connected", 180).split()[1])
        time.sleep(1.0)
        rss_streams = web_rss_mb(web.pid)
        listener = Listener(app.config["REDIS_URL"], set(users))
        listener.start()
        sampler = Sampler(web.pid)
        sampler.start()
        client.stdin.write("mark\n")
        client.stdin.flush()
        streamed = send.run(second)
        try:
            _line(lines, "all", 60)
            missing_after = None
        except SystemExit as err:
            missing_after = str(err)
        time.sleep(DUPLICATE_WINDOW)
        client.stdin.write("stop\n")
        client.stdin.flush()
        result = json.loads(_line(lines, "{", 60))
        sampler.halt.set()
        sampler.join()
        listener.pubsub.close()
        load = os.getloadavg()
        expected = dict(db.session.execute(select(Notification.user_id, Notification.id).where(
            Notification.campaign_id == second, Notification.user_id.in_(users))).all())
        assert len(expected) == STREAMS, len(expected)

    once = missing = duplicated = wrong = 0
    delays, other = [], []
    for stream in result["streams"]:
        got, user = stream["got"], stream["u"]
        ids = [note_id for note_id, _ in got]
        other += stream["other"]
        if not got:
            missing += 1
            continue
        if ids == [expected[user]]:
            once += 1
        elif len(ids) > 1:
            duplicated += 1
        else:
            wrong += 1
        if user in listener.at:
            delays.append(got[0][1] - listener.at[user])
    floor = [listener.heard[u] - listener.at[u] for u in listener.at]
    if TRACE:  # per user: the chunk's commit, heard by the bench's subscriber, the client's arrivals
        with open(TRACE, "w") as f:
            json.dump([{"u": s["u"], "at": listener.at.get(s["u"]), "heard": listener.heard.get(s["u"]),
                        "got": s["got"]} for s in result["streams"]], f)
    return {"streams": STREAMS, "rows": ROWS, "mode": "batch", "workers": 2,
            "delay_p50_s": statistics.median(delays) if delays else float("nan"),
            "delay_p95_s": _quantile(delays, 0.95), "delay_max_s": max(delays, default=float("nan")),
            "floor_p95_s": _quantile(floor, 0.95), "timed": len(delays),
            "once": once, "missing": missing, "duplicated": duplicated, "wrong": wrong,
            "missing_after": missing_after, "other": sorted(set(other))[:10],
            "connects": sum(s["connects"] for s in result["streams"]), "connect_s": connect_s,
            "rss_peak_mb": sampler.peak, "rss_samples": sampler.samples, "rss_empty_mb": rss_empty,
            "rss_streams_mb": rss_streams, **streamed,
            "baseline_status_p95_ms": baseline["status_p95_ms"], "baseline_send_s": baseline["send_s"],
            "baseline_web_cpu_pct": baseline["web_cpu_pct"], "baseline_web_wait_pct": baseline["web_wait_pct"],
            "baseline_web_cpu_s": baseline["web_cpu_s"], "baseline_cpu_pct": baseline["cpu_pct"],
            "baseline_status_requests": baseline["status_requests"],
            "client_cpu_pct": 100 * result["cpu_s"] / result["wall_s"],
            "client_wait_pct": 100 * result["waited_s"] / result["wall_s"], "publishes": listener.messages,
            "load": load}


if __name__ == "__main__":
    if sys.argv[1:2] == ["clients"]:
        asyncio.run(_clients(sys.argv[2]))
    else:
        main({"inbox": part_inbox})
