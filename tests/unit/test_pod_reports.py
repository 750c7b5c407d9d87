"""Surefire's reports gathered into the uploaded file in operator mode
(core/pod_reports.py). Grouped by rule: every Maven suite container runs through the
gathering wrapper (one-pod Job, rerun shards, the listing split: one script), the other
runners' commands are unchanged, the script holds no tenant data. The real /bin/sh and
mvn run it in tests/e2e/test_pod_reports.py."""

from __future__ import annotations

import pytest

from greenloop.core.model import Suite
from greenloop.core.pod_command import SHELL, unwrapped, wrapped
from greenloop.core.pod_reports import gathering_command
from greenloop.core.shards import Shard
from greenloop.k8s.jobs import JUNIT_PATH
from tests.support.pod_commands import container_command

NASTY = '$(SECRET) it\'s `id` "q"'
MVN = ("mvn", "-B", "test", "{greenloop:select}", NASTY)


def command(
    runner: str, words: tuple[str, ...], shards: int, selection: tuple[str, ...] | None
) -> list[str]:
    suite = Suite(name="e2e", command=words, image="e2e:1", runner=runner, shards=shards)
    indexes = tuple(Shard(i, shards) for i in range(shards)) if shards > 1 else ()
    if selection is not None and indexes:
        indexes = tuple(Shard(i, shards, selection[i::shards]) for i in range(shards))
    return container_command(suite, indexes, selection=selection)


IDS = ("com.ex.A::a", "com.ex.B::b")


@pytest.mark.parametrize(
    ("shards", "selection", "inner"),
    [
        (1, None, None),  # one-pod whole run
        (1, IDS, None),  # one-pod rerun
        (2, None, "greenloop-classes.txt"),  # the listing split
        (2, IDS, "args-"),  # a rerun whose ids greenloop assigned per shard
    ],
)
def test_every_maven_container_gathers_its_reports_in_one_script(
    shards: int, selection: tuple[str, ...] | None, inner: str | None
) -> None:
    got = command("maven", MVN, shards, selection)
    assert got[:2] == [SHELL, "-c"] and got[3] == "greenloop-shard"
    script = got[2]
    assert 'gl_run "$$@"' in script and 'exec "$$@"' not in script
    assert script.count("gl_run() {") == 1 and script.count(SHELL) == 0  # no nested shell
    assert "target/surefire-reports/TEST-*.xml */target/surefire-reports/TEST-*.xml" in script
    assert f"gl_junit='{JUNIT_PATH}'" in script and "-newer" in script
    assert inner is None or inner in script
    # No tenant data in the script; its own $ doubled for Kubernetes.
    assert NASTY not in script and "SECRET" not in script and "com.ex" not in script
    assert "$" not in script.replace("$$", "")
    assert got[-1] == NASTY  # the suite's words: positional parameters, untouched


@pytest.mark.parametrize(
    ("runner", "words"),
    [("go", ("gotestsum", "--", "./...")), ("jest", ("jest",)), ("pytest", ("pytest",))],
)
def test_other_runners_commands_are_unchanged(runner: str, words: tuple[str, ...]) -> None:
    assert command(runner, words, 1, None) == list(words)
    assert gathering_command(words, runner, JUNIT_PATH) == words


def test_a_wrapper_unwraps_to_its_script_and_words() -> None:
    script = ('x="$HOME$$"', 'exec "$@"')
    assert unwrapped(wrapped(script, ("a", "$(B)"))) == (script, ("a", "$(B)"))
    assert unwrapped(("mvn", "test")) is None


def test_a_junit_path_with_a_quote_is_refused() -> None:
    with pytest.raises(ValueError, match="quote"):
        gathering_command(("mvn",), "maven", "/tmp/it's.xml")
