# The demo's pytest suites (examples/demo/tests) on top of greenloop's image, so the
# runner has greenloop's pytest plugin. Run: python -m pytest -q tests/test_core.py
ARG BASE=localhost/greenloop:dev
FROM ${BASE}
ARG WHEELS=
USER root
COPY . /src
# After the install, one pytest session writes the assertion-rewritten bytecode of the
# plugins every session loads (greenloop's own and its modules, anyio's from httpx) next
# to their sources: the image's PYTHONDONTWRITEBYTECODE stops a test pod writing it, so
# without this each pod's pytest rewrote them again (~0.15 s of CPU per shard's start).
RUN /opt/greenloop/bin/pip install --no-cache-dir --disable-pip-version-check \
      ${WHEELS:+--no-index --find-links "$WHEELS"} "pytest>=8" \
 && mkdir -p /suites \
 && cp -r /src/examples/demo/tests /src/examples/demo/pytest.ini /suites/ \
 && rm -rf /src \
 && mkdir /tmp/warm && printf 'def test_warm():\n    assert True\n' > /tmp/warm/test_warm.py \
 && env -u PYTHONDONTWRITEBYTECODE python3 -m pytest -q -p no:cacheprovider \
      --rootdir=/tmp/warm /tmp/warm/test_warm.py \
 && rm -rf /tmp/warm
USER 10001:10001
WORKDIR /suites
ENTRYPOINT ["python3", "-m", "pytest"]
CMD ["-q", "tests"]
