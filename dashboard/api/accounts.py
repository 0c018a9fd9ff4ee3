from __future__ import annotations

from flask import jsonify
from sqlalchemy import select

from dashboard.access import ADMINS, ALL_ROLES, current_role, roles
from dashboard.api.common import bp
from dashboard.extensions import db
from dashboard.models import Account


def account_json(account: Account) -> dict:
    return {"id": account.id, "email": account.email, "role": account.role, "active": account.active,
            "createdAt": account.created_at.isoformat()}


@bp.get("/me")
@roles(*ALL_ROLES)
def me():
    """Who the key belongs to: a quick way to check a key and its role."""
    from flask import g

    return jsonify({"account": account_json(g.api_key.account), "role": current_role(),
                    "keyPrefix": g.api_key.prefix})


@bp.get("/accounts")
@roles(*ADMINS)
def account_list():
    rows = db.session.scalars(select(Account).order_by(Account.email)).all()
    return jsonify({"items": [account_json(a) for a in rows], "nextCursor": None})
