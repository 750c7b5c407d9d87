"""greenloop's pytest plugin: the runner contract (docs/design.md §4) for pytest.

- ``@pytest.mark.priority("P1")``: P1 (most critical) .. P9, default P5. Tests run in
  priority order (stable otherwise), and a test's dependencies run before it.
- ``@pytest.mark.depends_on("test_x", "other.py::test_y", "tests/a.py::test_z")``: when a
  dependency ran in this session and did not pass, the dependent is skipped with
  ``greenloop: depends on <node id>, which did not pass`` (greenloop's classifier keys on
  that text). A dependency that did not run in this session (deselected, e.g. it passed
  in an earlier greenloop iteration) does not cause a skip.
- ``GREENLOOP_SELECT``: a file of node ids, one a line: run only these.
- ``GREENLOOP_SHARD_INDEX`` / ``GREENLOOP_SHARD_COUNT`` (0-based index; docs/design.md
  §4.1): without a selection, run only this shard's part of the suite: the dependency
  groups ``greenloop.core.shards.split_collected`` deals to the index (in the order of
  their first node id's hash, each onto the shard holding the fewest tests), so every
  shard, collecting the same tests, runs a disjoint part of about the same size and a
  dependent runs beside its dependencies. A selection is already the shard's part.
  Such a shard writes what it dealt from as the suite-level JUnit property
  ``greenloop.collected`` (``<count>:<digest>``, ``shards.Collected``): greenloop
  refuses a run whose shards collected different suites (the same-collection rule).
- ``GREENLOOP_JUNIT_XML``: where to write JUnit XML unless ``--junitxml`` was given. Each
  testcase carries the properties ``greenloop.id``, ``greenloop.priority`` and (when it has
  any) ``greenloop.depends_on``.

Registered as the ``pytest11`` entry point ``greenloop``; it changes nothing for a suite
that uses neither the markers nor the environment variables.
"""

from __future__ import annotations

import heapq
import os
from collections.abc import Generator, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from greenloop.core.priorities import DEFAULT_PRIORITY, PRIORITIES  # not core.model: 50 ms
from greenloop.core.shards import (
    COLLECTED_PROPERTY,
    MAX_SHARDS,
    SHARD_COUNT_ENV,
    SHARD_INDEX_ENV,
    collected,
    split_collected,
)

SELECT_ENV = "GREENLOOP_SELECT"
JUNIT_XML_ENV = "GREENLOOP_JUNIT_XML"

PROP_ID = "greenloop.id"
PROP_PRIORITY = "greenloop.priority"
PROP_DEPENDS_ON = "greenloop.depends_on"

# The classifier matches ``greenloop: depends on (\S+),`` — keep this text in step with it.
DEPENDENT_SKIP = "greenloop: depends on {dependency}, which did not pass"


@dataclass
class _State:
    select_file: Path | None = None
    selected_ids: list[str] = field(default_factory=list)
    missing_ids: list[str] = field(default_factory=list)
    shard: tuple[int, int] | None = None  # (index, count) when this session is one shard
    # Resolved dependencies of every test that will run: node id -> dependency ids. A
    # dependency id may be the id of a parametrized function without its parameters,
    # which then stands for every parametrization.
    depends_on: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # Whether each test that finished in this session passed.
    passed: dict[str, bool] = field(default_factory=dict)
    header: str | None = None


_STATE = pytest.StashKey[_State]()


def _base_id(node_id: str) -> str:
    """The node id without its parametrization: ``a.py::t[1-2]`` -> ``a.py::t``."""
    head, sep, last = node_id.rpartition("::")
    return head + sep + last.split("[", 1)[0]


