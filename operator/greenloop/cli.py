"""greenloop's command line: run | validate | junit | report upload | operator.

Imports stay inside the commands so `greenloop junit` and `greenloop validate` start
fast and never load HTTP or Kubernetes libraries they do not use.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import urlsplit

from greenloop.core.exits import ExitCode

EXIT_OK = ExitCode.OK
EXIT_FAILED = ExitCode.STALLED
EXIT_USAGE = ExitCode.USAGE

DESCRIPTION = """\
greenloop reconciles a staging environment toward "all N end-to-end tests passing":
it runs the test suites, reads their JUnit XML, works out why each test failed,
redeploys the target when that can help, reruns only what failed, and stops when the
goal is met or a person must act.
"""

RUN_EPILOG = """\
exit codes:
  0    the goal is met (phase Passed)
  1    stalled: a person must act (the report says why), or the budget ran out
  2    the spec or the command line is invalid (the message names the field)
  3    greenloop itself failed (Stalled/InternalError); what was known is still reported
  130  interrupted (Ctrl-C); what was known is still reported
  143  stopped by SIGTERM, 129 by SIGHUP (CI cancellation, timeout); reported likewise

examples:
  greenloop run examples/demo/validation.yaml
  greenloop run validation.yaml --json > status.json
  greenloop run validation.yaml --report report.md -v
"""


def say(text: str, stream: TextIO | None = None) -> None:
    """Print one line that may carry outside input (ids, messages, paths), escaped: a
    terminal shows control characters (newlines included), never obeys them."""
    from greenloop.local.terminal import printable

    print(printable(text), file=stream or sys.stdout)


def say_lines(text: str, stream: TextIO | None = None) -> None:
    """A message of several lines (a SpecError: one per problem), each escaped."""
    for line in text.split("\n"):
        say(line, stream)


class _Stopped(KeyboardInterrupt):
    """SIGTERM or SIGHUP outside `run`: stops the command the way Ctrl-C does."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _on_stop_signal(signum: int, frame: object) -> None:
    # One-shot: a second signal while the message is printed must not raise again.
    for sig in _STOP_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)
    raise _Stopped(signum)


_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
# Commands that install their own handlers (`run` stops its suites first; the operator
# and the upload sidecar wait for SIGTERM) get the defaults back before they start.
_OWN_SIGNALS = ("run", "operator", "report")


def main(argv: Sequence[str] | None = None) -> int:
    # What CI cancellation and `timeout` send stops `junit` and `validate` like Ctrl-C:
    # a message and 128 + the signal, never a traceback or a bare -15.
    # A signal ignored at start (nohup: SIGHUP) stays ignored, as Python leaves SIGINT.
    previous = {
        sig: signal.signal(sig, _on_stop_signal)
        for sig in _STOP_SIGNALS[1:]
        if signal.getsignal(sig) is not signal.SIG_IGN
    }
    try:
        # Inside the try: Ctrl-C while argparse is still importing its helpers is Ctrl-C too.
        parser = build_parser()
        args = parser.parse_args(argv)
        if not getattr(args, "command", None):
            parser.print_help(sys.stderr)
            return EXIT_USAGE
        if args.command in _OWN_SIGNALS:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        code: int = args.func(args)
    except _Stopped as stopped:
        print(f"greenloop: stopped by {signal.Signals(stopped.signum).name}", file=sys.stderr)
        return 128 + stopped.signum
    except KeyboardInterrupt:
        # `run` reports its own interruptions; this is Ctrl-C anywhere else.
        print("greenloop: interrupted", file=sys.stderr)
        return int(ExitCode.INTERRUPTED)
    except BrokenPipeError:
        # `greenloop junit ... | head`: the reader left; nothing more to say.
        sys.stderr.close()
        return EXIT_OK
    except Exception as err:  # the last resort: a message, never a traceback
        say(f"greenloop: internal error: {type(err).__name__}: {err}", sys.stderr)
        return int(ExitCode.INTERNAL_ERROR)
    return code


