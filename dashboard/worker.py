"""The RQ worker class named in the Procfile: builds the app before forking work horses."""

from __future__ import annotations

from rq import Worker

from dashboard import jobs


class HeraldWorker(Worker):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        jobs.get_app()

    def main_work_horse(self, job, queue):
        # The horse is a fork: never reuse the parent's pooled DB sockets.
        from dashboard.extensions import db

        with jobs.get_app().app_context():
            db.engine.dispose(close=False)
        return super().main_work_horse(job, queue)
