"""A process-wide stop flag: SIGTERM in a work horse asks the running slice to end at its
next step boundary (record what was sent, hand the rest back) instead of dying mid-step."""

from __future__ import annotations

_requested = False


def request(*_signal_args) -> None:
    """Usable directly as a signal handler."""
    global _requested
    _requested = True


def requested() -> bool:
    return _requested


def reset() -> None:
    global _requested
    _requested = False