# ---------------------------------------------------------------------------
# Configuration


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    # tryfirst: junitxml's own pytest_configure reads config.option.xmlpath to decide
    # whether to write a report, so the path must be in place before it runs.
    config.addinivalue_line(
        "markers",
        "priority(level): greenloop priority P1 (most critical) .. P9; default P5. "
        "Tests run in priority order.",
    )
    config.addinivalue_line(
        "markers",
        "depends_on(*tests): greenloop dependencies (a test name in the same module, "
        "module.py::name, or a node id); skipped when a dependency ran and did not pass.",
    )
    state = _State()
    config.stash[_STATE] = state

    junit_xml = os.environ.get(JUNIT_XML_ENV, "").strip()
    if (
        junit_xml
        and hasattr(config.option, "xmlpath")
        and not config.option.xmlpath
        and not hasattr(config, "workerinput")  # xdist workers: the controller writes it
    ):
        config.option.xmlpath = junit_xml

    select = os.environ.get(SELECT_ENV, "").strip()
    if select:
        path = Path(select)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise pytest.UsageError(
                f"greenloop: {SELECT_ENV} names {select}, which does not exist"
            ) from None
        except OSError as exc:
            raise pytest.UsageError(
                f"greenloop: {SELECT_ENV} file {select} cannot be read: {exc.strerror}"
            ) from None
        state.select_file = path
        state.selected_ids = _parse_select(text)
    else:
        state.shard = _parse_shard(
            os.environ.get(SHARD_INDEX_ENV, "").strip(), os.environ.get(SHARD_COUNT_ENV, "").strip()
        )


def _parse_shard(index: str, count: str) -> tuple[int, int] | None:
    """(index, count) from the two variables; None when this session is the whole suite."""
    if not index and not count:
        return None
    if not count.isdigit() or not 1 <= int(count) <= MAX_SHARDS:
        raise pytest.UsageError(
            f"greenloop: {SHARD_COUNT_ENV} must be 1..{MAX_SHARDS}, got {count!r}"
        )
    if not index.isdigit() or not int(index) < int(count):
        raise pytest.UsageError(
            f"greenloop: {SHARD_INDEX_ENV} must be 0..{int(count) - 1}, got {index!r}"
        )
    return (int(index), int(count)) if int(count) > 1 else None


def _parse_select(text: str) -> list[str]:
    ids: list[str] = []
    seen: set[str] = set()
    for raw in text.splitlines():
        line = raw.strip()
        if line and not line.startswith("#") and line not in seen:
            seen.add(line)
            ids.append(line)
    return ids


# ---------------------------------------------------------------------------
# Collection: validate markers, select, order


@dataclass
class _Info:
    item: pytest.Item
    index: int
    priority: str
    depends_on: tuple[str, ...]


def _priority_of(item: pytest.Item) -> str:
    """The test's priority; raises ValueError with a user-facing message when invalid."""
    marker = item.get_closest_marker("priority")
    if marker is None:
        return DEFAULT_PRIORITY
    values = [*marker.args, *marker.kwargs.values()]
    if len(values) != 1:
        raise ValueError(f"@pytest.mark.priority takes one level (P1..P9), got {values!r}")
    value = values[0]
    # Accept an int (priority(1)) as a convenience; any other spelling is a mistake.
    level = f"P{value}" if isinstance(value, int) and not isinstance(value, bool) else value
    if not isinstance(level, str) or level.upper() not in PRIORITIES:
        raise ValueError(f"priority {value!r} is not one of P1..P9")
    return level.upper()


def _dependency_names(item: pytest.Item) -> list[str]:
    names: list[str] = []
    # Every depends_on marker counts (function, class, module), not only the closest.
    for marker in item.iter_markers("depends_on"):
        for arg in marker.args:
            if not isinstance(arg, str) or not arg.strip():
                raise ValueError(f"depends_on takes test names as strings, got {arg!r}")
            names.append(arg.strip())
    return names


def _relative_file(path: Path, rootpath: Path) -> str | None:
    try:
        return path.resolve().relative_to(rootpath.resolve()).as_posix()
    except ValueError:
        return None


def _has_test(obj: object, dotted: Sequence[str]) -> bool:
    for part in dotted:
        if not hasattr(obj, part):
            return False
        obj = getattr(obj, part)
    return True


