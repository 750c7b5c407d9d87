"""A whole-suite run of a sharded Go or Maven suite in operator mode, split from a
listing of its tests made in each pod (docs/design.md §4.1, docs/runners.md "In operator
mode").

The operator cannot see the suite image's files, and a listing pod of its own would cost
a pod start. So on a whole-suite run (no ids known yet) the Indexed Job's one command is
a POSIX ``/bin/sh`` wrapper (:func:`listing_wrapper_command`) that lists the tests in the
pod, as local mode lists them (``core/listing``), and picks this index's share:

- **Go**: ``go test -list '.*'`` of the packages the command names (``go_list_args``),
  the names matching ``^(Test|Fuzz|Example)\\w*$`` (ASCII), ``LC_ALL=C sort -u``; index
  ``i >= 1`` runs the names whose **slot** is ``i`` (a hash of the name alone, mod
  ``n``: :data:`_SLOT`) as ``-count=1 -run '^(?:A|B)$'`` where ``{greenloop:select}``
  stands; index 0 runs everything the others were not given (``-count=1 -skip '^(?:the
  others)$'``), so a test the listing missed (a build tag it was not given, say) still
  runs, once, in shard 0 (the **honesty rule** of local mode: a listing can lose speed,
  never a test).
- **Maven**: the test classes from the files (``**/src/test/java/**`` matching
  Surefire's default includes ``Test*``, ``*Test``, ``*Tests``, ``*TestCase``), sorted;
  index ``i >= 1`` runs the classes whose slot is ``i`` through
  ``-Dsurefire.includesFile``, index 0 all the others' complement through
  ``-Dsurefire.excludesFile`` (plus Surefire's default exclude ``**/*$*``, which an
  excludes file replaces). Each pod has its own ``target/``.

**Blockers.** Those the command shows are decided here, at Job creation
(:func:`command_blocker`: no ``{greenloop:select}``, a Maven command that picks its
classes itself): the whole-suite run is one shard, and the report says why
(:func:`not_split_note`). Those only the image shows are found in the pod: the listing
failed or found nothing, a Go older than 1.20 (no ``-skip``), a pattern longer than one
argument may be, a ``pom.xml`` (or ``.mvn/maven.config``, ``MAVEN_OPTS``) that sets
Surefire's ``test``, ``includes`` or their files. Then the **in-pod fallback**: index 0
runs the whole suite, exactly the unsharded command, and every other index runs nothing
and writes an empty JUnit report whose ``greenloop.note`` property says why
(:data:`NOTE_PROPERTY`; the report's shard line shows it). Only reasons every pod shares
because they come from the image fall back so: a listing that succeeded and found no
test, the Go version, the pattern's length, the POM, ``maven.config``, ``MAVEN_OPTS``.

**The listing-failure rule** (Go). A listing that fails may fail in one pod and not in
another (a module download, the compiler killed for memory): the pods that listed then
split and leave a share to the pod that did not, and an idle index would let those tests
run nowhere, all green. So:

- a listing that exits non-zero (or prints a ``FAIL`` line) but still lists names (a
  package whose tests do not build: ``FAIL <pkg> [build failed]``, the others listed) is
  split on those names; index 0's ``-skip`` runs everything else, the broken package
  among it (``go test`` builds every package it is given, so every index reports its
  build failure; the merge keeps a failure every shard reports once);
- a listing that failed and listed nothing, or was stopped by a signal: index 0 runs the
  whole suite; every other index exits 125 without a report (its shard a RunnerError,
  its tests not run, never a pass), its last log line ``greenloop: the test listing
  failed in this pod: <the listing's last lines>``.

A name's slot depends on the name alone, not on what else its pod listed: when a pod
lists fewer names than the others (a package it failed to fetch), every name it did list
still lands where the others put it. What remains: a name only index 0 listed and whose
slot is another index's is skipped by index 0 and run nowhere; that index's own run
builds the package it could not list, so its failure is reported, not a pass.

As for ``core/pod_command``: the script holds no tenant data; the listing's packages and
the suite's words are its positional parameters, and the script's own ``$`` are doubled
(``kube_literal``). Only ``sh`` builtins, ``awk``, ``sort`` and (Maven) ``find``, which
golang, maven and busybox images have.

Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Sequence

from greenloop.core.junit import NOTE_PROPERTY
from greenloop.core.listing import (
    GO_DEFAULT_PACKAGES,
    GO_MIN_SKIP,
    MAX_PATTERN_CHARS,
    go_packages,
    takes_args,
)
from greenloop.core.pod_command import rotate, wrapped
from greenloop.core.runners import SELECT_PLACEHOLDER, expand_command, uses_placeholder
from greenloop.core.shards import SHARD_COUNT_ENV, SHARD_INDEX_ENV

__all__ = [
    "NOTE_PROPERTY",
    "command_blocker",
    "listing_wrapper_command",
    "lists_in_pod",
    "not_split_note",
]

_RUNNERS = frozenset({"go", "maven"})
# Surefire settings on the command line that decide the classes a shard's file cannot.
_MAVEN_SETS = ("test=", "surefire.includesFile", "surefire.excludesFile")
# Exit codes of the script's awk steps (distinct from awk's own 1 and 2).
_NONE_LISTED = 5
_TOO_LONG = 6
_NONE_MINE = 7
# An index whose listing failed in its pod: no report (a RunnerError for its shard).
_LISTING_FAILED = 125


def lists_in_pod(runner: str) -> bool:
    """Whether a sharded whole-suite run of this runner lists its tests in each pod."""
    return runner in _RUNNERS


def _maven_chooses(command: Sequence[str]) -> bool:
    after_define = False
    for arg in command:
        if arg.startswith(tuple(f"-D{s}" for s in _MAVEN_SETS)):
            return True
        if after_define and arg.startswith(_MAVEN_SETS):
            return True
        after_define = arg in ("-D", "--define")
    return False


def command_blocker(runner: str, command: Sequence[str]) -> str | None:
    """Why the command alone keeps a whole-suite run of this Go or Maven suite from being
    split in the pod, or None (also for the other runners)."""
    if not lists_in_pod(runner):
        return None
    if not takes_args(command):
        what = "-run" if runner == "go" else "classes"
        return f"no {SELECT_PLACEHOLDER} in its command for each shard's {what}"
    if runner == "maven" and _maven_chooses(command):
        return "its command chooses the test classes itself (-Dtest, includesFile or excludesFile)"
    return None


def not_split_note(runner: str, command: Sequence[str], shards: int) -> str | None:
    """The report's line for a sharded Go or Maven suite whose whole-suite runs stay one
    shard because of its command (None when they split, or the suite has one shard)."""
    why = command_blocker(runner, command) if shards > 1 else None
    return None if why is None else f"not split: {why}; one shard"


def _positions(command: Sequence[str]) -> list[int]:
    """Where each ``{greenloop:select}`` stands in the whole-suite command (the number of
    words before it, its default words counted as the whole run expands them)."""
    at: list[int] = []
    count = 0
    for arg in command:
        if uses_placeholder(arg):
            at.append(count)
            count += len(expand_command((arg,), None, ""))
        else:
            count += 1
    return at


def _splice(at: Sequence[int], total: int, add: str) -> list[str]:
    """Shell that puts ``add`` (a ``set -- "$@" ...`` line) at each placeholder of the
    whole-suite command held in "$@" (moving each stretch of words to the end in turn)."""
    lines: list[str] = []
    before = 0
    for position in at:
        if position > before:
            lines.append(rotate(position - before))
        lines.append(add)
        before = position
    if total > before:
        lines.append(rotate(total - before))
    return lines


def _empty_report() -> list[str]:
    """``gl_idle NOTE``: this index runs nothing; an empty report carries the note."""
    return [
        "gl_idle() {",
        '  echo "greenloop: shard $((gl_i + 1)) runs no test: $1" >&2',
        '  GL_NOTE="$1" awk \'BEGIN { n = ENVIRON["GL_NOTE"]; gsub(/&/, "\\\\&amp;", n);'
        ' gsub(/</, "\\\\&lt;", n); gsub(/>/, "\\\\&gt;", n); gsub(/"/, "\\\\&quot;", n);'
        ' print "<?xml version=\\"1.0\\" encoding=\\"UTF-8\\"?>";'
        ' print "<testsuites><testsuite name=\\"greenloop\\" tests=\\"0\\"><properties>'
        f'<property name=\\"{NOTE_PROPERTY}\\" value=\\"" n "\\"/></properties></testsuite>'
        '</testsuites>" }\' > "$gl_junit"',
        "  exit 0",
        "}",
    ]


def _prologue(junit_path: str) -> list[str]:
    if "'" in junit_path:
        raise ValueError(f"a JUnit path with a quote: {junit_path!r}")
    return [
        f'gl_i="${{{SHARD_INDEX_ENV}:-0}}"; gl_n="${{{SHARD_COUNT_ENV}:-1}}"',
        f"gl_junit='{junit_path}'",
        'gl_dir="${gl_junit%/*}"',
        "gl_why=",
        *_empty_report(),
    ]


def _fallback(words: int) -> list[str]:
    """The in-pod fallback: index 0 runs the whole suite, the others nothing. ``words``:
    the listing's own positional parameters, dropped first."""
    drop = [f"shift {words}"] if words else []
    return [
        *drop,
        'if [ -n "$gl_why" ]; then',
        '  if [ "$gl_i" -eq 0 ]; then',
        '    echo "greenloop: not split in the pod: $gl_why; shard 1 runs the whole suite" >&2',
        '    exec "$@"',
        "  fi",
        '  gl_idle "not split in the pod: $gl_why; shard 1 ran the whole suite"',
        "fi",
    ]


