"""``vineyard-helm``: install, upgrade, uninstall, status, render and validate from a shell;
``doctor`` says which helm it runs and why, ``helm ...`` runs that same helm.

Exit codes:

====  ==============================================================
0     success (``validate``: the values are valid)
1     helm failed for another reason (its message is printed)
2     usage error (unknown option, missing argument)
3     invalid values (every problem is listed with its path)
4     helm binary not found
5     Kubernetes cluster unreachable
6     release not found
7     release already exists (``install``; use ``upgrade``)
8     timed out waiting for resources
9     chart not found
130   interrupted (Ctrl-C)
====  ==============================================================

Errors are printed as one message on stderr, never as a traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys

from . import errors
from .defaults import DEFAULT_NAMESPACE, DEFAULT_RELEASE, DEFAULT_TIMEOUT

# Kept light: `vineyard-helm --version` and `--help` import nothing else (the API, helm and
# YAML are imported once a command runs).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence
    from typing import Any, TextIO

EXIT_OK = 0
EXIT_HELM_FAILED = 1
EXIT_USAGE = 2
EXIT_INVALID_VALUES = 3
EXIT_HELM_NOT_FOUND = 4
EXIT_CLUSTER_UNREACHABLE = 5
EXIT_RELEASE_NOT_FOUND = 6
EXIT_RELEASE_EXISTS = 7
EXIT_TIMEOUT = 8
EXIT_CHART_NOT_FOUND = 9
EXIT_INTERRUPTED = 130

#: Most specific first.
EXIT_CODES: tuple[tuple[type[errors.VineyardHelmError], int], ...] = (
    (errors.InvalidValuesError, EXIT_INVALID_VALUES),
    (errors.HelmNotFoundError, EXIT_HELM_NOT_FOUND),
    (errors.ClusterUnreachableError, EXIT_CLUSTER_UNREACHABLE),
    (errors.ReleaseNotFoundError, EXIT_RELEASE_NOT_FOUND),
    (errors.ReleaseExistsError, EXIT_RELEASE_EXISTS),
    (errors.WaitTimeoutError, EXIT_TIMEOUT),
    (errors.ChartNotFoundError, EXIT_CHART_NOT_FOUND),
)


def exit_code_for(error: errors.VineyardHelmError) -> int:
    for kind, code in EXIT_CODES:
        if isinstance(error, kind):
            return code
    return EXIT_HELM_FAILED


def _dump(data: Any, output: str) -> str:
    import json

    if output == "json":
        return json.dumps(data, indent=2, sort_keys=False, default=str)
    import yaml

    return str(yaml.safe_dump(data, sort_keys=False, default_flow_style=False)).rstrip("\n")


def _dump_manifests(manifests: list[dict[str, Any]], output: str) -> str:
    import json

    if output == "json":
        return json.dumps(manifests, indent=2)
    from .output import format_manifest_table

    return format_manifest_table(manifests)


def _package_version() -> str:
    from . import __version__

    return str(__version__)


def _version_text() -> str:
    """``--version``: this package's version, and which helm it would run, from where. Nothing
    is run: the bundled helm's version is the one its build recorded, any other helm's is
    ``doctor``'s to ask (a helm run would double the time of ``--version``)."""
    from .helm import FROM_BUNDLE, locate_helm

    first = f"vineyard-helm {_package_version()}"
    try:
        binary = locate_helm()
    except errors.HelmNotFoundError as error:
        return f"{first}\nhelm: none found ({error.detail})"
    if binary.origin == FROM_BUNDLE:
        from .bundled import bundled_helm_record

        version = (bundled_helm_record() or {}).get("version", "of unrecorded version")
        return f"{first}\nhelm {version}, bundled: {binary.path}"
    return (
        f"{first}\nhelm from {binary.origin}: {binary.path} "
        "(`vineyard-helm doctor` asks its version)"
    )


