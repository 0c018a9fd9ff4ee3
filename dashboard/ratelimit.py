"""A token bucket per channel in Redis (one atomic Lua script), shared by every worker, so N
workers together never exceed the channel's messages-per-second."""

from __future__ import annotations

import time

from dashboard.extensions import get_redis

# KEYS[1] bucket; ARGV rate/s, capacity, tokens wanted, now (s). Returns ms to wait (0 = granted).
_SCRIPT = """
local rate = tonumber(ARGV[1])
local capacity = tonumber(ARGV[2])
local want = tonumber(ARGV[3])
local now = tonumber(ARGV[4])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1]) or capacity
local at = tonumber(state[2]) or now
tokens = math.min(capacity, tokens + math.max(0, now - at) * rate)
local wait = 0
if tokens >= want then
  tokens = tokens - want
else
  wait = math.ceil((want - tokens) / rate * 1000)
end
redis.call('HSET', KEYS[1], 'tokens', tokens, 'at', now)
redis.call('PEXPIRE', KEYS[1], math.ceil(capacity / rate * 1000) + 1000)
return wait
"""


class TokenBucket:
    def __init__(self, channel: str, rate: float, burst: float | None = None):
        self.key = f"herald:bucket:{channel}"
        self.rate = max(float(rate), 0.001)
        # A burst of 1/20 s: any one-second window stays within 5% of the rate.
        self.capacity = burst if burst is not None else max(1.0, self.rate / 20)
        self._script = get_redis().register_script(_SCRIPT)

    @property
    def step(self) -> int:
        """Messages per grant: a bucket step is 1/20 s of the rate (at least one message)."""
        return max(1, int(self.capacity))

    def try_take(self, n: int) -> float:
        """Take n tokens (n <= step) if they are there: 0.0, else the seconds to wait first."""
        n = min(n, self.step)
        wait_ms = int(self._script(keys=[self.key], args=[self.rate, self.capacity, n, time.time()]))
        return wait_ms / 1000

    def take(self, n: int = 1) -> None:
        """Block until n tokens are granted (in steps of at most the bucket's capacity)."""
        remaining = n
        while remaining > 0:
            step = min(remaining, self.step)
            wait = self.try_take(step)
            if wait == 0:
                remaining -= step
            else:
                time.sleep(wait)
