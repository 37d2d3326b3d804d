"""tests/conftest.py: under CI a skip is a failure naming its reason; elsewhere it stays a skip,
and xfail is never touched. Each case runs an inner pytest session with that conftest."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT_CONFTEST = Path(__file__).resolve().parents[1] / "conftest.py"

SKIPPING = """
import pytest

@pytest.fixture
def needs_root():
    pytest.skip("fixture: the contract suite needs root")

def test_in_body():
    pytest.skip("body: no real node here")

@pytest.mark.skipif(True, reason="mark: vineyard not installed")
def test_by_mark():
    pass

def test_in_fixture(needs_root):
    pass

@pytest.mark.xfail(reason="known bug", strict=True)
def test_expected_failure():
    assert False

def test_passes():
    pass
"""

REASONS = ("fixture: the contract suite needs root", "body: no real node here",
           "mark: vineyard not installed")


@pytest.fixture
def inner(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeconftest(ROOT_CONFTEST.read_text())
    pytester.makepyfile(test_inner=SKIPPING)
    return pytester


@pytest.mark.parametrize("ci", ["true", "1", "TRUE"])
def test_under_ci_every_skip_fails_with_its_reason(
    inner: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, ci: str
) -> None:
    monkeypatch.setenv("CI", ci)
    result = inner.runpytest("-rfEs")
    outcomes = result.parseoutcomes()
    assert outcomes.get("skipped", 0) == 0, result.stdout.str()
    # A skip at setup (mark, fixture) is reported as an error, one in the body as a failure.
    assert outcomes.get("failed", 0) + outcomes.get("errors", 0) == 3, outcomes
    assert outcomes.get("xfailed") == 1, outcomes
    assert outcomes.get("passed") == 1, outcomes
    out = result.stdout.str()
    for reason in REASONS:
        assert f"skipped under CI={ci}, where a skip counts as a failure: {reason}" in out, out
    assert result.ret == pytest.ExitCode.TESTS_FAILED


@pytest.mark.parametrize("ci", [None, "", "false", "0"])
def test_elsewhere_a_skip_stays_a_skip_and_shows_its_reason(
    inner: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, ci: str | None
) -> None:
    if ci is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", ci)
    result = inner.runpytest("-rfEs")
    result.assert_outcomes(passed=1, skipped=3, xfailed=1)
    out = result.stdout.str()
    for reason in REASONS:
        assert reason in out, out
    assert "counts as a failure" not in out
    assert result.ret == pytest.ExitCode.OK


def test_a_module_skipped_whole_fails_under_ci(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makeconftest(ROOT_CONFTEST.read_text())
    pytester.makepyfile(test_module_skip="""
        import pytest
        pytest.importorskip("no_such_module_vineyard_helm_test")

        def test_never_collected():
            pass
    """)
    monkeypatch.delenv("CI", raising=False)
    assert pytester.runpytest().parseoutcomes() == {"skipped": 1}
    monkeypatch.setenv("CI", "true")
    result = pytester.runpytest()
    assert result.ret != pytest.ExitCode.OK
    assert "skipped under CI=true" in result.stdout.str()
    assert "no_such_module_vineyard_helm_test" in result.stdout.str()
