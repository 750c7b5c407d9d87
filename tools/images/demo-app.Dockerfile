# The demo-shop staging app (examples/demo/app) as an image. Standard library only.
# Listens on 127.0.0.1:8080 inside the pod (the server binds loopback), state in /tmp.
ARG BASE=docker.io/library/python:3.11-slim-bookworm
FROM ${BASE}
RUN useradd --system --uid 10001 --user-group --no-create-home --shell /usr/sbin/nologin demo
COPY examples/demo/app/ /app/
USER 10001:10001
ENV PYTHONUNBUFFERED=1
ENTRYPOINT ["python3", "/app/server.py", "--port", "8080", "--state-dir", "/tmp/demo-state"]