class _Resolver:
    """Turns the names in ``depends_on`` into full node ids."""

    def __init__(self, items: Sequence[pytest.Item], rootpath: Path) -> None:
        self.rootpath = rootpath
        self.ids = {item.nodeid for item in items}
        self.base_ids = {_base_id(item.nodeid) for item in items}
        # One collected item per file, to look names up in its module object even when
        # only part of the file was collected (``pytest a.py::test_b``).
        self.module_of: dict[str, object] = {}
        for item in items:
            module = getattr(item, "module", None)
            if module is not None:
                self.module_of.setdefault(item.nodeid.split("::", 1)[0], module)

    def _known(self, node_id: str) -> bool:
        return node_id in self.ids or node_id in self.base_ids

    def resolve(self, item: pytest.Item, name: str) -> str | None:
        path, _, rest = name.partition("::")
        if not rest or not path.endswith(".py"):
            # "test_x" or "TestClass::test_x": a name in the dependent's own module.
            return self._resolve_local(item, name)
        candidates: list[str] = []
        sibling = _relative_file(item.path.parent / path, self.rootpath)
        if sibling is not None:
            candidates.append(sibling)
        if path not in candidates:
            candidates.append(path)
        for file in candidates:
            if self._known(f"{file}::{rest}"):
                return f"{file}::{rest}"
        for file in candidates:
            if not (self.rootpath / file).is_file():
                continue
            module = self.module_of.get(file)
            # A file that was not collected in this session cannot be checked without
            # importing it; trust the name, since that test cannot be skipped for here.
            if module is None or _has_test(module, rest.split("[", 1)[0].split("::")):
                return f"{file}::{rest}"
        return None

    def _resolve_local(self, item: pytest.Item, name: str) -> str | None:
        attrs = name.split("[", 1)[0].split("::")
        scopes: list[tuple[pytest.Collector | None, object]] = []
        cls_node = item.getparent(pytest.Class)
        if cls_node is not None:
            scopes.append((cls_node, cls_node.obj))
        module_node = item.getparent(pytest.Module)
        if module_node is not None:
            scopes.append((module_node, module_node.obj))
        for node, obj in scopes:
            assert node is not None
            candidate = f"{node.nodeid}::{name}"
            if self._known(candidate) or _has_test(obj, attrs):
                return candidate
        return None


def _order(infos: list[_Info], by_id: dict[str, list[_Info]]) -> list[_Info]:
    """Priority order, stable otherwise, with every dependency before its dependents.

    A dependency inherits the priority of its most critical dependent, so a P1 test that
    depends on a P5 test pulls that test forward instead of waiting for the P5 tier.
    """
    present = {info.index for info in infos}
    deps: dict[int, list[int]] = {}
    for info in infos:
        targets: list[int] = []
        for dep in info.depends_on:
            # A dependency that is not running in this session imposes no order.
            targets.extend(o.index for o in by_id.get(dep, ()) if o.index in present)
        deps[info.index] = targets
    dependents: dict[int, list[int]] = {info.index: [] for info in infos}
    for index, targets in deps.items():
        for target in targets:
            dependents[target].append(index)

    rank = {info.index: int(info.priority[1:]) for info in infos}
    # Propagate the most critical rank down dependency chains (graph is acyclic here).
    for info in sorted(infos, key=lambda i: rank[i.index]):
        stack = [info.index]
        while stack:
            current = stack.pop()
            for target in deps[current]:
                if rank[target] > rank[current]:
                    rank[target] = rank[current]
                    stack.append(target)

    waiting = {index: len(set(targets)) for index, targets in deps.items()}
    ready = [(rank[i], i) for i, count in waiting.items() if count == 0]
    heapq.heapify(ready)
    by_index = {info.index: info for info in infos}
    ordered: list[_Info] = []
    while ready:
        _, index = heapq.heappop(ready)
        ordered.append(by_index[index])
        for dependent in set(dependents[index]):
            waiting[dependent] -= 1
            if waiting[dependent] == 0:
                heapq.heappush(ready, (rank[dependent], dependent))
    return ordered


def _find_cycle(infos: Sequence[_Info], by_id: dict[str, list[_Info]]) -> list[_Info] | None:
    """One dependency cycle among ``infos``, as the list of tests on it, or None."""
    on_path: dict[int, int] = {}
    done: set[int] = set()
    by_index = {info.index: info for info in infos}

    def edges(info: _Info) -> Iterable[_Info]:
        for dep in info.depends_on:
            yield from by_id.get(dep, ())

    for start in infos:
        if start.index in done:
            continue
        path: list[_Info] = [start]
        iterators = [iter(edges(start))]
        on_path[start.index] = 0
        while iterators:
            nxt = next(iterators[-1], None)
            if nxt is None:
                finished = path.pop()
                iterators.pop()
                del on_path[finished.index]
                done.add(finished.index)
            elif nxt.index in on_path:
                return [by_index[i.index] for i in path[on_path[nxt.index] :]]
            elif nxt.index not in done:
                on_path[nxt.index] = len(path)
                path.append(nxt)
                iterators.append(iter(edges(nxt)))
    return None