# A name's shard (the slot rule): a hash of the name alone, mod n (awk has no ord(): a table
# of the ASCII codes). Never its position in the pod's listing: a pod whose listing missed
# some names (a module it failed to fetch) would shift every later name's share, and some
# would run in no pod; by its own hash, a name the others listed lands where theirs did.
_SLOT = (
    'BEGIN { for (c = 32; c < 127; c++) ord[sprintf("%c", c)] = c }'
    " function slot(s,  h, j) { h = 0;"
    " for (j = 1; j <= length(s); j++) h = (h * 31 + ord[substr(s, j, 1)]) % 1000003;"
    " return h % n }"
)
# go version's "go1.22.1": whether that Go has -skip.
_GO_VERSION = (
    '{ if (match($0, /go[0-9]+\\.[0-9]+/)) { split(substr($0, RSTART + 2, RLENGTH - 2), v, ".");'
    f" print (v[1] + 0 > {GO_MIN_SKIP[0]} || (v[1] + 0 == {GO_MIN_SKIP[0]} &&"
    f' v[2] + 0 >= {GO_MIN_SKIP[1]})) ? "yes" : "no"; exit }} }}'
)
# go test -list's output (core/listing.parse_go_listing): the names before each package's
# "ok"/"?" line; a FAIL line, or names with no package line after them, is a failure. The
# names a failing package printed before its FAIL line are dropped with it.
_GO_NAMES = (
    '$1 == "FAIL" || substr($1, 1, 3) == "---" { bad = 1; h = 0 }'
    " NF == 1 && $1 ~ /^(Test|Fuzz|Example)[A-Za-z0-9_]*$/ { held[++h] = $1; next }"
    ' ($1 == "ok" || $1 == "?") && NF >= 2 { for (j = 1; j <= h; j++) print held[j]; h = 0 }'
    " END { if (bad || h) exit 3 }"
)
# The sorted names: this index's pattern (index 0: the others', for -skip); the longest
# pattern (shard 0's) decides for every index whether the names fit one argument.
_GO_PICK = (
    _SLOT + ' { k = slot($0); if (k == i) mine = mine (mine == "" ? "" : "|") $0;'
    ' if (k != 0) others = others (others == "" ? "" : "|") $0 }'
    f" END {{ if (NR == 0) exit {_NONE_LISTED};"
    f" if (length(others) + 6 > {MAX_PATTERN_CHARS}) exit {_TOO_LONG};"
    ' p = (i == 0) ? others : mine; if (p != "") print "^(?:" p ")$" }'
)


