"""The StagingValidation CRD (crds/stagingvalidation.yaml, shipped in the package as
crd/stagingvalidation.yaml): the one source of truth for the spec's schema and defaults.

Pure core: reads only the package's own resource.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from functools import cache
from importlib import resources
from typing import Any

import yaml

__all__ = [
    "API_VERSION",
    "GROUP",
    "KIND",
    "NAME",
    "PLURAL",
    "VERSION",
    "crd",
    "schema",
    "spec_schema",
    "subschema",
]

# The one definition of where the CRD lives in the API (docs/design.md §6); the shells
# (kopf's watch, the gateway's REST paths, owner references, Events) take them from
# here. tests/unit/test_crd.py holds them equal to crd/stagingvalidation.yaml.
GROUP = "greenloop.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "StagingValidation"
PLURAL = "stagingvalidations"
NAME = f"{PLURAL}.{GROUP}"  # the CRD object's own name


@cache
def _crd() -> dict[str, Any]:
    resource = resources.files("greenloop") / "crd" / "stagingvalidation.yaml"
    loaded = yaml.safe_load(resource.read_text(encoding="utf-8"))
    if not isinstance(loaded, dict):
        raise RuntimeError("greenloop/crd/stagingvalidation.yaml is not a mapping")
    return loaded


@cache
def schema() -> dict[str, Any]:
    """The served (storage) version's openAPIV3Schema, shared: callers must not change it."""
    for version in _crd()["spec"]["versions"]:
        if version.get("served") and version.get("storage"):
            found: dict[str, Any] = version["schema"]["openAPIV3Schema"]
            return found
    raise RuntimeError("the StagingValidation CRD has no served storage version")


def crd() -> dict[str, Any]:
    """The parsed CRD (a copy: callers may change it)."""
    return copy.deepcopy(_crd())


def spec_schema() -> dict[str, Any]:
    """The openAPIV3Schema of the served (storage) version (a copy)."""
    return copy.deepcopy(schema())


def subschema(*names: str) -> Mapping[str, Any]:
    node: Mapping[str, Any] = schema()
    for name in names:
        node = node["properties"][name]
    return node
