"""Label selectors as the API server reads them, and the index the watch-fed store
(greenloop.k8s.store, docs/design.md §8.1) answers them from.

*select visits what could match*: a tick's select (a Job's pods by `job-name`, a target's
ReplicaSets and pods by its selector) looks only at the objects of that namespace that
carry one of the selector's `key=value` labels (the fewest of them), not at every object
of the kind: each object's tick costs the same at a thousand objects as at ten
(tests/unit/test_k8s_store_scale.py). A selector with no equality visits the namespace.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

__all__ = ["LabelIndex", "matcher", "matches", "matches_string", "selector_string"]

Key = tuple[str, str]  # (namespace, name)
Labels = Mapping[str, str]


def _requirement(part: str) -> Callable[[Labels], bool]:
    part = part.strip()
    for op in (" notin ", " in "):
        if op in part:
            key, _, rest = part.partition(op)
            values = {v.strip() for v in rest.strip().strip("()").split(",")}
            key = key.strip()
            if op == " in ":
                return lambda labels: labels.get(key) in values
            return lambda labels: labels.get(key) not in values
    if "!=" in part:
        key, _, value = part.partition("!=")
        return lambda labels: labels.get(key.strip()) != value.strip()
    if "=" in part:
        key, value = _equality(part)
        return lambda labels: labels.get(key) == value
    if part.startswith("!"):
        return lambda labels: part[1:] not in labels
    return lambda labels: part in labels


def _equality(part: str) -> tuple[str, str]:
    key, _, value = part.strip().replace("==", "=").partition("=")
    return key.strip(), value.strip()


def _is_equality(part: str) -> bool:
    return "=" in part and "!=" not in part and " in " not in part and " notin " not in part


def _split(selector: str) -> list[str]:
    """A selector string's requirements (commas inside `in (a,b)` do not split)."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(selector):
        depth += ch == "("
        depth -= ch == ")"
        if ch == "," and depth == 0:
            parts.append(selector[start:i])
            start = i + 1
    parts.append(selector[start:])
    return [p for p in parts if p.strip()]


def matcher(selector: str) -> Callable[[Labels], bool]:
    """A selector string read once, to test many objects' labels ("" matches all)."""
    requirements = [_requirement(part) for part in _split(selector)]
    return lambda labels: all(r(labels) for r in requirements)


def matches_string(selector: str, labels: Labels) -> bool:
    """Whether labels match a label selector string ("" matches everything)."""
    return matcher(selector)(labels)


def selector_string(sel: Mapping[str, Any] | None) -> str:
    """A LabelSelector (`matchLabels`, `matchExpressions`) as the API's query string."""
    sel = sel or {}
    parts = [f"{k}={v}" for k, v in sorted((sel.get("matchLabels") or {}).items())]
    for expr in sel.get("matchExpressions") or ():
        key, op, values = expr.get("key", ""), expr.get("operator", ""), expr.get("values") or ()
        if op == "In":
            parts.append(f"{key} in ({','.join(values)})")
        elif op == "NotIn":
            parts.append(f"{key} notin ({','.join(values)})")
        elif op == "Exists":
            parts.append(key)
        elif op == "DoesNotExist":
            parts.append(f"!{key}")
    return ",".join(parts)


def matches(sel: Mapping[str, Any] | None, labels: Labels) -> bool:
    """Whether labels match a LabelSelector dict."""
    return matches_string(selector_string(sel), labels)


class LabelIndex:
    """The keys of one kind's objects by namespace and by (namespace, label, value)."""

    def __init__(self) -> None:
        self.namespaces: dict[str, set[Key]] = {}
        self.labels: dict[tuple[str, str, str], set[Key]] = {}

    def add(self, key: Key, labels: Labels) -> None:
        self.namespaces.setdefault(key[0], set()).add(key)
        for label, value in labels.items():
            self.labels.setdefault((key[0], label, str(value)), set()).add(key)

    def remove(self, key: Key, labels: Labels) -> None:
        _discard(self.namespaces, key[0], key)
        for label, value in labels.items():
            _discard(self.labels, (key[0], label, str(value)), key)

    def in_namespace(self, namespace: str) -> Iterable[Key]:
        return tuple(self.namespaces.get(namespace, ()))

    def candidates(self, namespace: str, selector: str) -> Iterable[Key]:
        """A superset of the keys in `namespace` that match `selector`: those carrying
        its rarest `key=value` label, or every key of the namespace if it has none."""
        pools: list[set[Key]] = [
            self.labels.get((namespace, *_equality(part)), set())
            for part in _split(selector)
            if _is_equality(part)
        ]
        if not pools:
            return self.in_namespace(namespace)
        rarest: set[Key] = min(pools, key=len)
        return tuple(rarest)


def _discard(table: dict[Any, set[Key]], at: Any, key: Key) -> None:
    keys = table.get(at)
    if keys is not None:
        keys.discard(key)
        if not keys:
            del table[at]