# The last three non-empty lines of the listing's output, on one line (the pod log's
# last lines are the RunnerError's evidence, k8s/suites.py).
_TAIL = (
    'NF { t[++n] = $0 } END { s = ""; for (j = (n > 3) ? n - 2 : 1; j <= n; j++)'
    ' s = s (s == "" ? "" : " | ") t[j]; print (s == "") ? "no output" : s }'
)


def _go_listing(listed: int) -> list[str]:
    """The listing and the **listing-failure rule** (see the module's docstring): sets
    ``gl_failed`` when the listing failed and gave no name to split on."""
    keep_listing = (
        '( gl_c=$#; gl_k=0; for gl_w do gl_k=$((gl_k + 1)); if [ "$gl_k" -le '
        f'{listed} ]; then set -- "$@" "$gl_w"; fi; done; shift "$gl_c";'
        ' exec go test -list \'.*\' "$@" ) > "$gl_dir/greenloop-list.txt"'
        ' 2> "$gl_dir/greenloop-list-err.txt"'
    )
    return [
        "gl_failed=",
        'if [ -z "$gl_why" ]; then',
        f"  {keep_listing}",
        "  gl_rc=$?",
        '  awk 1 "$gl_dir/greenloop-list-err.txt" >&2',
        f'  awk \'{_GO_NAMES}\' "$gl_dir/greenloop-list.txt" > "$gl_dir/greenloop-names.txt"',
        "  gl_bad=$?",
        '  if [ "$gl_rc" -ne 0 ] || [ "$gl_bad" -ne 0 ]; then',
        '    awk 1 "$gl_dir/greenloop-list.txt" >&2',
        '    if [ "$gl_rc" -le 128 ] && [ -s "$gl_dir/greenloop-names.txt" ]; then',
        '      echo "greenloop: the test listing reported a failure (exit $gl_rc); split on the'
        ' names it listed: what it could not list runs in shard 1" >&2',
        "    else",
        f"      gl_tail=$(awk '{_TAIL}' \"$gl_dir/greenloop-list.txt\""
        ' "$gl_dir/greenloop-list-err.txt")',
        '      gl_failed="the test listing failed in this pod: $gl_tail (exit $gl_rc)"',
        "    fi",
        "  fi",
        "fi",
    ]


