"""Helpers for the hostile-input tests: specs, peak memory of a whole command."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from tests.e2e.cli import greenloop_command

PEAK_RSS = """\
import resource, subprocess, sys
subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=100)
sys.stdout.write(str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss))
"""


def peak_rss_mib(*args: str, cwd: Path, env: dict[str, str] | None = None) -> float:
    """Peak resident memory of `greenloop ARGS` (and anything it waited for), in MiB,
    measured with `resource` in a fresh parent so nothing else is counted."""
    full_env = dict(os.environ)
    full_env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + full_env.get("PATH", "")
    full_env.update(env or {})
    out = subprocess.run(
        [sys.executable, "-c", PEAK_RSS, *greenloop_command(), *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    return int(out) / 1024


def spec(folder: Path, body: str, name: str = "validation.yaml") -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(body))
    return path


def suite_spec(folder: Path, name: str, script: str, extra: str = "", **suite: object) -> Path:
    """A spec with one suite running ``script`` (Python) from suite.py."""
    (folder / "suite.py").write_text(textwrap.dedent(script))
    fields = "".join(f", {k}: {json.dumps(v)}" for k, v in suite.items())
    return spec(
        folder,
        textwrap.dedent(f"""\
        apiVersion: greenloop.dev/v1alpha1
        kind: StagingValidation
        metadata: {{name: {name}}}
        spec:
          suites:
          - {{name: s, command: [python, suite.py]{fields}}}
        """)
        + textwrap.indent(textwrap.dedent(extra), "  "),
    )


def stalled(status_doc: str) -> dict[str, str]:
    status = json.loads(status_doc)["status"]
    return next(c for c in status["conditions"] if c["type"] == "Stalled")


JUNIT_ONE_FAILING = """\
import os
open(os.environ["GREENLOOP_JUNIT_XML"], "w").write(
    '<testsuite><testcase classname="t" name="a">'
    '<failure message="HTTP 503 Service Unavailable"/></testcase></testsuite>')
"""

JUNIT_ONE_PASSING = """\
import os
open(os.environ["GREENLOOP_JUNIT_XML"], "w").write(
    '<testsuite><testcase classname="t" name="a"/></testsuite>')
"""
