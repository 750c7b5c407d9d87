"""What a suite's container runs in a cluster (docs/runners.md "In operator mode"): the
suite's command with its placeholders filled in exactly as local mode fills them
(``runners.expand_command``, ``shards.shard_command``).

- **A one-pod Job** (:func:`job_command`): the command is filled in when the Job is made:
  the selection's arguments where ``{greenloop:select}`` stands, the JUnit path for
  ``{greenloop:junit}``.
- **An Indexed Job** (:func:`shard_wrapper_command`): all indexes share one pod template,
  and Kubernetes can put an index into the environment but cannot compute ``index + 1``
  or pick a file by it. Where an index needs arguments of its own, the command becomes a
  POSIX ``/bin/sh -c`` wrapper that adds them: ``--shard=<index+1>/<count>`` at the end
  on a whole-suite run of Jest/Vitest/Playwright (as local mode appends it); on a rerun
  whose ids greenloop assigned per shard, the runner's selection arguments for that index,
  read from the selection ConfigMap (:func:`shard_args_key`, shell-quoted words), spliced
  where the placeholder stands. pytest and generic suites read their index's
  ``GREENLOOP_SELECT`` file themselves: no wrapper.

Two kinds of text must stay apart. The suite's own words are passed to the wrapper as
its positional parameters, untouched (Kubernetes still expands a ``$(VAR)`` the team
wrote, as it does without the wrapper); the wrapper's script holds no tenant data at
all. Test ids are tenant data: in the pod spec every ``$`` of theirs is doubled
(:func:`kube_literal`) so Kubernetes' ``$(VAR)`` expansion cannot reach them, and in the
ConfigMap they are shell-quoted words (``shlex.join``) that the wrapper evaluates only
as ``set --`` arguments.

Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Sequence

from greenloop.core.runners import (
    JUNIT_PLACEHOLDER,
    expand_command,
    select_args,
    selects_by_args,
    shell_words,
    uses_placeholder,
)
from greenloop.core.shards import SHARD_COUNT_ENV, SHARD_INDEX_ENV, Shard, splits_by_flag

__all__ = [
    "RUN",
    "SHELL",
    "job_command",
    "kube_literal",
    "rotate",
    "shard_args_key",
    "shard_select_args",
    "shard_wrapper_command",
    "unwrapped",
    "wrapped",
]

#: The shell the wrapper needs in the suite's image (docs/runners.md: a distroless
#: image runs a generic command that reads GREENLOOP_SHARD_INDEX/COUNT instead).
SHELL = "/bin/sh"
#: The wrapper's $0, shown by `ps` and in the shell's own error messages.
_WRAPPER_NAME = "greenloop-shard"
#: A wrapper's runner step: core/pod_reports puts its own where this stands.
RUN = 'exec "$@"'


def kube_literal(text: str) -> str:
    """``text`` as Kubernetes passes it on: a pod's command, args and env values expand
    ``$(VAR)`` and turn ``$$`` into ``$``, so every ``$`` is doubled."""
    return text.replace("$", "$$")


def job_command(
    command: Sequence[str], runner: str, selected: Sequence[str] | None, junit_path: str
) -> tuple[str, ...]:
    """A one-pod Job's command: its placeholders filled in as local mode fills them, the
    selection's arguments safe from Kubernetes' expansion. ``selected`` is None when the
    whole suite runs."""
    select = None
    if selected is not None:
        select = tuple(kube_literal(a) for a in select_args(runner, selected))
    return expand_command(command, select, junit_path)


_ARGS_KEY = "args-{}.txt"


def shard_args_key(index: int) -> str:
    """The selection ConfigMap's key holding one index's selection arguments."""
    return _ARGS_KEY.format(index)


def shard_select_args(runner: str, shard: Shard) -> str | None:
    """What :func:`shard_args_key` holds for this shard: the runner's selection
    arguments quoted for a POSIX shell; None when the runner reads its selection file
    instead (pytest, generic) or the runner splits the whole suite."""
    if shard.test_ids is None or not selects_by_args(runner):
        return None
    return shell_words(select_args(runner, shard.test_ids))


def _segments(command: Sequence[str], junit_path: str) -> list[list[str]]:
    """The command's words between its select placeholders (one more segment than
    placeholders), ``{greenloop:junit}`` filled in."""
    segments: list[list[str]] = [[]]
    for arg in command:
        if uses_placeholder(arg):
            segments.append([])
        else:
            segments[-1].append(arg.replace(JUNIT_PLACEHOLDER, junit_path))
    return segments


def rotate(words: int) -> str:
    """Shell that moves the first ``words`` positional parameters to the end."""
    return f'i=0; while [ "$i" -lt {words} ]; do set -- "$@" "$1"; shift; i=$((i + 1)); done'


def wrapped(script: Sequence[str], words: Sequence[str]) -> tuple[str, ...]:
    """``/bin/sh -c <script> greenloop-shard <words>``: the script safe from Kubernetes'
    expansion, the words (the suite's own) as its positional parameters, untouched."""
    body = "\n".join(script)
    return (SHELL, "-c", kube_literal(body), _WRAPPER_NAME, *words)


def unwrapped(command: Sequence[str]) -> tuple[tuple[str, ...], tuple[str, ...]] | None:
    """A command :func:`wrapped` made, as (its script's lines, its words); None for a
    plain command."""
    if len(command) < 4 or tuple(command[:2]) != (SHELL, "-c") or command[3] != _WRAPPER_NAME:
        return None
    # kube_literal doubled every $ of the script: halving them gives it back exactly.
    return tuple(command[2].replace("$$", "$").split("\n")), tuple(command[4:])


def shard_wrapper_command(
    command: Sequence[str],
    runner: str,
    shards: Sequence[Shard],
    junit_path: str,
    select_dir: str,
) -> tuple[str, ...]:
    """An Indexed Job's one command for every index (docs/runners.md "In operator
    mode"): the command as local mode runs each shard, through a ``/bin/sh -c`` wrapper
    when an index needs arguments of its own (see the module's docstring); else the
    command filled in once. ``select_dir`` is where the selection ConfigMap is mounted."""
    per_index = any(s.test_ids is not None for s in shards)
    if not per_index:
        whole = expand_command(command, None, junit_path)
        if len(shards) < 2 or not splits_by_flag(runner):
            return whole
        flag = f'"--shard=$(({SHARD_INDEX_ENV} + 1))/${SHARD_COUNT_ENV}"'
        return wrapped((f'exec "$@" {flag}',), whole)
    if not selects_by_args(runner):
        return expand_command(command, (), junit_path)
    # The index's arguments, read with the shell's own builtins (an image with /bin/sh
    # need have nothing else); kept exported for a command that is itself a script.
    file = f"{select_dir}/" + _ARGS_KEY.format("${" + SHARD_INDEX_ENV + "}")
    script = [
        f'f="{file}"',
        'if [ ! -r "$f" ]; then echo "greenloop: no selection arguments at $f" >&2; exit 2; fi',
        "GREENLOOP_SELECT_ARGS=",
        'while IFS= read -r line || [ -n "$line" ]; do',
        '  GREENLOOP_SELECT_ARGS="$GREENLOOP_SELECT_ARGS$line',
        '"',
        'done < "$f"',
        "export GREENLOOP_SELECT_ARGS",
    ]
    # The positional parameters are the command's words without the placeholders: move
    # each segment to the end in turn, appending the index's arguments after every
    # segment but the last, so they land where each placeholder stood.
    segments = _segments(command, junit_path)
    for position, segment in enumerate(segments):
        if segment:
            script.append(rotate(len(segment)))
        if position < len(segments) - 1:
            script.append('eval "set -- \\"\\$@\\" $GREENLOOP_SELECT_ARGS"')
    script.append('exec "$@"')
    return wrapped(script, [w for segment in segments for w in segment])
