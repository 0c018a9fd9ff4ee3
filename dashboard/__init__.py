"""Herald: notification campaigns. create_app is the only way to build the app."""

from __future__ import annotations

import os

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from dashboard import config as config_module
from dashboard.extensions import csrf, db, init_redis, login_manager, migrate

PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def create_app(config: dict | None = None) -> Flask:
    app = Flask(
        __name__,
        instance_path=os.path.join(PROJECT_ROOT, "instance"),
        template_folder=os.path.join(PROJECT_ROOT, "templates"),
        static_folder=os.path.join(PROJECT_ROOT, "static"),
    )
    os.makedirs(app.instance_path, exist_ok=True)
    environ = dict(os.environ)
    if config and "HERALD_ENV" in config:
        environ["HERALD_ENV"] = config["HERALD_ENV"]
    if config and "SECRET_KEY" in config:
        environ["SECRET_KEY"] = config["SECRET_KEY"]
    app.config.from_mapping(config_module.from_environment(app.instance_path, environ))
    if config:
        app.config.update(config)
        if "DATABASE_URL" in config:
            app.config["SQLALCHEMY_DATABASE_URI"] = config_module.normalise_database_url(config["DATABASE_URL"])

    proxies = app.config["HERALD_TRUSTED_PROXIES"]
    if proxies < 0:
        raise RuntimeError("HERALD_TRUSTED_PROXIES is a number of proxies: 0 (none, the default) or more.")
    if proxies:  # the client address and scheme come from that many X-Forwarded-* hops
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=proxies, x_proto=proxies)

    db.init_app(app)
    migrate.init_app(app, db, directory=os.path.join(PROJECT_ROOT, "migrations"))
    csrf.init_app(app)
    login_manager.init_app(app)
    init_redis(app)

    from dashboard import logs, metrics, models, params  # noqa: F401  (models: register tables)
    from dashboard.access import init_access
    from dashboard.api import bp as api_bp
    from dashboard.cli import register_cli
    from dashboard.errors import register_error_handlers
    from dashboard.web import ops, register_web
    from dashboard.web.security import init_security_headers

    logs.init_app(app)  # first: every later hook (and a refused request) has the request id
    metrics.init_app(app)
    init_access(app)
    params.init_app(app)  # before the blueprints: it bounds the <int:...> converter
    register_web(app)
    app.register_blueprint(ops.bp)  # /metrics and the admin Queues & workers page
    app.register_blueprint(api_bp)
    csrf.exempt(api_bp)  # bearer-key auth only; cookies are never accepted there
    from dashboard.api.inbox import bp as inbox_bp
    app.register_blueprint(inbox_bp)
    csrf.exempt(inbox_bp)  # user-token auth only, never cookies
    register_error_handlers(app)
    init_security_headers(app)
    register_cli(app)
    return app
