"""Load and validate StagingValidation objects (docs/design.md §1) into :mod:`greenloop.core.model`.

This module loads YAML text or bytes (one or more documents); the CRD is in
:mod:`greenloop.core.crd`, the checks in :mod:`greenloop.core.spec_checks` (a file is
defaulted and validated against the CRD's own openAPIV3Schema, exactly as the API server
would, then checked for what a structural schema cannot say), and building the model in
:mod:`greenloop.core.spec_build`.

Every problem is reported, not only the first, as ``<source>: <path>: <message>``.
Pure core: it reads no files. A spec file is read by the shell, size-capped and never
blocking on a FIFO (:func:`greenloop.local.specfile.load_spec`), and handed here as bytes.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import yaml

from greenloop.core.crd import API_VERSION, KIND, crd, spec_schema
from greenloop.core.model import StagingValidation
from greenloop.core.schema import FieldError, field_path
from greenloop.core.spec_build import build
from greenloop.core.spec_checks import Mode, check, parse_duration

__all__ = [
    "API_VERSION",
    "KIND",
    "MAX_SHOWN",
    "FieldError",
    "Loaded",
    "Mode",
    "SpecError",
    "crd",
    "from_object",
    "load_bytes",
    "load_text",
    "parse_duration",
    "spec_schema",
    "validate_object",
]

# YAML aliases are shared, so a few lines can expand to billions of values; validating
# walks the expansion, so refuse documents far larger than any real spec.
_MAX_VALUES = 100_000
# A spec error shows at most this many problems: 10,000 bad suites made 30,001 lines.
MAX_SHOWN = 50


class SpecError(ValueError):
    """A spec that cannot be used; ``str()`` gives one ``<source>: <path>: <message>``
    line per problem."""

    source: str
    errors: tuple[FieldError, ...]

    def __init__(self, source: str, errors: Sequence[FieldError]) -> None:
        # args are the constructor's arguments so the exception pickles (multiprocessing).
        super().__init__(source, tuple(errors))
        self.source = source
        self.errors = tuple(errors)

    @property
    def reason(self) -> str:
        """The stall reason: InvalidSpec, or the limit a problem names (RulesTooLarge)."""
        return next((e.reason for e in self.errors if e.reason), "InvalidSpec")

    def __str__(self) -> str:
        shown = [_line(self.source, error) for error in self.errors[:MAX_SHOWN]]
        if len(self.errors) > MAX_SHOWN:
            more = len(self.errors) - MAX_SHOWN
            shown.append(f"{self.source}: … and {more:,} more problems (fix these first)")
        return "\n".join(shown)


@dataclass(frozen=True, slots=True)
class Loaded:
    objects: tuple[StagingValidation, ...]
    warnings: tuple[str, ...]


def _line(source: str, error: FieldError) -> str:
    return f"{source}: {error}"


# ---------------------------------------------------------------------------
# Public API


def validate_object(obj: Any, *, mode: Mode = "local") -> list[FieldError]:
    """Every problem with one decoded object; empty when it is a valid StagingValidation."""
    errors, _, _ = check(obj, mode)
    return errors


def from_object(
    obj: Mapping[str, Any], *, source: str = "<object>", mode: Mode = "local"
) -> StagingValidation:
    """Build a StagingValidation from a decoded object (a file's document or an object
    read from the API server). Raises SpecError naming every problem."""
    errors, _, body = check(obj, mode)
    if errors or body is None:
        raise SpecError(source, errors)
    return build(obj, body, source)


def load_text(text: str, *, source: str = "<string>", mode: Mode = "local") -> Loaded:
    """Load every StagingValidation in YAML text (one or more documents)."""
    documents = _parse(text, source)
    present = [(index, doc) for index, doc in enumerate(documents) if doc is not None]
    if not present:
        raise SpecError(source, [FieldError("", f"no {KIND} found: the file is empty")])
    # Paths name the document only when there is more than one to tell apart.
    several = len(present) > 1
    errors: list[FieldError] = []
    warnings: list[str] = []
    objects: list[StagingValidation] = []
    first_seen: dict[tuple[str, str], int] = {}
    for index, doc in present:
        prefix = f"documents[{index}]" if several else ""
        doc_errors, doc_warnings, body = check(doc, mode)
        errors.extend(_prefixed(prefix, error) for error in doc_errors)
        warnings.extend(_line(source, _prefixed(prefix, w)) for w in doc_warnings)
        if doc_errors or body is None:
            continue
        sv = build(doc, body, source)
        key = (sv.namespace, sv.name)
        if key in first_seen:
            errors.append(
                FieldError(
                    field_path(prefix, "metadata.name"),
                    f"duplicate object {sv.namespace}/{sv.name}"
                    f" (also documents[{first_seen[key]}])",
                )
            )
            continue
        first_seen[key] = index
        objects.append(sv)
    if errors:
        raise SpecError(source, errors)
    return Loaded(objects=tuple(objects), warnings=tuple(warnings))


def load_bytes(data: bytes, *, source: str, mode: Mode = "local") -> Loaded:
    """Load every StagingValidation in a file's bytes (UTF-8 YAML); messages name
    ``source``, the path as the user gave it."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SpecError(
            source, [FieldError("", f"not UTF-8 text (invalid byte at offset {exc.start})")]
        ) from None
    return load_text(text, source=source, mode=mode)