class _VersionAction(argparse.Action):
    """argparse's version action, with the text made only when --version is given."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, *args: Any, **kwargs: Any) -> None:
        print(_version_text())
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "-v", "--verbose", action="store_true", help="print each helm command on stderr"
    )
    common.add_argument("--helm", metavar="PATH", help=HELM_HELP)
    common.add_argument(
        "--kubeconfig",
        metavar="FILE",
        help="kubeconfig file (default: $KUBECONFIG or ~/.kube/config)",
    )
    common.add_argument(
        "--context", "--kube-context", dest="context", metavar="NAME", help="kubeconfig context"
    )

    release = argparse.ArgumentParser(add_help=False)
    release.add_argument(
        "release",
        nargs="?",
        default=DEFAULT_RELEASE,
        help=f"release name (default: {DEFAULT_RELEASE})",
    )
    release.add_argument(
        "-n",
        "--namespace",
        default=DEFAULT_NAMESPACE,
        help=f"namespace (default: {DEFAULT_NAMESPACE})",
    )

    values = argparse.ArgumentParser(add_help=False)
    values.add_argument(
        "-f",
        "--values",
        dest="value_files",
        action="append",
        default=[],
        metavar="FILE",
        help="YAML values file, passed to helm (repeatable; later files win, maps merge, "
        "lists are replaced)",
    )
    values.add_argument(
        "--set",
        dest="set_values",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="passed to helm's --set (repeatable)",
    )
    values.add_argument(
        "--set-string",
        dest="set_string_values",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="passed to helm's --set-string: values are always strings (repeatable)",
    )
    values.add_argument(
        "--set-json",
        dest="set_json_values",
        action="append",
        default=[],
        metavar="KEY=JSON",
        help="passed to helm's --set-json: values are JSON (repeatable)",
    )
    values.add_argument(
        "--chart",
        metavar="REF",
        help="chart directory, .tgz, repo/name or oci:// reference (default: the bundled chart)",
    )
    values.add_argument(
        "--version",
        dest="chart_version",
        metavar="VERSION",
        help="chart version to use from a repo or registry",
    )
    values.add_argument(
        "--plain-http",
        action="store_true",
        help="fetch an oci:// chart over plain HTTP (e.g. a registry on loopback)",
    )

    deploy = argparse.ArgumentParser(add_help=False)
    deploy.add_argument(
        "--no-wait", dest="wait", action="store_false", help="return without waiting for readiness"
    )
    deploy.add_argument(
        "--timeout",
        default=DEFAULT_TIMEOUT,
        help=f"how long to wait, Go duration (default: {DEFAULT_TIMEOUT})",
    )
    deploy.add_argument(
        "--no-create-namespace",
        dest="create_namespace",
        action="store_false",
        help="fail if the namespace does not exist",
    )
    deploy.add_argument(
        "--rollback-on-failure",
        action="store_true",
        help="roll back (or uninstall) on failure (--atomic on Helm 3)",
    )
    deploy.add_argument(
        "--no-progress", dest="progress", action="store_false", help="no live progress on stderr"
    )

    def output(choices: Sequence[str], default: str) -> argparse.ArgumentParser:
        parser = argparse.ArgumentParser(add_help=False)
        parser.add_argument(
            "-o",
            "--output",
            choices=choices,
            default=default,
            help=f"output format (default: {default})",
        )
        return parser

    formats = ("table", "yaml", "json")
    parser = argparse.ArgumentParser(
        prog="vineyard-helm",
        description="Deploy vineyard (v6d) on Kubernetes with its Helm chart.",
        epilog="Exit codes: 0 ok, 1 helm failed, 2 usage, 3 invalid values, 4 helm not found, "
        "5 cluster unreachable, 6 release not found, 7 release exists, 8 timeout, "
        "9 chart not found, 130 interrupted.",
    )
    parser.add_argument(
        "--version", action=_VersionAction, help="show the version and which helm runs, then exit"
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    commands.add_parser(
        "install",
        parents=[common, release, values, deploy, output(formats, "table")],
        help="install vineyard as a new release",
    )
    upgrade = commands.add_parser(
        "upgrade",
        parents=[common, release, values, deploy, output(formats, "table")],
        help="upgrade a release to new values or chart",
    )
    upgrade.add_argument(
        "-i", "--install", action="store_true", help="install if the release does not exist"
    )
    upgrade.add_argument(
        "--reuse-values",
        action="store_true",
        help="keep the release's previous values under the new ones",
    )
    uninstall = commands.add_parser(
        "uninstall", parents=[common, release], help="uninstall a release"
    )
    uninstall.add_argument(
        "--no-wait", dest="wait", action="store_false", help="return without waiting for deletion"
    )
    uninstall.add_argument(
        "--timeout", default=DEFAULT_TIMEOUT, help=f"how long to wait (default: {DEFAULT_TIMEOUT})"
    )
    uninstall.add_argument(
        "--ignore-not-found", action="store_true", help="succeed if the release does not exist"
    )
    status = commands.add_parser(
        "status",
        parents=[common, release, output(formats, "table")],
        help="release, vineyardd per node (with its memory), nodes without vineyardd, etcd "
        "members (database against quota, alarms), endpoints, socket",
    )
    status.add_argument(
        "--no-metrics",
        dest="metrics",
        action="store_false",
        help="skip reading the pods' /metrics pages through the API server",
    )
    status.add_argument(
        "--no-nodes",
        dest="nodes",
        action="store_false",
        help="skip listing the nodes to find those without vineyardd",
    )
    render = commands.add_parser(
        "render",
        parents=[common, release, values, output(formats, "yaml")],
        help="render the manifests without a cluster (helm template)",
    )
    render.add_argument(
        "--skip-tests",
        action="store_true",
        help="leave out the chart's `helm test` pods",
    )
    render.add_argument(
        "--skip-validation",
        dest="validate",
        action="store_false",
        help="skip the values schema (helm --skip-schema-validation); the chart's own checks "
        "still run",
    )
    validate = commands.add_parser(
        "validate",
        parents=[release, values, output(formats, "table")],
        help="check values against the chart's schema and its own rules: an offline "
        "helm template, no cluster",
    )
    validate.add_argument("--helm", metavar="PATH", help=HELM_HELP)
    commands.add_parser(
        "doctor",
        parents=[output(formats, "table")],
        help="which helm runs and why: every place looked in, in order, and the helm's version",
    ).add_argument("--helm", metavar="PATH", help=HELM_HELP)
    # Never parsed: main() hands everything after `helm` to helm as it is.
    commands.add_parser(
        "helm",
        add_help=False,
        help="run the helm vineyard-helm runs: `vineyard-helm helm test vineyard`, "
        "`... helm get values vineyard`, `... helm repo add ...`",
    )
    return parser


HELM_HELP = (
    "helm binary (default: $VINEYARD_HELM_BINARY, then the helm bundled with this package, "
    "then PATH; see `vineyard-helm doctor`)"
)


def _values_options(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "chart": args.chart,
        "set_values": args.set_values,
        "set_string_values": args.set_string_values,
        "set_json_values": args.set_json_values,
        "version": args.chart_version,
        "plain_http": args.plain_http,
    }


def _cluster_options(args: argparse.Namespace) -> dict[str, Any]:
    return {"kubeconfig": args.kubeconfig, "context": args.context, "helm": args.helm}


def run(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from . import api

    if args.command == "validate":
        try:
            api.validate(
                args.value_files,
                release=args.release,
                namespace=args.namespace,
                helm=args.helm,
                **_values_options(args),
            )
        except errors.InvalidValuesError as error:
            if args.output != "table":
                out.write(
                    _dump({"valid": False, "problems": list(error.problems)}, args.output) + "\n"
                )
                return EXIT_INVALID_VALUES
            raise
        message: Any = {"valid": True, "problems": []}
        out.write(
            (_dump(message, args.output) if args.output != "table" else "values are valid") + "\n"
        )
        return EXIT_OK

    if args.command == "render":
        text = api.render_text(
            args.value_files,
            release=args.release,
            namespace=args.namespace,
            validate=args.validate,
            skip_tests=args.skip_tests,
            helm=args.helm,
            **_values_options(args),
        )
        if args.output == "yaml":  # helm's own text: nothing to parse or re-dump
            out.write(text if text.endswith("\n") else text + "\n")
        else:
            from .helm import load_manifest

            out.write(_dump_manifests(load_manifest(text), args.output) + "\n")
        return EXIT_OK

    if args.command in ("install", "upgrade"):
        from .progress import ProgressDisplay

        display = ProgressDisplay(err) if args.wait and args.progress else None
        options: dict[str, Any] = {
            "release": args.release,
            "namespace": args.namespace,
            "create_namespace": args.create_namespace,
            "wait": args.wait,
            "timeout": args.timeout,
            "rollback_on_failure": args.rollback_on_failure,
            "progress": display,
            **_values_options(args),
            **_cluster_options(args),
        }
        try:
            if args.command == "install":
                result = api.install(args.value_files, **options)
            else:
                result = api.upgrade(
                    args.value_files,
                    install=args.install,
                    reuse_values=args.reuse_values,
                    **options,
                )
        finally:
            if display is not None:
                display.close()
        if args.output == "table":
            from .output import format_release

            text = format_release(result)
        else:
            text = _dump(result.to_dict(), args.output)
        out.write(text + "\n")
        return EXIT_OK

    if args.command == "uninstall":
        api.uninstall(
            args.release,
            namespace=args.namespace,
            wait=args.wait,
            timeout=args.timeout,
            ignore_not_found=args.ignore_not_found,
            **_cluster_options(args),
        )
        out.write(f"release {args.release} uninstalled from namespace {args.namespace}\n")
        return EXIT_OK

    if args.command == "status":
        result_status = api.status(
            args.release,
            namespace=args.namespace,
            metrics=args.metrics,
            nodes=args.nodes,
            **_cluster_options(args),
        )
        if args.output == "table":
            from .output import format_status

            text = format_status(result_status)
        else:
            text = _dump(result_status.to_dict(), args.output)
        out.write(text + "\n")
        return EXIT_OK

    if args.command == "doctor":
        report, code = doctor_report(args.helm)
        if args.output == "table":
            out.write(_format_doctor(report) + "\n")
        else:
            out.write(_dump(report, args.output) + "\n")
        if report["problem"]:
            err.write(f"vineyard-helm: error: {report['problem']}\n")
        return code

    raise AssertionError(f"unhandled command {args.command!r}")  # argparse restricts choices


def doctor_report(helm: str | None = None) -> tuple[dict[str, Any], int]:
    """``vineyard-helm doctor``: every place helm is looked for, in order, what each names,
    which one is used and the version it answers; the bundled helm checked against its record.
    Returns the report and the exit code (EXIT_HELM_NOT_FOUND when no helm answers,
    EXIT_HELM_FAILED when the bundled binary is not the one its build recorded)."""
    from . import api
    from .bundled import bundled_helm, bundled_helm_record, chart_directory
    from .helm import Helm, check_candidate, helm_candidates

    looked: list[dict[str, Any]] = []
    used: dict[str, Any] | None = None
    problem = ""
    for origin, candidate in helm_candidates(helm):
        entry: dict[str, Any] = {
            "origin": origin,
            "names": candidate,
            "path": None,
            "problem": None,
            "used": False,
        }
        if candidate is not None:
            try:
                entry["path"] = check_candidate(candidate, origin)
            except errors.HelmNotFoundError as error:
                entry["problem"] = error.detail
                problem = str(error)  # with the hint on installing helm
            if used is None:  # the first place that names a helm decides, usable or not
                used = entry
                entry["used"] = True
        looked.append(entry)
    assert used is not None  # PATH always names "helm"
    report: dict[str, Any] = {
        "vineyard_helm": _package_version(),
        "chart": chart_directory(),
        "helm": None,
        "looked_for": looked,
        "bundled": None,
        "problem": problem if used["problem"] else None,
    }
    code = EXIT_OK if used["path"] else EXIT_HELM_NOT_FOUND
    if used["path"]:
        runner = Helm(helm=used["path"])
        try:
            api.run_offline(runner.version())
        except errors.HelmNotFoundError as error:
            report["problem"], code = str(error), EXIT_HELM_NOT_FOUND
        report["helm"] = {
            "path": used["path"],
            "origin": used["origin"],
            "version": runner.version_text or None,
        }
    record, binary = bundled_helm_record(), bundled_helm()
    if record is not None and binary is not None:
        import hashlib

        sha256 = hashlib.sha256()
        with open(binary, "rb") as handle:
            while chunk := handle.read(1 << 20):
                sha256.update(chunk)
        digest = sha256.hexdigest()
        matches = digest == record.get("sha256")
        report["bundled"] = {**record, "path": binary, "sha256_matches": matches}
        if not matches and code == EXIT_OK:
            report["problem"] = (
                f"the bundled helm {binary} is not the binary this wheel was "
                f"built with (sha256 {digest}, recorded {record.get('sha256')})"
            )
            code = EXIT_HELM_FAILED
    return report, code


def _format_doctor(report: dict[str, Any]) -> str:
    from .helm import FROM_ARGUMENT, FROM_BUNDLE, FROM_ENVIRONMENT

    names_none = {FROM_ARGUMENT: "not given", FROM_ENVIRONMENT: "not set", FROM_BUNDLE: "none here"}
    lines = [f"vineyard-helm {report['vineyard_helm']}, chart {report['chart']}"]
    helm = report["helm"]
    if helm is not None:
        lines.append(
            f"helm {helm['version'] or '(no version)'}: {helm['path']} (from {helm['origin']})"
        )
    lines.append("looked for, in order (the first place that names a helm is used):")
    width = max(len(entry["origin"]) for entry in report["looked_for"])
    for entry in report["looked_for"]:
        found = entry["path"] or entry["problem"] or names_none.get(entry["origin"], "-")
        if entry["names"] and entry["path"] and entry["names"] != entry["path"]:
            found = f"{entry['names']} -> {found}"
        lines.append(f"  {entry['origin']:<{width}}  {found}{'  <- used' if entry['used'] else ''}")
    bundled = report["bundled"]
    if bundled is not None:
        check = "matches" if bundled["sha256_matches"] else "DOES NOT match"
        licence = os.path.join(os.path.dirname(bundled["path"]), "LICENSE")
        lines.append(
            f"bundled helm: {bundled.get('version')} for {bundled.get('goos')}/"
            f"{bundled.get('goarch')}, built by {bundled.get('go')}; sha256 "
            f"{bundled.get('sha256')} ({check} the binary); licence {licence}"
        )
    else:
        lines.append("bundled helm: none (this is the pure wheel, an sdist build or a checkout)")
    return "\n".join(lines)


def run_helm(args: Sequence[str], out: TextIO, err: TextIO) -> int:
    """``vineyard-helm helm ARGS``: the helm every other command would run
    (``$VINEYARD_HELM_BINARY``, the bundled helm, PATH), run with ARGS; its output and exit
    code are its own.
    Streams without a file descriptor (a test's) get helm's output once it exits."""
    import subprocess

    from .helm import locate_helm

    argv = [locate_helm().path, *args]
    streams = [_file_descriptor(stream) for stream in (out, err)]
    for stream in (out, err):
        stream.flush()
    try:
        done = subprocess.run(
            argv,
            stdout=streams[0] if streams[0] is not None else subprocess.PIPE,
            stderr=streams[1] if streams[1] is not None else subprocess.PIPE,
            check=False,
        )
    except OSError as error:
        raise errors.HelmNotFoundError(f"cannot run {argv[0]!r}: {error}") from None
    for stream, captured in ((out, done.stdout), (err, done.stderr)):
        if captured is not None:
            stream.write(captured.decode(errors="replace"))
    return done.returncode


def _file_descriptor(stream: TextIO) -> int | None:
    try:
        return stream.fileno()
    except (AttributeError, OSError, ValueError):  # io.UnsupportedOperation is an OSError
        return None


def main(
    argv: Sequence[str] | None = None, *, out: TextIO | None = None, err: TextIO | None = None
) -> int:
    """Entry point of ``vineyard-helm``; returns the exit code (see the module docstring)."""
    out = out if out is not None else sys.stdout
    err = err if err is not None else sys.stderr
    argv = list(argv) if argv is not None else sys.argv[1:]
    if argv[:1] == ["helm"]:  # before argparse, which would read helm's own options
        try:
            return run_helm(argv[1:], out, err)
        except errors.VineyardHelmError as error:
            err.write(f"vineyard-helm: error: {error}\n")
            return exit_code_for(error)
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # argparse: --help (0) or a usage error (2)
        return int(exit_.code) if isinstance(exit_.code, int) else EXIT_USAGE
    with _verbose(err) if getattr(args, "verbose", False) else contextlib.nullcontext():
        try:
            return run(args, out, err)
        except errors.VineyardHelmError as error:
            err.write(f"vineyard-helm: error: {error}\n")
            return exit_code_for(error)
        except KeyboardInterrupt:
            err.write("vineyard-helm: interrupted\n")
            return EXIT_INTERRUPTED


@contextlib.contextmanager
def _verbose(err: TextIO) -> Iterator[None]:
    """-v: each helm command on stderr (logging is imported only then)."""
    import logging

    from .helm import LOGGER

    helm_logger = logging.getLogger(LOGGER)
    handler = logging.StreamHandler(err)
    handler.setFormatter(logging.Formatter("vineyard-helm: %(message)s"))
    level = helm_logger.level
    helm_logger.addHandler(handler)
    helm_logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        helm_logger.removeHandler(handler)
        helm_logger.setLevel(level)


def main_entry() -> None:
    """Console-script entry point (and ``python -m vineyard_helm``'s). On POSIX ``vineyard-helm
    helm ...`` becomes helm itself (exec): Ctrl-C and signals reach helm alone, so an
    interrupted ``helm upgrade`` ends as helm ends it, and helm's exit status is the command's."""
    argv = sys.argv[1:]
    if argv[:1] == ["helm"] and os.name == "posix":
        from .helm import locate_helm

        try:
            path = locate_helm().path
            os.execv(path, [path, *argv[1:]])
        except (errors.VineyardHelmError, OSError) as error:
            sys.stderr.write(f"vineyard-helm: error: {error}\n")
            raise SystemExit(EXIT_HELM_NOT_FOUND) from None
    raise SystemExit(main(argv))