def _listing_failed() -> list[str]:
    """A listing that failed in this pod may have worked in the others, which then split
    and leave this index's share to it: index 0 runs the whole suite, any other index
    ends without a report (its shard a RunnerError, its tests not run; never a pass)."""
    return [
        'if [ -n "$gl_failed" ]; then',
        '  if [ "$gl_i" -eq 0 ]; then',
        '    echo "greenloop: $gl_failed; shard 1 runs the whole suite" >&2',
        '    exec "$@"',
        "  fi",
        '  echo "greenloop: shard $((gl_i + 1)) ends without results: its tests are not run" >&2',
        '  echo "greenloop: $gl_failed" >&2',
        f"  exit {_LISTING_FAILED}",
        "fi",
    ]


def _go_script(listed: int, at: Sequence[int], total: int) -> list[str]:
    return [
        'gl_v=$(go version 2>&1) || gl_why="go version failed: $gl_v"',
        'if [ -z "$gl_why" ]; then',
        f"  case $(printf '%s\\n' \"$gl_v\" | awk '{_GO_VERSION}') in",
        "    yes) ;;",
        f'    no) gl_why="$gl_v has no -skip (Go {GO_MIN_SKIP[0]}.{GO_MIN_SKIP[1]}+ needed)" ;;',
        '    *) gl_why="go version did not say which Go" ;;',
        "  esac",
        "fi",
        *_go_listing(listed),
        'if [ -z "$gl_why" ] && [ -z "$gl_failed" ]; then',
        '  LC_ALL=C sort -u "$gl_dir/greenloop-names.txt" > "$gl_dir/greenloop-sorted.txt"',
        f'  gl_pat=$(awk -v i="$gl_i" -v n="$gl_n" \'{_GO_PICK}\' "$gl_dir/greenloop-sorted.txt")',
        "  case $? in",
        "    0) ;;",
        f'    {_NONE_LISTED}) gl_why="the test listing found no tests" ;;',
        f"    {_TOO_LONG}) gl_why=\"shard 1's -skip pattern is longer than one argument may be"
        f' ({MAX_PATTERN_CHARS} characters)" ;;',
        '    *) gl_why="the listed names could not be split" ;;',
        "  esac",
        "fi",
        f"shift {listed}",
        *_listing_failed(),
        *_fallback(0),
        'if [ -z "$gl_pat" ]; then',
        '  if [ "$gl_i" -ne 0 ]; then gl_idle "no listed test fell to this shard"; fi',
        "  gl_flag=",
        'elif [ "$gl_i" -eq 0 ]; then gl_flag=-skip; else gl_flag=-run; fi',
        *_splice(
            at,
            total,
            'if [ -n "$gl_flag" ]; then set -- "$@" -count=1 "$gl_flag" "$gl_pat";'
            ' else set -- "$@" -count=1; fi',
        ),
        'exec "$@"',
    ]


