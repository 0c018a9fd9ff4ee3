from __future__ import annotations

from flask import Flask

from dashboard.extensions import login_manager


def register_web(app: Flask) -> None:
    from dashboard.web import (
        account,
        admin,
        audience,  # noqa: F401 (the draft's Audience panel: routes on the campaigns blueprint)
        auth,
        campaigns,
        channels,
        clicks,
        docs,
        health,
        home,
        inbox_admin,  # noqa: F401 (Admin → In-app inbox: routes on the admin blueprint)
        lists,
        live,
        reports,
        segments,
        support,
        templates,
        timefmt,
    )

    login_manager.login_view = "auth.login"
    login_manager.login_message = "Please sign in to continue."
    login_manager.login_message_category = "info"
    for bp in (auth.bp, home.bp, campaigns.bp, live.bp, templates.bp, support.bp, admin.bp, channels.bp, docs.bp,
               health.bp, account.bp, lists.bp, segments.bp,
               reports.bp, clicks.bp):
        app.register_blueprint(bp)
    timefmt.init_app(app)