def _report_error(config: pytest.Config, item: pytest.Item, message: str) -> None:
    # A collection error (not a usage error) so that the run still writes JUnit XML with
    # an <error> for this test: greenloop then shows the message as a TestCodeError
    # instead of a suite that produced no results.
    report = pytest.CollectReport(item.nodeid, "failed", f"greenloop: {message}", None)
    config.hook.pytest_collectreport(report=report)


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(
    session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
) -> None:
    # trylast: order the final set, after -k/-m/--deselect have removed what they remove.
    state = config.stash[_STATE]
    resolver = _Resolver(items, config.rootpath)
    infos: list[_Info] = []
    errors: list[tuple[pytest.Item, str]] = []
    for index, item in enumerate(items):
        try:
            priority = _priority_of(item)
            names = _dependency_names(item)
        except ValueError as exc:
            errors.append((item, f"{item.nodeid}: {exc}"))
            continue
        resolved: list[str] = []
        unknown: list[str] = []
        for name in names:
            node_id = resolver.resolve(item, name)
            if node_id is None:
                unknown.append(name)
            elif node_id not in resolved:
                resolved.append(node_id)
        if unknown:
            listed = ", ".join(repr(n) for n in unknown)
            errors.append((item, f"{item.nodeid}: depends_on names unknown test(s): {listed}"))
            continue
        infos.append(_Info(item, index, priority, tuple(resolved)))

    by_id: dict[str, list[_Info]] = {}
    for info in infos:
        by_id.setdefault(info.item.nodeid, []).append(info)
        base = _base_id(info.item.nodeid)
        if base != info.item.nodeid:
            by_id.setdefault(base, []).append(info)

    while (cycle := _find_cycle(infos, by_id)) is not None:
        chain = " -> ".join(i.item.nodeid for i in [*cycle, cycle[0]])
        for info in cycle:
            errors.append((info.item, f"{info.item.nodeid}: dependency cycle: {chain}"))
        on_cycle = {info.index for info in cycle}
        infos = [info for info in infos if info.index not in on_cycle]
        by_id = {k: [i for i in v if i.index not in on_cycle] for k, v in by_id.items()}

    # Every shard reports these too (and stops, as an unsharded run does): the merge keeps
    # an error every shard reported once (docs/design.md §4.1).
    for item, message in errors:
        _report_error(config, item, message)

    for info in infos:
        info.item.user_properties.append((PROP_ID, info.item.nodeid))
        info.item.user_properties.append((PROP_PRIORITY, info.priority))
        if info.depends_on:
            info.item.user_properties.append((PROP_DEPENDS_ON, ",".join(info.depends_on)))

    total = len(infos)
    if state.select_file is not None:
        infos = _apply_select(config, state, infos)
    elif state.shard is not None:
        infos = _apply_shard(config, state.shard, infos, by_id)

    ordered = _order(infos, by_id)
    items[:] = [info.item for info in ordered]
    state.depends_on = {info.item.nodeid: info.depends_on for info in ordered}
    state.header = _header(state, ordered, total)


def _apply_select(config: pytest.Config, state: _State, infos: list[_Info]) -> list[_Info]:
    wanted = set(state.selected_ids)
    keep: list[_Info] = []
    dropped: list[pytest.Item] = []
    matched: set[str] = set()
    for info in infos:
        node_id = info.item.nodeid
        # The parametrization-free id selects every parametrization of the function.
        key = node_id if node_id in wanted else _base_id(node_id)
        if key in wanted:
            matched.add(key)
            keep.append(info)
        else:
            dropped.append(info.item)
    state.missing_ids = [i for i in state.selected_ids if i not in matched]
    if dropped:
        # Through the hook, so pytest reports "N deselected" as for -k.
        config.hook.pytest_deselected(items=dropped)
    return keep