# A POM (comments dropped) that sets Surefire's test, includes or their files: the first
# such file's path is printed. Any <plugin> block naming maven-surefire-plugin counts.
_POM_CHECK = (
    "function sets(t,  s, e, b) {"
    ' while ((s = index(t, "<!--")) > 0) { e = index(substr(t, s + 4), "-->");'
    " if (e == 0) { t = substr(t, 1, s - 1); break }"
    " t = substr(t, 1, s - 1) substr(t, s + e + 6) }"
    " if (t ~ /<test>|surefire\\.includesFile|surefire\\.excludesFile/) return 1;"
    ' while ((s = index(t, "<plugin>")) > 0) { t = substr(t, s + 8); e = index(t, "</plugin>");'
    " b = (e > 0) ? substr(t, 1, e - 1) : t;"
    " if (b ~ /maven-surefire-plugin/ && b ~ /<includes|<includesFile|<excludesFile/) return 1;"
    " if (e == 0) break; t = substr(t, e + 9) }"
    " return 0 }"
    " BEGIN { while ((getline f < list) > 0) ARGV[ARGC++] = f }"
    ' FNR == 1 && NR > 1 && !found { if (sets(text)) { print name; found = 1 } text = "" }'
    " FNR == 1 { name = FILENAME }"
    ' { text = text "\\n" $0 }'
    " END { if (!found && NR > 0 && sets(text)) print name }"
)
_PRUNE = "\\( -name target -o -name node_modules -o -name '.?*' \\) -prune -o"
_DEFAULT_INCLUDES = (
    "\\( -name 'Test*.java' -o -name '*Test.java' -o -name '*Tests.java'"
    " -o -name '*TestCase.java' \\)"
)
# A test source's path -> its class: what follows the first src/test/java/, dotted.
_MAVEN_CLASS = (
    '{ p = index($0, "/src/test/java/"); c = substr($0, p + 15); sub(/\\.java$/, "", c);'
    ' gsub(/\\//, ".", c); print c }'
)
# This index's classes (index 0: all the others'), written to `out`.
_MAVEN_PICK = (
    _SLOT + " { k = slot($0); if ((i == 0) ? (k != 0) : (k == i)) { print > out; c++ } }"
    f" END {{ if (NR == 0) exit {_NONE_LISTED}; if (c == 0) exit {_NONE_MINE} }}"
)
_SUREFIRE_SETS = "-Dtest=|surefire\\.includesFile|surefire\\.excludesFile"


