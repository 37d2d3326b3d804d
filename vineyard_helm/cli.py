"""``vineyard-helm``: install, upgrade, uninstall, status, render and validate from a shell.

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


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "-v", "--verbose", action="store_true", help="print each helm command on stderr"
    )
    common.add_argument(
        "--helm", metavar="PATH", help="helm binary (default: $VINEYARD_HELM_BINARY, then PATH)"
    )
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
    parser.add_argument("--version", action="version", version=f"%(prog)s {_package_version()}")
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
    commands.add_parser(
        "status",
        parents=[common, release, output(formats, "table")],
        help="release, vineyardd per node, etcd members, endpoints, socket",
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
    validate.add_argument(
        "--helm",
        metavar="PATH",
        help="helm binary for the offline render (default: $VINEYARD_HELM_BINARY, then PATH)",
    )
    return parser


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
        result_status = api.status(args.release, namespace=args.namespace, **_cluster_options(args))
        if args.output == "table":
            from .output import format_status

            text = format_status(result_status)
        else:
            text = _dump(result_status.to_dict(), args.output)
        out.write(text + "\n")
        return EXIT_OK

    raise AssertionError(f"unhandled command {args.command!r}")  # argparse restricts choices


def main(
    argv: Sequence[str] | None = None, *, out: TextIO | None = None, err: TextIO | None = None
) -> int:
    """Entry point of ``vineyard-helm``; returns the exit code (see the module docstring)."""
    out = out if out is not None else sys.stdout
    err = err if err is not None else sys.stderr
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
    """Console-script entry point."""
    raise SystemExit(main())
