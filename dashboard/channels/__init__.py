from __future__ import annotations

from dashboard.channels.base import Channel, ChannelUnavailable, Message, Result
from dashboard.channels.in_app import InAppChannel

_CHANNELS = {"in_app": InAppChannel}


def get_channel(name: str) -> Channel:
    factory = _CHANNELS.get(name)
    if factory is None:
        raise ChannelUnavailable(f"The {name} channel is not available yet; use in_app.")
    return factory()


def available(name: str) -> bool:
    return name in _CHANNELS


__all__ = ["Channel", "ChannelUnavailable", "Message", "Result", "available", "get_channel"]
