"""Settings for `rq worker -c dashboard.rq_settings`: Redis from REDIS_URL like the app."""

import os

REDIS_URL = os.environ.get("REDIS_URL", "redis://localhost:6379/0")
QUEUES = ["realtime", "batch", "default"]
