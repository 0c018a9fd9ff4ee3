"""Real services for the tests: a throwaway PostgreSQL database, a Redis (the local one,
or a private redis-server when none answers)."""

from __future__ import annotations

import os
import uuid

import redis

DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/postgres"
DEFAULT_REDIS = "redis://127.0.0.1:6379"


def postgres_admin_url() -> str:
    return os.environ.get("HERALD_TEST_POSTGRES_URL", DEFAULT_PG)


def _pg_connect(url: str):
    import psycopg

    return psycopg.connect(url, autocommit=True, connect_timeout=3)


def postgres_reachable() -> bool:
    try:
        with _pg_connect(postgres_admin_url()):
            return True
    except Exception:
        return False


def create_postgres_database() -> str:
    name = f"herald_test_{uuid.uuid4().hex[:10]}"
    admin = postgres_admin_url()
    with _pg_connect(admin) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return admin.rsplit("/", 1)[0] + "/" + name


def drop_postgres_database(url: str) -> None:
    name = url.rsplit("/", 1)[1]
    with _pg_connect(postgres_admin_url()) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def redis_reachable(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=1).ping())
    except redis.RedisError:
        return False
