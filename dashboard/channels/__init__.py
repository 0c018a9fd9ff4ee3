from __future__ import annotations

from dashboard.channels.base import Channel, ChannelUnavailable, Message, Result


def get_channel(name: str) -> Channel:
    """The configured channel; raises ChannelUnavailable when it cannot be used at all."""
    from dashboard.services.channel_settings import build

    return build(name)


def check_available(name: str) -> None:
    get_channel(name)


__all__ = ["Channel", "ChannelUnavailable", "Message", "Result", "check_available", "get_channel"]