def _maven_script(at: Sequence[int], total: int) -> list[str]:
    return [
        'gl_file="$gl_dir/greenloop-classes.txt"',
        'case " $MAVEN_OPTS " in',
        "  *-Dtest=*|*surefire.includesFile*|*surefire.excludesFile*)"
        ' gl_why="MAVEN_OPTS sets Surefire\'s test or its files" ;;',
        "esac",
        'if [ -z "$gl_why" ] && [ ! -f pom.xml ]; then gl_why="no pom.xml in its workingDir"; fi',
        'if [ -z "$gl_why" ] && [ -f .mvn/maven.config ] &&'
        f" awk '/{_SUREFIRE_SETS}/ {{ f = 1 }} END {{ exit !f }}' .mvn/maven.config; then",
        '  gl_why=".mvn/maven.config sets Surefire\'s test or its files"',
        "fi",
        'if [ -z "$gl_why" ]; then',
        f'  find . {_PRUNE} -type f -name pom.xml -print > "$gl_dir/greenloop-poms.txt"',
        f"  gl_pom=$(awk -v list=\"$gl_dir/greenloop-poms.txt\" '{_POM_CHECK}')",
        '  if [ -n "$gl_pom" ]; then',
        '    gl_why="$gl_pom sets Surefire\'s test, includes or their files"',
        "  fi",
        "fi",
        'if [ -z "$gl_why" ]; then',
        f"  find . {_PRUNE} -type f -path '*/src/test/java/*' {_DEFAULT_INCLUDES} -print |",
        f"    awk '{_MAVEN_CLASS}' | LC_ALL=C sort -u > \"$gl_dir/greenloop-all-classes.txt\"",
        '  : > "$gl_file"',
        f'  awk -v i="$gl_i" -v n="$gl_n" -v out="$gl_file" \'{_MAVEN_PICK}\''
        ' "$gl_dir/greenloop-all-classes.txt"',
        "  gl_rc=$?",
        '  case "$gl_rc" in',
        "    0) ;;",
        f'    {_NONE_LISTED}) gl_why="no test class found under src/test/java" ;;',
        f"    {_NONE_MINE}) ;;",
        '    *) gl_why="the test classes could not be split" ;;',
        "  esac",
        "fi",
        *_fallback(0),
        f'if [ "$gl_rc" -eq {_NONE_MINE} ]; then',
        '  if [ "$gl_i" -ne 0 ]; then gl_idle "no listed test class fell to this shard"; fi',
        '  exec "$@"',
        "fi",
        'if [ "$gl_i" -eq 0 ]; then',
        "  # An excludes file replaces Surefire's default exclude of nested classes.",
        "  printf '%s\\n' '**/*$*' >> \"$gl_file\"",
        '  gl_arg="-Dsurefire.excludesFile=$gl_file"',
        'else gl_arg="-Dsurefire.includesFile=$gl_file"; fi',
        *_splice(at, total, 'set -- "$@" "$gl_arg"'),
        'exec "$@"',
    ]


def listing_wrapper_command(
    command: Sequence[str], runner: str, junit_path: str
) -> tuple[str, ...]:
    """The Indexed Job's command for a whole-suite run of a sharded Go or Maven suite
    whose command has no :func:`command_blocker`: a ``/bin/sh -c`` wrapper that lists
    the tests in the pod and runs this index's share (see the module's docstring). Its
    positional parameters: the listing's packages (Go), then the whole-suite command."""
    if not lists_in_pod(runner):
        raise ValueError(f"runner {runner!r} is not split from a listing in the pod")
    whole = expand_command(command, None, junit_path)
    at = _positions(command)
    if runner == "go":
        listed = go_packages(command) or GO_DEFAULT_PACKAGES
        script = [*_prologue(junit_path), *_go_script(len(listed), at, len(whole))]
        return wrapped(script, (*listed, *whole))
    return wrapped([*_prologue(junit_path), *_maven_script(at, len(whole))], whole)
