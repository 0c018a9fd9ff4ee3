"""Delivery backends behind one protocol; services.channel_settings builds the configured one."""

from __future__ import annotations

from dashboard.channels.base import Channel, ChannelUnavailable, Message, Result

__all__ = ["Channel", "ChannelUnavailable", "Message", "Result"]
