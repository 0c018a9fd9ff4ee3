"""Live inbox streams (Server-Sent Events). One Redis subscriber per web process wakes the streams
of the users a message names; a woken stream reads its new rows (id > the last it sent), so the
rows are the truth: a lost message, a Redis restart or a reconnect never loses an item, and an
item is never sent twice on one stream. A stream holds no database connection while it waits.

Written against `threading` (looked up at call time): under gunicorn's gevent worker, which
monkey-patches it, the subscriber and the waits are greenlets; under threads they are threads."""

from __future__ import annotations

import json
import logging
import threading
import time
import weakref
from collections.abc import Iterator
from datetime import datetime, timedelta

import redis
from flask import Flask
from sqlalchemy import select

from dashboard.extensions import db
from dashboard.models import Notification, utcnow
from dashboard.services import inbox

log = logging.getLogger(__name__)
REPLAY_LIMIT = 100
# Two workers: a chunk's row (the lower id) can commit after a later chunk's. A stream looks this far
# back for rows at or below its newest id that it has not sent.
LATE_SECONDS = 120
# Streams of one process reading the database at once: a wake-up of hundreds of streams queues here
# rather than taking every pooled connection and every turn of the worker from dashboard requests.
READ_SLOTS = 4
_hubs: weakref.WeakSet = weakref.WeakSet()  # this process's hubs, for close_all


class Waiter:
    """One stream's doorbell: what kinds of events came since it last looked."""

    def __init__(self, user_id: str):
        self.user_id = user_id
        self._event = threading.Event()
        self._kinds: set[str] = set()
        self._batches: list[tuple[list, int]] = []

    def wake(self, kind: str) -> None:
        self._kinds.add(kind)
        self._event.set()

    def offer(self, rows: list, unread: int) -> None:
        """The hub read this user's recent rows and unread count for us (one read for all woken streams)."""
        self._batches.append((rows, unread))
        self.wake("batch")

    def take_batches(self) -> list[tuple[list, int]]:
        batches, self._batches = self._batches, []
        return batches

    def wait(self, timeout: float) -> set[str]:
        self._event.wait(timeout)
        self._event.clear()
        kinds, self._kinds = self._kinds, set()
        return kinds


class Hub:
    """Per process: userId -> the waiters of that user's open streams, and the one subscriber."""

    def __init__(self, app: Flask, item_json):
        self._app, self._item_json = app, item_json
        self._url = app.config["REDIS_URL"]
        self._lock = threading.Lock()
        self._waiters: dict[str, set[Waiter]] = {}
        self._thread: threading.Thread | None = None
        self.connected = False
        self.closing = False
        self.reads = threading.BoundedSemaphore(READ_SLOTS)  # made in the worker, after gevent patched threading
        _hubs.add(self)

    def register(self, user_id: str) -> Waiter:
        waiter = Waiter(user_id)
        with self._lock:
            self._waiters.setdefault(user_id, set()).add(waiter)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._listen, name="herald-inbox-hub", daemon=True)
                self._thread.start()
        return waiter

    def unregister(self, waiter: Waiter) -> None:
        with self._lock:
            waiters = self._waiters.get(waiter.user_id)
            if waiters is not None:
                waiters.discard(waiter)
                if not waiters:
                    del self._waiters[waiter.user_id]

    def streams(self) -> int:
        with self._lock:
            return sum(len(w) for w in self._waiters.values())

    def dispatch(self, raw) -> None:
        try:
            message = json.loads(raw)
            kind, users = message["k"], message["u"]
        except (ValueError, KeyError, TypeError):
            return
        if kind == "new":
            self._deliver(users)
            return
        with self._lock:
            targets = [w for user in users for w in self._waiters.get(user, ())]
        for waiter in targets:
            waiter.wake(kind)

    def _deliver(self, users) -> None:
        """A chunk committed: ONE read of the recent rows and ONE grouped unread count for every user
        with a stream here, handed to their streams (a stream reading for itself would make a chunk
        that names hundreds of streaming users hundreds of reads). If it fails, the streams read."""
        with self._lock:
            woken = {user: list(ws) for user in dict.fromkeys(users) if (ws := self._waiters.get(user))}
        if not woken:
            return
        try:
            with self._app.app_context():
                per_user = _recent(list(woken), self._item_json)
                counts = inbox.unread_counts(list(woken))
        except Exception as err:  # noqa: BLE001 - the rows stay the truth: each stream reads them itself
            log.warning("inbox batch read failed, streams read their own rows: %s", err)
            for waiters in woken.values():
                for waiter in waiters:
                    waiter.wake("new")
            return
        for user, waiters in woken.items():
            for waiter in waiters:
                waiter.offer(per_user.get(user, []), counts.get(user, 0))

    def _wake_all(self) -> None:
        with self._lock:
            targets = [w for ws in self._waiters.values() for w in ws]
        for waiter in targets:
            waiter.wake("new")
            waiter.wake("state")

    def close(self) -> None:
        """The process is stopping: every open stream ends now (its client reconnects to another)."""
        self.closing = True
        self._wake_all()

    def _listen(self) -> None:
        backoff = 0.5
        while True:
            try:
                client = redis.Redis.from_url(self._url, socket_keepalive=True, health_check_interval=30)
                pubsub = client.pubsub(ignore_subscribe_messages=True)
                pubsub.subscribe(inbox.CHANNEL)
                self.connected, backoff = True, 0.5
                self._wake_all()  # anything published while we were not subscribed: streams re-read their rows
                for message in pubsub.listen():
                    if message.get("type") == "message":
                        self.dispatch(message["data"])
            except Exception as err:  # noqa: BLE001 - keep serving; streams keep their heartbeats meanwhile
                if self.connected:
                    log.warning("inbox subscriber lost Redis: %s", err)
                self.connected = False
                time.sleep(backoff)
                backoff = min(backoff * 2, 10)