# ---------------------------------------------------------------------------
# YAML


class _Loader(yaml.SafeLoader):
    """A SafeLoader that reads YAML the way the API server does (sigs.k8s.io/yaml):
    timestamps stay strings, and a key given twice is an error rather than the last
    value silently winning."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Hashable, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            if isinstance(key, Hashable):
                if key in seen:
                    raise yaml.constructor.ConstructorError(
                        "while constructing a mapping",
                        node.start_mark,
                        f"found duplicate key {key!r}",
                        key_node.start_mark,
                    )
                seen.add(key)
        return super().construct_mapping(node, deep=deep)

    def construct_yaml_int(self, node: yaml.ScalarNode) -> int:
        try:
            return super().construct_yaml_int(node)
        except ValueError:
            # Python refuses to read a decimal integer of more than 4,300 digits.
            raise yaml.constructor.ConstructorError(
                None, None, "integer with too many digits", node.start_mark
            ) from None


_Loader.add_constructor("tag:yaml.org,2002:int", _Loader.construct_yaml_int)


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _parse(text: str, source: str) -> list[Any]:
    try:
        documents = list(yaml.load_all(text, Loader=_Loader))
    except yaml.MarkedYAMLError as exc:
        raise SpecError(source, [FieldError("", _yaml_message(exc))]) from None
    except yaml.reader.ReaderError as exc:
        char = exc.character if isinstance(exc.character, int) else ord(exc.character[:1] or "\0")
        message = f"invalid YAML: {exc.reason} (U+{char:04X} at offset {exc.position})"
        raise SpecError(source, [FieldError("", message)]) from None
    except yaml.YAMLError as exc:
        raise SpecError(source, [FieldError("", f"invalid YAML: {exc}")]) from None
    except RecursionError:
        raise SpecError(source, [FieldError("", "invalid YAML: nested too deeply")]) from None
    for index, doc in enumerate(documents):
        if _too_big(doc):
            where = f"document {index} " if len(documents) > 1 else ""
            message = f"{where}is too large: over {_MAX_VALUES} values once aliases are expanded"
            raise SpecError(source, [FieldError("", message)])
    return documents


def _yaml_message(exc: yaml.MarkedYAMLError) -> str:
    mark = exc.problem_mark or exc.context_mark
    problem = exc.problem or exc.context or "invalid YAML"
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    message = f"invalid YAML{where}: {problem}"
    if exc.problem and exc.context:
        context = exc.context
        if exc.context_mark is not None and (mark is None or exc.context_mark.line != mark.line):
            context += f" at line {exc.context_mark.line + 1}"
        message += f" ({context})"
    return message


def _too_big(doc: Any) -> bool:
    count = 0
    stack = [doc]
    while stack:
        value = stack.pop()
        count += 1
        if count > _MAX_VALUES:
            return True
        if isinstance(value, Mapping):
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)
    return False


def _prefixed(prefix: str, error: FieldError) -> FieldError:
    if not prefix:
        return error
    return FieldError(field_path(prefix, error.path) if error.path else prefix, error.message)
