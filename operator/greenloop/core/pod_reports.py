"""Surefire's reports reach the upload in operator mode (docs/runners.md "Maven
Surefire"; docs/design.md §4).

The results sidecar uploads only ``$GREENLOOP_JUNIT_XML``. Surefire writes one file per
class under ``target/surefire-reports/`` and no property moves them; local mode reads
the ``REPORT_GLOBS`` files written during the run (``core/runners.merge_reports``). In a
pod the same has to happen before the suite container exits, so every ``runner: maven``
container runs its command through a POSIX ``/bin/sh`` wrapper (:func:`gathering_command`;
one script, composed with the shard and listing wrappers of ``core/pod_command`` and
``core/pod_listing``) whose runner step (``gl_run "$@"`` where they ``exec "$@"``):

- records a marker file beside the JUnit path, then runs the command (in the background,
  SIGTERM/SIGINT passed on, so the pod still stops at once);
- if the command did not write ``$GREENLOOP_JUNIT_XML`` itself, gathers the
  ``REPORT_GLOBS`` files newer than the marker (the **fresh-reports rule**: an image may
  ship reports of an old build, which must never count) into one ``<testsuites>``
  document there, each file's ``<?xml ...?>`` declaration stripped as
  ``merge_reports`` strips it; none found, nothing is written (the shard has no results:
  a RunnerError, as for a command that wrote no report);
- exits with the command's exit code.

As for ``core/pod_command``: the script holds no tenant data (the suite's words are its
positional parameters; every ``$`` doubled for Kubernetes). Only ``sh`` builtins,
``find`` and ``sed``, which maven and busybox images have.

Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Sequence

from greenloop.core.pod_command import RUN, unwrapped, wrapped
from greenloop.core.runners import REPORT_GLOBS

__all__ = ["gathering_command", "gathers_reports"]

_GATHERED_RUN = 'gl_run "$@"'


def gathers_reports(runner: str) -> bool:
    """Whether this runner's container gathers its reports into the JUnit path."""
    return runner in REPORT_GLOBS


def _gather(runner: str, junit_path: str) -> list[str]:
    if "'" in junit_path:
        raise ValueError(f"a JUnit path with a quote: {junit_path!r}")
    globs = " ".join(REPORT_GLOBS[runner])  # unquoted: the shell expands them
    return [
        f"gl_junit='{junit_path}'",
        'gl_dir="${gl_junit%/*}"',
        "gl_run() {",
        '  : > "$gl_dir/greenloop-started"',
        '  "$@" &',
        "  gl_pid=$!",
        "  trap 'kill -TERM \"$gl_pid\" 2>/dev/null' TERM INT",
        '  wait "$gl_pid"; gl_rc=$?',
        '  while kill -0 "$gl_pid" 2>/dev/null; do wait "$gl_pid"; gl_rc=$?; done',
        '  if [ ! -f "$gl_junit" ]; then',
        '    : > "$gl_dir/greenloop-reports.txt"',
        f"    for gl_f in {globs}; do",
        '      if [ -f "$gl_f" ]; then',
        '        find "$gl_f" -newer "$gl_dir/greenloop-started"'
        ' >> "$gl_dir/greenloop-reports.txt"',
        "      fi",
        "    done",
        '    if [ -s "$gl_dir/greenloop-reports.txt" ]; then',
        "      { printf '%s\\n' '<?xml version=\"1.0\" encoding=\"UTF-8\"?>' '<testsuites>'",
        "        while IFS= read -r gl_f; do sed '1s/^[[:space:]]*<?xml[^>]*>//' \"$gl_f\";"
        ' done < "$gl_dir/greenloop-reports.txt"',
        "        printf '%s\\n' '</testsuites>'",
        '      } > "$gl_junit"',
        "    fi",
        "  fi",
        '  exit "$gl_rc"',
        "}",
    ]


def gathering_command(command: Sequence[str], runner: str, junit_path: str) -> tuple[str, ...]:
    """The container's command (a wrapper of ``core/pod_command`` or
    ``core/pod_listing``, or the plain command) with its runner step gathering the
    reports (see the module's docstring); unchanged for a runner that needs none."""
    if not gathers_reports(runner):
        return tuple(command)
    script, words = unwrapped(command) or ((RUN,), tuple(command))
    body = [line.replace(RUN, _GATHERED_RUN) for line in script]
    return wrapped([*_gather(runner, junit_path), *body], words)