def build_parser() -> argparse.ArgumentParser:
    from greenloop import __version__

    parser = argparse.ArgumentParser(
        prog="greenloop",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"greenloop {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    run = sub.add_parser(
        "run",
        help="run the test → diagnose → redeploy → retest loop locally, no cluster needed",
        description="Run a StagingValidation locally: suites run as processes, a redeploy is "
        "spec.target.command and/or spec.target.webhook, then spec.target.health is awaited. "
        "Progress goes to stderr; the Markdown report to --report.",
        epilog=RUN_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    run.add_argument("file", type=Path, help="a YAML file with one or more StagingValidations")
    run.add_argument(
        "--json", action="store_true", help="print the final status object(s) as JSON on stdout"
    )
    run.add_argument(
        "--report",
        type=Path,
        metavar="PATH",
        help="where to write the Markdown report (default: OUT/report.md)",
    )
    run.add_argument(
        "--out",
        type=Path,
        metavar="DIR",
        help="where to keep JUnit XML, logs, status.json and the report; a run replaces "
        "the previous run's files there, and one run at a time holds it "
        "(default: .greenloop/NAMESPACE/NAME in the current folder)",
    )
    run.add_argument(
        "-v", "--verbose", action="store_true", help="stream the suites' own output to stderr"
    )
    run.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    run.add_argument(
        "--deny-outbound", action="append", default=[], metavar="WHAT",
        help="refuse webhook and health URLs that reach WHAT: loopback, link-local, "
        "metadata, a CIDR or a host name (repeatable; default: everything allowed)",
    )  # fmt: skip
    run.set_defaults(func=cmd_run)

    validate = sub.add_parser(
        "validate",
        help="check a spec against the CRD schema and greenloop's rules, run nothing",
        description="Validate a StagingValidation file. Errors name the file, the field and "
        "what is wrong; the exit code is 0 when valid, 2 when not.",
    )
    validate.add_argument("file", type=Path)
    validate.add_argument(
        "--mode",
        choices=("local", "operator"),
        default="local",
        help="which mode's extra rules apply (operator: every suite needs an image)",
    )
    validate.set_defaults(func=cmd_validate)

    junit = sub.add_parser(
        "junit",
        help="classify and summarize existing JUnit XML reports",
        description="Read JUnit XML files (pytest, Surefire, jest, Go and more), classify "
        "each failure and print counts by outcome and class with the evidence. Exit code: "
        "0 no failures, 1 failures, 2 an unreadable file, 130/143/129 stopped by "
        "Ctrl-C/SIGTERM/SIGHUP.",
    )
    junit.add_argument("files", type=Path, nargs="+", metavar="FILE")
    junit.add_argument("--json", action="store_true", help="print the summary as JSON")
    junit.set_defaults(func=cmd_junit)
    _add_report_parser(sub)
    _add_operator_parser(sub)
    return parser


def cmd_validate(args: argparse.Namespace) -> int:
    from greenloop.core.spec import SpecError
    from greenloop.core.words import plural
    from greenloop.local.specfile import load_spec

    try:
        loaded = load_spec(args.file, args.mode)
    except SpecError as err:
        say_lines(str(err), sys.stderr)
        return EXIT_USAGE
    for warning in loaded.warnings:
        say(f"warning: {warning}", sys.stderr)
    if args.mode == "local" and _preflight_failed(args.file, loaded.objects):
        return EXIT_USAGE
    for obj in loaded.objects:
        suites = plural(len(obj.spec.suites), "suite")
        say(f"{args.file}: StagingValidation {obj.name}: valid ({suites})")
    return EXIT_OK


def _preflight_failed(file: Path, objects: Sequence[Any]) -> bool:
    """Local mode: what would fail at once when run (a command not on PATH, a missing
    workingDir or redeploy script), reported like a spec error."""
    from greenloop.core.spec import SpecError
    from greenloop.local.preflight import check

    errors = []
    for index, obj in enumerate(objects):
        errors.extend(check(obj, f"documents[{index}]." if len(objects) > 1 else ""))
    if errors:
        say_lines(str(SpecError(str(file), errors)), sys.stderr)
    return bool(errors)


def cmd_run(args: argparse.Namespace) -> int:
    from greenloop.core.spec import SpecError
    from greenloop.local.specfile import load_spec

    try:
        loaded = load_spec(args.file, "local")
    except SpecError as err:
        say_lines(str(err), sys.stderr)
        return EXIT_USAGE
    if _preflight_failed(args.file, loaded.objects):
        return EXIT_USAGE
    from greenloop.core.outbound import local_policy

    try:
        outbound = local_policy(args.deny_outbound)
    except ValueError as err:
        print(f"greenloop: --deny-outbound: {err}", file=sys.stderr)
        return EXIT_USAGE

    from greenloop.core.engine import Reason
    from greenloop.local.loop import LocalRun
    from greenloop.local.outdir import OutDirError, default_out
    from greenloop.local.procs import become_subreaper
    from greenloop.local.progress import Progress

    # Orphans of the suites (a child that called setsid, then its parent exited) are
    # adopted by greenloop instead of init, so they are found and stopped.
    become_subreaper()
    progress = Progress(quiet=args.quiet)
    for warning in loaded.warnings:
        progress.line(f"warning: {warning}")
    if args.report is not None and len(loaded.objects) > 1:
        print("greenloop: --report needs a file with a single StagingValidation", file=sys.stderr)
        return EXIT_USAGE
    if args.report is not None and args.report.is_dir():
        print(
            f"greenloop: --report {args.report}: is a folder; give a file path such as "
            f"{args.report / 'report.md'}",
            file=sys.stderr,
        )
        return EXIT_USAGE
    if args.out is not None and args.out.exists() and not args.out.is_dir():
        print(
            f"greenloop: --out {args.out}: is a file, not a folder; choose a folder",
            file=sys.stderr,
        )
        return EXIT_USAGE
    results = []
    for obj in loaded.objects:
        out = args.out or default_out(obj.namespace, obj.name)
        if args.out is not None and len(loaded.objects) > 1:
            out = args.out / obj.namespace / obj.name
        run = LocalRun(
            obj, out_dir=out, report_path=args.report, progress=progress, verbose=args.verbose,
            outbound=outbound,
        )  # fmt: skip
        try:
            results.append(run.run())
        except OutDirError as err:
            say(f"greenloop: {err}", sys.stderr)
            return EXIT_USAGE
        if results[-1].state.reason is Reason.INTERRUPTED:
            break
    if args.json:
        objects = [r.as_object() for r in results]
        doc: Any = (
            objects[0]
            if len(objects) == 1
            else {"apiVersion": "v1", "kind": "List", "items": objects}
        )
        print(json.dumps(doc, indent=2))
    return max(r.exit_code for r in results)


def cmd_junit(args: argparse.Namespace) -> int:
    from greenloop.core.classify import diagnose_batch
    from greenloop.core.junit import JUnitError, parse_junit
    from greenloop.core.model import Outcome
    from greenloop.local.files import JUNIT_MAX_BYTES, FileRefused, open_regular

    outcomes = {o.value: 0 for o in Outcome}
    outcomes["dependent"] = 0
    classes: dict[str, int] = {}
    failing: list[dict[str, Any]] = []
    warnings: list[str] = []
    unreadable: list[str] = []
    for path in args.files:
        try:
            with open_regular(path, JUNIT_MAX_BYTES) as stream:
                # Passing tests are only counted: 100k of them held 60 MiB for nothing.
                report = parse_junit(stream, name=str(path), keep_passed=False)
        except (JUnitError, FileRefused) as err:
            unreadable.append(str(err))
            continue
        except OSError as err:
            unreadable.append(f"{path}: {err}")
            continue
        warnings.extend(report.warnings)
        outcomes[Outcome.PASSED.value] += report.not_kept
        for test, diagnosis in diagnose_batch(report.tests):
            if diagnosis is None:
                outcomes[test.outcome.value] += 1
                continue
            if test.outcome is Outcome.SKIPPED:
                outcomes["dependent"] += 1
            else:
                outcomes[test.outcome.value] += 1
            cls = diagnosis.failure_class.value
            classes[cls] = classes.get(cls, 0) + 1
            failing.append(
                {
                    "file": str(path),
                    "id": test.id,
                    "class": cls,
                    "evidence": diagnosis.evidence,
                    "rootCause": diagnosis.root_cause,
                }
            )
    if args.json:
        print(
            json.dumps(
                {
                    "total": sum(outcomes.values()),
                    "outcomes": outcomes,
                    "classes": classes,
                    "failing": failing,
                    "warnings": warnings,
                    "unreadable": unreadable,
                },
                indent=2,
            )
        )
    else:
        total = sum(outcomes.values())
        parts = ", ".join(f"{n} {k}" for k, n in outcomes.items() if n)
        print(f"{total} tests: {parts or 'none'}")
        if classes:
            print("failures by class: " + ", ".join(f"{n} {c}" for c, n in sorted(classes.items())))
        for f in failing:
            root = f" (depends on {f['rootCause']})" if f["rootCause"] else ""
            say(f"  {f['class']:<18} {f['id']}{root}")
            say(f"  {'':<18} {f['evidence']}")
        for w in warnings:
            say(f"warning: {w}", sys.stderr)
        for u in unreadable:
            say(f"error: {u}", sys.stderr)
    if unreadable:
        return EXIT_USAGE
    return EXIT_FAILED if failing else EXIT_OK


def _add_report_parser(sub: Any) -> None:
    # Constants only: the sidecar's process must not load the Job builder (its cost is
    # paid in every shard's pod, tests/unit/test_pod_imports.py).
    from greenloop.k8s.upload_contract import TOKEN_PATH

    report = sub.add_parser("report", help="the results sidecar of a test Job (operator mode)")
    report_sub = report.add_subparsers(dest="report_command", metavar="ACTION", required=True)
    upload = report_sub.add_parser(
        "upload",
        help="upload a Job's JUnit XML to the operator's results endpoint",
        description="Wait for SIGTERM (the suite container has exited), then send FILE "
        "gzipped to URL with the pod's bound ServiceAccount token read from TOKEN_FILE "
        "(re-read on each attempt). Exit code 0 when stored, 1 when not.",
    )
    upload.add_argument("--file", type=Path, required=True)
    upload.add_argument("--url", required=True, help="the results endpoint's base URL")
    upload.add_argument("--namespace", required=True)
    upload.add_argument("--job", required=True)
    upload.add_argument(
        "--token-file", type=Path, default=Path(TOKEN_PATH), metavar="TOKEN_FILE",
        help=f"the pod's projected token for the results endpoint (default: {TOKEN_PATH})",
    )  # fmt: skip
    upload.add_argument("--deadline", type=float, default=90.0, metavar="SECONDS")
    upload.add_argument("--now", action="store_true", help="do not wait for SIGTERM")
    upload.set_defaults(func=cmd_report_upload)


def cmd_report_upload(args: argparse.Namespace) -> int:
    from greenloop.k8s.upload import Upload, upload, wait_for_sigterm

    if not args.now:
        wait_for_sigterm()
    result = upload(
        Upload(
            file=args.file,
            url=args.url,
            namespace=args.namespace,
            job=args.job,
            token_file=args.token_file,
            deadline_seconds=args.deadline,
        )
    )
    print(f"greenloop: {result.message}", file=sys.stderr)
    return EXIT_OK if result.ok else EXIT_FAILED


def _add_operator_parser(sub: Any) -> None:
    op = sub.add_parser(
        "operator",
        help="run the Kubernetes operator (StagingValidations reconciled in a cluster)",
        description="Watch StagingValidations and reconcile them: suites as Jobs, results "
        "uploaded to this process, redeploys as rollouts, status and Events on the object.",
    )
    op.add_argument(
        "-n", "--namespace", action="append", default=[], metavar="NS",
        help="watch only this namespace (repeatable; default: all namespaces)",
    )  # fmt: skip
    op.add_argument("--kubeconfig", help="default: $KUBECONFIG, ~/.kube/config, in-cluster")
    op.add_argument("--results-port", type=int, default=8081, metavar="PORT")
    op.add_argument("--results-host", default="0.0.0.0", metavar="ADDR")
    op.add_argument(
        "--results-url", default="", metavar="URL",
        help="how Job pods reach the results endpoint (e.g. a Service's URL)",
    )  # fmt: skip
    op.add_argument(
        "--results-body-seconds", type=float, default=30.0, metavar="SECONDS",
        help="an upload's body must arrive within this once it holds a slot (else 408)",
    )  # fmt: skip
    op.add_argument("--metrics-port", type=int, default=8080, metavar="PORT", help="0: off")
    op.add_argument(
        "--reporter-image", default="localhost/greenloop:dev", metavar="IMAGE",
        help="greenloop's image, run as each Job's results sidecar",
    )  # fmt: skip
    op.add_argument("--peering", metavar="NAME", help="kopf peering name (default: standalone)")
    op.add_argument("--priority", type=int, default=0, help="peering priority")
    op.add_argument(
        "--peering-lifetime", type=int, default=60, metavar="SECONDS",
        help="how long a silent peer counts as alive: the most a standby waits to take over",
    )  # fmt: skip
    op.add_argument(
        "--allow-outbound", action="append", default=[], metavar="CIDR|HOST",
        help="let webhook and health URLs reach this address, CIDR or host name (*.suffix "
        "too), which the default denies (repeatable)",
    )  # fmt: skip
    op.add_argument(
        "--allow-outbound-cluster", action="store_true",
        help="let webhook and health URLs reach cluster-internal addresses and names",
    )  # fmt: skip
    op.add_argument(
        "--cluster-cidr", action="append", default=[], metavar="CIDR",
        help="the cluster's pod and service CIDRs, denied to outbound calls (repeatable; "
        "default: the private ranges)",
    )  # fmt: skip
    op.add_argument(
        "--liveness", default="", metavar="URL",
        help="serve kopf's liveness endpoint, e.g. http://0.0.0.0:8082/healthz (a pod's "
        "livenessProbe; default: none)",
    )  # fmt: skip
    op.add_argument(
        "--default-service-account", metavar="NAME",
        help="the ServiceAccount (in each object's namespace) greenloop acts as for an object "
        "without spec.serviceAccountName; unset, such an object is Stalled/NoServiceAccount",
    )  # fmt: skip
    op.add_argument("--log-format", choices=("json", "text"), default="json")
    op.add_argument("-v", "--verbose", action="store_true")
    op.set_defaults(func=cmd_operator)


def liveness_problem(url: str) -> str | None:
    """Why kopf could not serve `--liveness URL`, or None. kopf itself only finds out
    once the operator runs, and stops it with a traceback."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as err:
        return str(err)
    if parts.scheme != "http":
        return "kopf serves http:// only"
    if port is None:
        return "needs a port, e.g. http://0.0.0.0:8082/healthz"
    if not parts.path.startswith("/"):
        return "needs a path, e.g. http://0.0.0.0:8082/healthz"
    return None


def cmd_operator(args: argparse.Namespace) -> int:
    from greenloop.k8s import failpoints  # light: refuse a bad setting before kopf loads

    try:
        failpoints.arm_from_env()
    except failpoints.FailpointError as err:
        print(f"greenloop operator: {err}", file=sys.stderr)
        return int(ExitCode.USAGE)
    from greenloop.core.outbound import operator_policy

    try:
        outbound = operator_policy(
            allow=args.allow_outbound,
            allow_cluster=args.allow_outbound_cluster,
            cluster_cidrs=args.cluster_cidr,
        )
    except ValueError as err:
        print(f"greenloop operator: --allow-outbound/--cluster-cidr: {err}", file=sys.stderr)
        return int(ExitCode.USAGE)
    if args.liveness and (problem := liveness_problem(args.liveness)):
        print(f"greenloop operator: --liveness {args.liveness}: {problem}", file=sys.stderr)
        return int(ExitCode.USAGE)
    from greenloop.k8s.operator import OperatorConfig, run

    return run(
        OperatorConfig(
            namespaces=tuple(args.namespace),
            kubeconfig=args.kubeconfig,
            results_host=args.results_host,
            results_port=args.results_port,
            results_url=args.results_url,
            results_body_seconds=args.results_body_seconds,
            metrics_port=args.metrics_port,
            reporter_image=args.reporter_image,
            json_logs=args.log_format == "json",
            verbose=args.verbose,
            peering=args.peering,
            priority=args.priority,
            peering_lifetime=args.peering_lifetime,
            outbound=outbound,
            liveness=args.liveness or None,
            default_service_account=args.default_service_account or None,
        )
    )


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
