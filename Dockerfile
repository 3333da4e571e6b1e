# syntax=docker/dockerfile:1
# The outreach image: `outreach worker` by default, any other `outreach` command as given.
# Built from the whole source tree minus .dockerignore; dependencies come only from
# requirements.lock, hash-checked (docs/decisions/0023). Without a Docker engine,
# tests/integration/test_image.py builds what this file builds and runs it: keep to the
# instructions that test understands, and name container paths in RUN lines only
# through ENV variables (the test maps them to a temporary directory).

FROM python:3.11-slim AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1
ENV WHEELS=/wheels
WORKDIR /src
COPY . .
# Every locked dependency as the very file the lock names (binary wheels only: a wheel
# built here from a source archive would not match the lock's hashes at install time).
RUN pip wheel --require-hashes --only-binary :all: --wheel-dir "$WHEELS" -r requirements.lock \
 && cp requirements.lock "$WHEELS/"
# The project's own wheel; its dependencies are the locked ones above.
RUN pip wheel --no-deps --wheel-dir "$WHEELS" .

FROM python:3.11-slim AS runtime
ENV PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 PIP_DISABLE_PIP_VERSION_CHECK=1
ENV WHEELS=/wheels
ENV VENV=/opt/outreach
ENV PATH="$VENV/bin:$PATH"
# The wheels are mounted, not copied: they never become a layer of the image.
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    python -m venv "$VENV" \
 && pip install --no-cache-dir --no-index --find-links "$WHEELS" --require-hashes -r "$WHEELS/requirements.lock" \
 && pip install --no-cache-dir --no-index --no-deps "$WHEELS"/outreach-*.whl \
 && pip check
RUN useradd --system --uid 10001 --user-group --no-create-home --shell /usr/sbin/nologin outreach
USER outreach
WORKDIR /app
EXPOSE 9464 9465
# Healthy while a worker's /metrics answers; a container running any other command (db
# migrate, schedules apply, codec-server) has nothing to probe and counts as healthy.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-m", "telemetry.probe"]
# The worker drains on SIGTERM: it stops polling and lets an SMTP transaction in flight
# finish, for up to OUTREACH_SEND_START_TO_CLOSE_SECONDS (120 s). Give `docker stop` longer
# than that (compose: stop_grace_period; docker run: --stop-timeout 150).
STOPSIGNAL SIGTERM
CMD ["outreach", "worker"]
