"""Rules for the whole suite.

No green by skipping: under CI (`CI=true` or `CI=1`, as CI's .ci/run sets it) a skipped test is
a failure that carries the skip's reason, so a suite that could not run (not root, a missing
package, no real node) fails the run instead of passing it. xfail is untouched. A combination
that does not apply to a test is not a skip: parametrize only the combinations that apply
(tests/contract/test_contract_vineyardd.py does).

tests/unit/test_skip_policy.py runs this file in an inner pytest session to check it.
"""

from __future__ import annotations

import os
from collections.abc import Generator
from typing import Any

import pytest

pytest_plugins = ["pytester"]


def skips_fail() -> str | None:
    """The CI value when skips must fail, else None."""
    value = os.environ.get("CI", "")
    return value if value.strip().lower() in ("true", "1") else None


def _failure(reason: str, ci: str) -> str:
    return f"skipped under CI={ci}, where a skip counts as a failure: {reason}"


def _fail_instead_of_skip() -> Generator[None, Any, Any]:
    try:
        return (yield)
    except pytest.skip.Exception as skip:
        ci = skips_fail()
        if ci is None:
            raise
        raise pytest.fail.Exception(_failure(skip.msg or "(no reason given)", ci),
                                    pytrace=False) from None


# Skips raised by marks (skipif) and fixtures (setup), the test body (call) or teardown.
@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Generator[None, Any, Any]:
    return (yield from _fail_instead_of_skip())


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, Any, Any]:
    return (yield from _fail_instead_of_skip())


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item) -> Generator[None, Any, Any]:
    return (yield from _fail_instead_of_skip())


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> Generator[None, Any, Any]:
    """A module skipped as a whole (pytest.skip(allow_module_level=True), importorskip)."""
    report = yield
    ci = skips_fail()
    if ci is not None and report.skipped:
        longrepr = report.longrepr
        reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
        report.outcome = "failed"
        report.longrepr = _failure(reason.removeprefix("Skipped: "), ci)
    return report
