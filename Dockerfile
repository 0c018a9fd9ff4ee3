# syntax=docker/dockerfile:1
# Herald's container image: one image for every process (web, worker, release/migrate); the
# command picks which, exactly as the Procfile does. Build: docker build -t herald .
# Base: the Python of .python-version on Debian 12 (bookworm), slim; pin by digest in your registry
# mirror if you need byte-for-byte rebuilds.

# --- build: install the pinned requirements into a virtualenv (wheels only, no compilers) ------
FROM python:3.11.7-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
COPY requirements.txt /tmp/requirements.txt
RUN /opt/venv/bin/pip install --only-binary=:all: -r /tmp/requirements.txt

# --- runtime: the virtualenv and the app (owned by root, read-only to the app), run as user 10001 ---
FROM python:3.11.7-slim-bookworm
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HERALD_ENV=production \
    PORT=8000
RUN groupadd --system --gid 10001 herald \
 && useradd --system --uid 10001 --gid herald --home-dir /app --shell /usr/sbin/nologin herald
WORKDIR /app
COPY --from=build /opt/venv /opt/venv
COPY . /app
RUN mkdir -p /app/instance && chown herald:herald /app/instance
USER 10001:10001
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('PORT', '8000'), timeout=4)"]
# The web process; the worker and the migration are the Procfile's other lines (see compose.yaml).
CMD ["gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"]
