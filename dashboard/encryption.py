"""Channel secrets at rest: Fernet tokens under a key from HERALD_ENCRYPTION_KEY, or derived from
SECRET_KEY. A stored value without the prefix is a plaintext secret from an earlier version."""

from __future__ import annotations

import base64
import binascii
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from flask import current_app

PREFIX = "fernet:"


class Undecryptable(Exception):
    """A stored secret was encrypted under a key Herald no longer has."""


def derived_key(secret_key: str) -> bytes:
    """A Fernet key from SECRET_KEY (HKDF-SHA256), so a deployment needs no extra setting."""
    raw = HKDF(algorithm=hashes.SHA256(), length=32, salt=b"herald", info=b"channel-secrets/v1").derive(
        secret_key.encode())
    return base64.urlsafe_b64encode(raw)


@lru_cache(maxsize=8)
def _fernet(explicit: str, secret_key: str) -> MultiFernet:
    """The first key encrypts, every key decrypts: HERALD_ENCRYPTION_KEY may list several
    (comma-separated, newest first), and the SECRET_KEY-derived key always reads older values."""
    keys = []
    for part in (p.strip() for p in explicit.split(",")):
        if not part:
            continue
        try:
            keys.append(Fernet(part))
        except (ValueError, binascii.Error):
            raise RuntimeError("HERALD_ENCRYPTION_KEY must be a Fernet key (32 url-safe base64-encoded bytes), "
                               "e.g. from `python -c 'from cryptography.fernet import Fernet; "
                               "print(Fernet.generate_key().decode())'`.") from None
    keys.append(Fernet(derived_key(secret_key)))
    return MultiFernet(keys)


def _current() -> MultiFernet:
    return _fernet(current_app.config.get("HERALD_ENCRYPTION_KEY") or "", current_app.config["SECRET_KEY"])


def is_encrypted(value: str) -> bool:
    return isinstance(value, str) and value.startswith(PREFIX)


def encrypt(value: str) -> str:
    return PREFIX + _current().encrypt(value.encode()).decode()


def decrypt(value: str) -> str:
    """The plaintext of a stored value (a legacy plaintext value is returned as it is)."""
    if not is_encrypted(value):
        return value
    try:
        return _current().decrypt(value[len(PREFIX):].encode()).decode()
    except InvalidToken:
        raise Undecryptable("it was encrypted under another key (SECRET_KEY or HERALD_ENCRYPTION_KEY "
                            "changed)") from None
