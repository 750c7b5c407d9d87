"""charts/greenloop agrees with the rest of the repository (no helm needed).

- docs/install.md's values table names every value of the chart, and only those. A
  value is a key of values.yaml the schema (values.schema.json) knows as a leaf: the
  walk descends where the schema lists properties, and stops at objects passed through
  to Kubernetes as they are (securityContext, resources, probes, affinity...).
- The chart's appVersion (the default image tag) is greenloop's version.
"""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "greenloop"
DOC = ROOT / "docs" / "install.md"


def value_keys(values: dict[str, Any], schema: dict[str, Any], prefix: str = "") -> set[str]:
    keys: set[str] = set()
    props = schema.get("properties", {})
    for key, value in values.items():
        node = props.get(key, {})
        if isinstance(value, dict) and node.get("properties"):
            keys |= value_keys(value, node, f"{prefix}{key}.")
        else:
            keys.add(f"{prefix}{key}")
    return keys


def documented_keys() -> set[str]:
    section = DOC.read_text().split("\n## Values\n", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"^\| `([A-Za-z.]+)` \|", section, re.MULTILINE))


def test_the_values_table_lists_every_value_and_no_other() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    schema = json.loads((CHART / "values.schema.json").read_text())
    expected = value_keys(values, schema)
    documented = documented_keys()
    assert len(expected) > 40  # the walk found the values, not nothing
    assert sorted(expected - documented) == [], "values missing from docs/install.md"
    assert sorted(documented - expected) == [], "docs/install.md lists values the chart lacks"


def test_the_app_version_is_greenloops_version() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert chart["appVersion"] == project["version"]
