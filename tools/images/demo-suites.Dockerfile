# The demo's pytest suites (examples/demo/tests) on top of greenloop's image, so the
# runner has greenloop's pytest plugin. Run: python -m pytest -q tests/test_core.py
ARG BASE=localhost/greenloop:dev
FROM ${BASE}
ARG WHEELS=
USER root
COPY . /src
RUN /opt/greenloop/bin/pip install --no-cache-dir --disable-pip-version-check \
      ${WHEELS:+--no-index --find-links "$WHEELS"} "pytest>=8" \
 && mkdir -p /suites \
 && cp -r /src/examples/demo/tests /src/examples/demo/pytest.ini /suites/ \
 && rm -rf /src
USER 10001:10001
WORKDIR /suites
ENTRYPOINT ["python3", "-m", "pytest"]
CMD ["-q", "tests"]