def close_all() -> None:
    """Called when the web worker is told to stop: streams never end by themselves, so without this
    they would hold gunicorn's graceful stop (every deploy) until graceful_timeout."""
    for hub in list(_hubs):
        hub.close()


def hub_for(app: Flask, item_json) -> Hub:
    hub = app.extensions.get("herald_inbox_hub")
    if hub is None:
        hub = app.extensions.setdefault("herald_inbox_hub", Hub(app, item_json))
    return hub


def _window_start() -> datetime:
    return utcnow() - timedelta(seconds=LATE_SECONDS)


def _held(user_id: str, upto: int) -> dict[int, float]:
    """The user's recent rows up to `upto` visible now: what a stream counts as the client's."""
    rows = db.session.execute(select(Notification.id, Notification.created_at).where(
        Notification.user_id == user_id, Notification.id <= upto, Notification.created_at >= _window_start())).all()
    return {note_id: created.timestamp() for note_id, created in rows}


def _recent(users: list[str], item_json) -> dict[str, list[tuple[int, float, dict]]]:
    """Per user, the rows of the late-row window (new ones and late ones alike), oldest first."""
    out: dict[str, list] = {}
    rows = db.session.scalars(select(Notification).where(
        Notification.user_id.in_(users), Notification.created_at >= _window_start(),
        Notification.archived_at.is_(None)).order_by(Notification.id)).all()
    for note in rows:
        out.setdefault(note.user_id, []).append((note.id, note.created_at.timestamp(), item_json(note)))
    return out


def _late(user_id: str, upto: int, held: dict[int, float]) -> list[Notification]:
    """Recent rows up to `upto` the stream has not counted: written before a newer row, committed after it."""
    stmt = select(Notification).where(Notification.user_id == user_id, Notification.id <= upto,
                                      Notification.created_at >= _window_start(), Notification.archived_at.is_(None))
    if held:
        stmt = stmt.where(Notification.id.not_in(list(held)))
    return db.session.scalars(stmt.order_by(Notification.id)).all()


def _event(kind: str, data: dict, event_id: int | None = None) -> str:
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {kind}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


def events(app: Flask, user_id: str, token: str, last_event_id: int | None, item_json) -> Iterator[str]:
    """The stream's body. `last_event_id`: replay the user's items after it (None: from now on).
    A row that commits after a newer one is sent when it commits, with the newest id sent as its
    event id (the resume point never goes back); one that commits while the client is away is not
    replayed (the client's next feed fetch has it)."""
    heartbeat = app.config["HERALD_INBOX_HEARTBEAT"]
    ends = time.monotonic() + app.config["HERALD_INBOX_STREAM_SECONDS"]
    hub = hub_for(app, item_json)
    waiter = hub.register(user_id)  # before reading where we are: nothing committed after this is missed
    try:
        yield "retry: 3000\n\n"
        with hub.reads, app.app_context():
            last = inbox.newest_id(user_id) if last_event_id is None else last_event_id
            count = inbox.unread_count(user_id)
            held = _held(user_id, last)
        kinds = {"new"} if last_event_id is not None else set()
        yield _event("unread", {"unreadCount": count})
        while True:
            if "batch" in kinds:  # rows the hub read for us: new ones (id > last) and late ones (not held)
                floor = _window_start().timestamp()
                held = {i: at for i, at in held.items() if at >= floor}
                for rows, unread in waiter.take_batches():
                    newest = last
                    for note_id, at, data in rows:
                        if note_id > newest:
                            last, held[note_id] = note_id, at
                            yield _event("notification", data, note_id)
                        elif note_id not in held:
                            held[note_id] = at
                            yield _event("notification", data, last)
                    if unread != count:
                        count = unread
                        yield _event("unread", {"unreadCount": count})
                kinds.discard("batch")
            if kinds:
                items, late = [], []
                with hub.reads, app.app_context():
                    if "new" in kinds:
                        floor = _window_start().timestamp()
                        held = {i: at for i, at in held.items() if at >= floor}
                        items, late = inbox.newer_than(user_id, last, REPLAY_LIMIT + 1), _late(user_id, last, held)
                    fresh = inbox.unread_count(user_id) if "state" in kinds or items or late else count
                    payload = [(n.id, n.created_at.timestamp(), item_json(n)) for n in items]
                    late_payload = [(n.id, n.created_at.timestamp(), item_json(n)) for n in late]
                for note_id, at, data in late_payload:
                    held[note_id] = at
                    yield _event("notification", data, last)
                if len(payload) > REPLAY_LIMIT:
                    with hub.reads, app.app_context():
                        last = inbox.newest_id(user_id)
                        held = _held(user_id, last)
                    yield _event("reset", {})
                else:
                    for note_id, at, data in payload:
                        last, held[note_id] = note_id, at
                        yield _event("notification", data, note_id)
                if fresh != count:
                    count = fresh
                    yield _event("unread", {"unreadCount": count})
            kinds = waiter.wait(heartbeat)
            if hub.closing:
                return
            with app.app_context():
                good = inbox.token_still_good(token)
            if not good:
                yield _event("expired", {})
                return
            if time.monotonic() > ends:
                return  # the client reconnects with its last event id
            if not kinds:
                yield ": ping\n\n"
    finally:
        hub.unregister(waiter)
