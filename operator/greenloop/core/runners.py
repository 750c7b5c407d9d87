"""How each test runner names its tests in JUnit XML, and how to make it run only some.

greenloop reruns only what failed. A runner that reads ``$GREENLOOP_SELECT`` (the pytest
plugin) needs nothing more; for the others the selection has to become that runner's own
arguments, which is easy to get subtly wrong (a Jest ``-t`` without anchors runs more than
asked, Go's ``-run`` splits a pattern at ``/``, Jest reports deselected tests as skipped).
This module knows, for each named runner, how a test id is formed from its JUnit report
(``classname::name``, see docs/runners.md) and turns ids back into arguments.

A suite's command uses two placeholders, chosen so they cannot be a real argument of any
runner or be expanded by a shell, Helm (``{{ }}``) or Kubernetes (``$(VAR)``) first:

- an argument that is exactly ``{greenloop:select}`` becomes the selection's arguments,
  none when the whole suite runs; ``{greenloop:select|ARGS}`` becomes ARGS (split on
  spaces) when the whole suite runs, e.g. ``{greenloop:select|./...}`` for Go packages;
- ``{greenloop:junit}`` anywhere in an argument becomes the JUnit XML path.

Pure: no I/O.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence

__all__ = [
    "JUNIT_PLACEHOLDER",
    "RUNNERS",
    "SELECT_PLACEHOLDER",
    "expand_command",
    "regex_literal",
    "rerun_unit",
    "runner_env",
    "select_args",
    "selects_by_args",
    "shell_words",
    "uses_placeholder",
]

RUNNERS = ("pytest", "jest", "vitest", "go", "maven", "playwright", "generic")
SELECT_PLACEHOLDER = "{greenloop:select}"
_SELECT_WITH_DEFAULT = "{greenloop:select|"
JUNIT_PLACEHOLDER = "{greenloop:junit}"

# The characters that mean something in JavaScript and RE2 (Go) regular expressions.
# Playwright's separator of titles in its JUnit names (U+203A).
_PLAYWRIGHT_SEPARATOR = " \u203a "
_REGEX_SPECIAL = frozenset("\\^$.|?*+()[]{}")


def regex_literal(text: str) -> str:
    """A literal for JavaScript and Go regular expressions alike (Python's re.escape
    escapes spaces and more, which JavaScript's unicode mode rejects)."""
    return "".join("\\" + c if c in _REGEX_SPECIAL else c for c in text)


def _split(test_id: str) -> tuple[str, str]:
    """(classname, name) of an id formed as ``classname::name``. A runner whose classname
    repeats the name (jest-junit's default) gives ``X::X``: then the classname is X too."""
    half = (len(test_id) - 2) // 2
    if (
        len(test_id) % 2 == 0
        and test_id[half : half + 2] == "::"
        and test_id[:half] == test_id[half + 2 :]
    ):
        return test_id[:half], test_id[:half]
    if "::" in test_id:
        classname, name = test_id.split("::", 1)
        return classname, name
    return "", test_id


def _unique(items: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(items))


def _alternation(literals: Sequence[str]) -> str:
    escaped = [regex_literal(x) for x in _unique(literals)]
    return escaped[0] if len(escaped) == 1 else "(?:" + "|".join(escaped) + ")"


_SOURCE_SUFFIXES = (".js", ".cjs", ".mjs", ".jsx", ".ts", ".cts", ".mts", ".tsx")


def _jest(test_ids: Sequence[str]) -> tuple[str, ...]:
    # jest-junit's name (titleTemplate "{classname} {title}", its default) is the full
    # name -t matches: the describe titles and the test's, joined by spaces.
    pairs = [_split(t) for t in test_ids]
    args = ["-t", "^" + _alternation([name for _, name in pairs]) + "$"]
    files = [cls for cls, name in pairs if cls != name]
    if files and all(f.endswith(_SOURCE_SUFFIXES) for f in files):
        # classNameTemplate "{filepath}": run only those files (positional path patterns).
        args += ["--", *(regex_literal(f) + "$" for f in _unique(files))]
    return tuple(args)


def _vitest(test_ids: Sequence[str]) -> tuple[str, ...]:
    # Vitest's JUnit name joins describe and test titles with " > "; -t matches them
    # joined with spaces. The classname is the file, which filters (as a substring).
    pairs = [_split(t) for t in test_ids]
    names = [" ".join(name.split(" > ")) for _, name in pairs]
    files = _unique([cls for cls, _ in pairs if cls])
    return ("-t", "^" + _alternation(names) + "$", *files)


def _playwright(test_ids: Sequence[str]) -> tuple[str, ...]:
    # Playwright's JUnit name joins describe and test titles with U+203A; --grep matches
    # the file and the titles joined with spaces (after the project name, if any).
    paths = []
    for test_id in test_ids:
        file, name = _split(test_id)
        paths.append(" ".join(([file] if file else []) + name.split(_PLAYWRIGHT_SEPARATOR)))
    # Tags given as test options follow the titles: " @smoke".
    alternatives = _unique(["(?:^| )" + regex_literal(p) + "(?:$| @)" for p in paths])
    pattern = alternatives[0] if len(alternatives) == 1 else "(?:" + "|".join(alternatives) + ")"
    return ("--grep", pattern)


def _go(test_ids: Sequence[str]) -> tuple[str, ...]:
    # gotestsum/go-junit-report: classname is the package import path, name the test
    # (subtests as TestX/sub). -run takes top-level names: a failing subtest reruns with
    # its parent and siblings, which Go cannot run apart reliably (shared setup).
    # -count=1: Go's test cache would otherwise replay the failure without running it.
    pairs = [_split(t) for t in test_ids]
    tops = [name.split("/", 1)[0] for _, name in pairs]
    packages = _unique([cls for cls, _ in pairs if cls])
    return ("-count=1", "-run", "^" + _alternation(tops) + "$", *packages)


def _maven(test_ids: Sequence[str]) -> tuple[str, ...]:
    # Surefire: classname is the test class's full name, name the method ("addsItems",
    # "addsItems()" or "addsItems(int)[1]" for parameterized ones: all the method's).
    methods: dict[str, list[str]] = {}
    for test_id in test_ids:
        cls, name = _split(test_id)
        method = name.split("(", 1)[0].split("[", 1)[0].strip()
        methods.setdefault(cls, [])
        if method and method not in methods[cls]:
            methods[cls].append(method)
    spec = ",".join(f"{cls}#{'+'.join(ms)}" if ms else cls for cls, ms in methods.items())
    return (f"-Dtest={spec}", "-Dsurefire.failIfNoSpecifiedTests=false")


_ADAPTERS = {
    "jest": _jest,
    "vitest": _vitest,
    "playwright": _playwright,
    "go": _go,
    "maven": _maven,
}


def rerun_unit(runner: str, test_id: str) -> str:
    """The smallest part of a suite the runner's selection runs alone that holds this
    test: Go reruns a top-level test with all its subtests (``-run`` takes top-level
    names) and Surefire a method with all its parameterizations; the others run exactly
    the ids selected. Tests with the same unit must share a shard, or each shard would run
    and report the others' (docs/design.md §4.1)."""
    if runner == "go":
        cls, name = _split(test_id)
        return f"{cls}::{name.split('/', 1)[0]}"
    if runner == "maven":
        cls, name = _split(test_id)
        return f"{cls}::{name.split('(', 1)[0].split('[', 1)[0].strip()}"
    return test_id


def select_args(runner: str, test_ids: Sequence[str] | None) -> tuple[str, ...]:
    """The runner's own arguments that run only ``test_ids`` (None: the whole suite, no
    arguments). pytest and generic suites select through $GREENLOOP_SELECT instead."""
    if test_ids is None or not test_ids:
        return ()
    adapter = _ADAPTERS.get(runner)
    return adapter(test_ids) if adapter is not None else ()


def selects_by_args(runner: str) -> bool:
    """Whether the runner is told its selection as arguments of its own (the others read
    the $GREENLOOP_SELECT file)."""
    return runner in _ADAPTERS


def uses_placeholder(arg: str) -> bool:
    return arg == SELECT_PLACEHOLDER or (arg.startswith(_SELECT_WITH_DEFAULT) and arg.endswith("}"))


def expand_command(
    command: Sequence[str], select: Sequence[str] | None, junit_path: str
) -> tuple[str, ...]:
    """The command with its placeholders filled in. ``select`` is None when the whole
    suite runs."""
    out: list[str] = []
    for arg in command:
        if uses_placeholder(arg):
            if select is not None:
                out.extend(select)
            elif arg != SELECT_PLACEHOLDER:
                out.extend(arg[len(_SELECT_WITH_DEFAULT) : -1].split())
            continue
        out.append(arg.replace(JUNIT_PLACEHOLDER, junit_path))
    return tuple(out)


def runner_env(runner: str, junit_path: str) -> Mapping[str, str]:
    """Where the runner's own JUnit reporter writes, when it reads that from the
    environment: $GREENLOOP_JUNIT_XML, so the command needs no wrapper. A suite's own
    ``env`` overrides these."""
    if runner == "jest":
        return {"JEST_JUNIT_OUTPUT_FILE": junit_path}
    if runner == "playwright":
        return {"PLAYWRIGHT_JUNIT_OUTPUT_FILE": junit_path}
    return {}


def shell_words(args: Sequence[str]) -> str:
    """$GREENLOOP_SELECT_ARGS: the arguments quoted for a POSIX shell
    (``eval "set -- $GREENLOOP_SELECT_ARGS"`` gets them back)."""
    return shlex.join(args)


# Runners whose reporter writes one file per class to a folder of its own choosing (no
# property moves Surefire's): greenloop reads the files written during the run from here,
# relative to the suite's working directory, when $GREENLOOP_JUNIT_XML was not written.
REPORT_GLOBS: Mapping[str, tuple[str, ...]] = {
    "maven": ("target/surefire-reports/TEST-*.xml", "*/target/surefire-reports/TEST-*.xml"),
}


def merge_reports(parts: Sequence[bytes]) -> bytes:
    """Several JUnit XML documents as one ``<testsuites>`` document."""
    body = []
    for part in parts:
        text = part.lstrip()
        if text.startswith(b"<?xml"):
            end = text.find(b"?>")
            text = text[end + 2 :] if end >= 0 else text
        body.append(text)
    return (
        b'<?xml version="1.0" encoding="UTF-8"?>\n<testsuites>\n'
        + b"\n".join(body)
        + (b"\n</testsuites>\n")
    )
