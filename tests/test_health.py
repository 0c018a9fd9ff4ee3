import pytest

from dashboard import create_app


def test_healthz_reports_both_ok(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"database": "ok", "redis": "ok"}


def test_healthz_names_redis_when_down(database_url):
    app = create_app({"HERALD_ENV": "testing", "SECRET_KEY": "k", "DATABASE_URL": database_url,
                      "REDIS_URL": "redis://127.0.0.1:1/0"})
    response = app.test_client().get("/healthz")
    assert response.status_code == 503
    body = response.get_json()
    assert body["database"] == "ok"
    assert body["redis"].startswith("down")


@pytest.mark.parametrize("url", ["postgresql://nobody@127.0.0.1:1/none", "sqlite:////nonexistent-dir/x/y.db"])
def test_healthz_names_database_when_down(redis_url, url):
    app = create_app({"HERALD_ENV": "testing", "SECRET_KEY": "k", "DATABASE_URL": url, "REDIS_URL": redis_url})
    response = app.test_client().get("/healthz")
    assert response.status_code == 503
    body = response.get_json()
    assert body["database"].startswith("down") and body["redis"] == "ok"
