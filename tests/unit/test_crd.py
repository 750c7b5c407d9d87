"""core/crd.py's names are the one definition of where the CRD lives (docs/design.md §6):
they must say what the shipped CRD says, and the shells must take them from there."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from greenloop.core import crd

PACKAGE = Path(crd.__file__).resolve().parents[1]


def test_the_names_are_the_shipped_crds() -> None:
    doc = crd.crd()
    served = [v["name"] for v in doc["spec"]["versions"] if v["served"] and v["storage"]]
    assert (doc["metadata"]["name"], doc["spec"]["group"], served) == (
        crd.NAME,
        crd.GROUP,
        [crd.VERSION],
    )
    assert (doc["spec"]["names"]["kind"], doc["spec"]["names"]["plural"]) == (crd.KIND, crd.PLURAL)


# The CRD's coordinates as string literals. The bare domain is left out: label and
# annotation keys ("greenloop.dev/suite", kopf's annotation prefix) share it and are not
# the CRD; `__all__` names the model class StagingValidation, not the kind.
LITERAL = re.compile(
    r"""["'](greenloop\.dev/v1alpha1|v1alpha1|StagingValidation|stagingvalidations)["']"""
)
EXPORTS = re.compile(r"^__all__ = \[.*?^\]", re.S | re.M)


@pytest.mark.parametrize(
    "path", sorted(p for p in PACKAGE.rglob("*.py") if p.name != "crd.py"), ids=str
)
def test_no_module_writes_the_crds_coordinates_again(path: Path) -> None:
    text = EXPORTS.sub("", path.read_text(encoding="utf-8"))
    assert not LITERAL.findall(text), f"{path.relative_to(PACKAGE)}: use greenloop.core.crd"
