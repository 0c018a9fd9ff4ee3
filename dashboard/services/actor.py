"""Who acts: a domain value recorded in the audit log (an account, an API key, or the system)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Actor:
    label: str
    account_id: int | None = None
    api_key_id: int | None = None

    @classmethod
    def system(cls, what: str = "system") -> Actor:
        return cls(label=what)
