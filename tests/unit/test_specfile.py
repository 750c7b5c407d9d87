"""greenloop.local.specfile: a spec file read the one way every command reads it (a
regular file, size-capped, never blocking), its messages naming the path as given."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from greenloop.core.spec import SpecError
from greenloop.local import specfile
from greenloop.local.specfile import load_spec

DOC_A = (
    "apiVersion: greenloop.dev/v1alpha1\nkind: StagingValidation\n"
    "metadata: {name: a}\nspec: {suites: [{name: s, command: [x]}]}\n"
)


def test_load_spec_source_is_the_path_as_given(tmp_path: Path) -> None:
    (tmp_path / "v.yaml").write_text(DOC_A.replace("name: s", "name: S"), encoding="utf-8")
    relative = os.path.relpath(tmp_path / "v.yaml")
    with pytest.raises(SpecError) as caught:
        load_spec(relative)
    assert str(caught.value).startswith(f"{relative}: spec.suites[0].name: ")
    (tmp_path / "v.yaml").write_text(DOC_A, encoding="utf-8")
    (sv,) = load_spec(tmp_path / "v.yaml").objects
    assert sv.source == str(tmp_path / "v.yaml")


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: p / "missing.yaml", "no such file"),
        (lambda p: p, "is a directory, not a regular file; greenloop reads only files"),
        (
            lambda p: _write(p / "latin1.yaml", b"a: caf\xe9\n"),
            "not UTF-8 text (invalid byte at offset 6)",
        ),
    ],
    ids=["missing", "directory", "not utf-8"],
)
def test_load_spec_errors(tmp_path: Path, make: Callable[[Path], Path], message: str) -> None:
    path = make(tmp_path)
    with pytest.raises(SpecError) as caught:
        load_spec(path)
    assert str(caught.value) == f"{path}: {message}"


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_a_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "v.yaml"
    os.mkfifo(fifo)
    with pytest.raises(SpecError) as caught:
        load_spec(fifo)
    assert str(caught.value) == f"{fifo}: is a FIFO (named pipe), not a regular file; " + (
        "greenloop reads only files"
    )


def test_a_file_over_the_cap_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "v.yaml"
    path.write_text(DOC_A + "#" * 100, encoding="utf-8")
    monkeypatch.setattr(specfile, "SPEC_MAX_BYTES", 100)
    with pytest.raises(SpecError, match=r"larger than greenloop reads \(100 bytes\)"):
        load_spec(path)
