# greenloop's container image: the `greenloop` CLI (and, as it lands, the operator) on a
# slim Debian base, running as a non-root user.
#
#   docker build -t greenloop .            # or: buildah bud -t greenloop .
#   docker run --rm greenloop --version
#
# The tests build it without Docker (tools/images/build): Debian's buildah, a base image
# made here with debootstrap passed as BASE, and dependency wheels prepared on the host
# passed as WHEELS (no index is contacted during the build then).
ARG BASE=docker.io/library/python:3.11-slim-bookworm
FROM ${BASE}

# A folder of wheels inside the build context (e.g. /src/.wheels) to install from
# instead of the package index; empty: use the index.
ARG WHEELS=

RUN useradd --system --uid 10001 --user-group --create-home --home-dir /home/greenloop \
      --shell /usr/sbin/nologin greenloop

COPY . /src
RUN python3 -m venv /opt/greenloop \
 && /opt/greenloop/bin/pip install --no-cache-dir --disable-pip-version-check \
      ${WHEELS:+--no-index --find-links "$WHEELS"} /src \
 && rm -rf /src

ENV PATH=/opt/greenloop/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
USER 10001:10001
WORKDIR /home/greenloop
ENTRYPOINT ["greenloop"]
CMD ["--help"]
