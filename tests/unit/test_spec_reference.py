"""docs/spec-reference.md is generated from the CRD and must not drift from it."""

from __future__ import annotations

import copy
import importlib.util
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _load_tool() -> ModuleType:
    # tools/ is a folder of scripts, not a package: load the script by path.
    spec = importlib.util.spec_from_file_location(
        "spec_reference", ROOT / "tools/spec_reference.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while building
    spec.loader.exec_module(module)
    return module


tool = _load_tool()


@pytest.fixture
def crd() -> dict[str, Any]:
    loaded: dict[str, Any] = tool.load_crd()
    return loaded


def _field_paths(node: Mapping[str, Any], path: str) -> Iterator[str]:
    """Every field path under ``node``, written without the tool's own walker so a field
    the tool skipped is noticed: ``spec.suites[].name``."""
    for name, prop in node.get("properties", {}).items():
        here = f"{path}.{name}"
        yield here
        if prop.get("type") == "array":
            yield from _field_paths(prop.get("items", {}), f"{here}[]")
        else:
            yield from _field_paths(prop, here)


def _schema(crd: Mapping[str, Any]) -> Mapping[str, Any]:
    (version,) = [v for v in crd["spec"]["versions"] if v.get("storage")]
    schema: Mapping[str, Any] = version["schema"]["openAPIV3Schema"]
    return schema


def test_committed_document_is_up_to_date(crd: dict[str, Any]) -> None:
    problem = tool.check(tool.render(crd), tool.DOC_PATH)
    assert problem is None, problem


@pytest.mark.parametrize("part", ["spec", "status"])
def test_every_field_of_the_crd_is_documented(crd: dict[str, Any], part: str) -> None:
    text = tool.DOC_PATH.read_text(encoding="utf-8")
    paths = list(_field_paths(_schema(crd)["properties"][part], part))
    assert len(paths) > 20  # the walk found the schema at all
    missing = [p for p in paths if f"`{p}`" not in text]
    assert not missing, f"not in docs/spec-reference.md: {missing}"


def test_fallback_descriptions_only_fill_gaps(crd: dict[str, Any]) -> None:
    # A fallback for a field the CRD lost, or one the CRD now describes, is dead text.
    schema = _schema(crd)["properties"]
    known = {"status"} | set(_field_paths(schema["spec"], "spec"))
    known |= set(_field_paths(schema["status"], "status"))
    lacking = set(tool.missing_descriptions(crd))
    stale = sorted(set(tool.FALLBACK_DESCRIPTIONS) - (known & lacking))
    assert not stale, f"FALLBACK_DESCRIPTIONS entries to remove: {stale}"


def test_crd_change_makes_the_check_fail(
    crd: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    changed = copy.deepcopy(crd)
    _schema(changed)["properties"]["spec"]["properties"]["policy"]["properties"]["maxIterations"][
        "default"
    ] = 7
    doc = tmp_path / "spec-reference.md"
    doc.write_text(tool.render(crd), encoding="utf-8")
    problem = tool.check(tool.render(changed), doc)
    assert problem is not None
    assert "out of date" in problem and "run: python tools/spec_reference.py" in problem
    assert "+| `spec.policy.maxIterations` | integer | `7`" in problem


def test_check_flag_exits_1_on_a_stale_document(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    doc = tmp_path / "spec-reference.md"
    doc.write_text("stale\n", encoding="utf-8")
    monkeypatch.setattr(tool, "DOC_PATH", doc)
    assert tool.main(["--check"]) == 1
    assert "run: python tools/spec_reference.py" in capsys.readouterr().err
    assert doc.read_text(encoding="utf-8") == "stale\n"  # --check writes nothing
    assert tool.main([]) == 0
    assert tool.main(["--check"]) == 0


def test_a_field_without_any_description_is_refused(crd: dict[str, Any]) -> None:
    changed = copy.deepcopy(crd)
    _schema(changed)["properties"]["spec"]["properties"]["newField"] = {"type": "string"}
    with pytest.raises(tool.ReferenceError, match=r"spec\.newField has no description"):
        tool.render(changed)