def _apply_shard(
    config: pytest.Config,
    shard: tuple[int, int],
    infos: list[_Info],
    by_id: dict[str, list[_Info]],
) -> list[_Info]:
    """This shard's part: the tests whose dependency group (the tests linked by
    depends_on, either way; keyed by its smallest node id) the balanced split
    (``shards.split_collected``: hash order, each onto the emptiest shard) deals to its
    index."""
    index, count = shard
    _record_collected(config, infos)
    parent = {info.index: info.index for info in infos}

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for info in infos:
        for dep in info.depends_on:
            for other in by_id.get(dep, ()):
                if other.index in parent:
                    a, b = find(info.index), find(other.index)
                    parent[max(a, b)] = min(a, b)
    key: dict[int, str] = {}
    size: dict[int, int] = {}
    for info in infos:
        root = find(info.index)
        key[root] = min(key.get(root, info.item.nodeid), info.item.nodeid)
        size[root] = size.get(root, 0) + 1
    where = split_collected({key[root]: n for root, n in size.items()}, count)
    keep = [info for info in infos if where[key[find(info.index)]] == index]
    kept = {info.index for info in keep}
    dropped = [info.item for info in infos if info.index not in kept]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
    return keep


def _record_collected(config: pytest.Config, infos: Sequence[_Info]) -> None:
    """The same-collection rule (``shards.Collected``): the suite this shard deals from,
    as a suite-level property of the JUnit XML pytest writes (as the
    ``record_testsuite_property`` fixture does, without a test asking for it). With no
    report written here (no --junitxml, an xdist worker) there is nothing to say it in,
    and greenloop does not check it."""
    try:  # pytest's own (private) key; already loaded: junitxml is a default plugin
        from _pytest.junitxml import xml_key
    except ImportError:  # a pytest that moved it: the run is only not checked
        return
    xml = config.stash.get(xml_key, None)
    if xml is not None:
        xml.add_global_property(
            COLLECTED_PROPERTY, collected(i.item.nodeid for i in infos).describe()
        )


def _header(state: _State, ordered: Sequence[_Info], total: int) -> str | None:
    uses_markers = any(info.priority != DEFAULT_PRIORITY or info.depends_on for info in ordered)
    driven = (
        state.select_file is not None
        or state.shard is not None
        or bool(os.environ.get(JUNIT_XML_ENV))
    )
    if not (uses_markers or driven):
        return None
    counts: dict[str, int] = {}
    for info in ordered:
        counts[info.priority] = counts.get(info.priority, 0) + 1
    tiers = " ".join(f"{p}:{counts[p]}" for p in PRIORITIES if p in counts) or "none"
    if state.select_file is not None:
        scope = f"{len(ordered)} of {total} tests selected by {SELECT_ENV}"
    elif state.shard is not None:
        scope = f"{len(ordered)} of {total} tests in shard {state.shard[0] + 1}/{state.shard[1]}"
    else:
        scope = f"{len(ordered)} tests"
    return f"greenloop: {scope}; priority order {tiers}"


def pytest_report_collectionfinish(config: pytest.Config) -> str | list[str]:
    header = config.stash[_STATE].header
    return [header] if header else []


# ---------------------------------------------------------------------------
# Running: skip dependents of tests that did not pass


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    state = item.config.stash[_STATE]
    for dependency in state.depends_on.get(item.nodeid, ()):
        for node_id, passed in state.passed.items():
            # Only tests that ran in this session count: a dependency that was not run
            # (deselected because it passed in an earlier iteration) says nothing.
            if not passed and (node_id == dependency or _base_id(node_id) == dependency):
                # Reported at the test's own location (as skip markers are), not here.
                raise pytest.skip.Exception(
                    DEPENDENT_SKIP.format(dependency=node_id), _use_item_location=True
                )


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    passed = item.config.stash[_STATE].passed
    if report.failed or (report.skipped and report.when != "teardown"):
        passed[item.nodeid] = False
    elif report.when == "call" and report.passed:
        # setdefault: a test whose setup failed or skipped already said False.
        passed.setdefault(item.nodeid, True)
    return report


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, config: pytest.Config
) -> None:
    missing = config.stash[_STATE].missing_ids
    if missing:
        more = len(missing) - 5
        shown = ", ".join(missing[:5]) + (f", … ({more} more)" if more > 0 else "")
        noun = "id was" if len(missing) == 1 else "ids were"
        terminalreporter.write_line(
            f"greenloop: {len(missing)} selected {noun} not collected: {shown}", yellow=True
        )
