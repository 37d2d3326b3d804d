"""The one polling helper of the suites.

Every wait polls a condition until a deadline: the machine is shared and loaded, so no test
asserts how long anything takes, deadlines are generous, and a passing wait returns as soon
as its condition holds. A wait that runs out fails the test (AssertionError) naming what it
waited for and what it saw last. Code that must go on after a wait that ran out (a retry on
another port, a message of its own) uses the launcher's boolean `localcluster.wait_until`.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

#: Deadline of waits for pods, workloads and deletions (seconds).
DEADLINE = 180.0


def wait_for(condition: Callable[[], T], what: str, *, timeout: float = DEADLINE,
             interval: float = 0.2, describe: Callable[[], Any] | None = None) -> T:
    """Polls `condition` until it returns something truthy (returned) or `timeout` passes
    (AssertionError naming `what`, with `describe()` or the last value seen)."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            seen = describe() if describe is not None else value
            raise AssertionError(f"not true after {timeout:.0f}s: {what}; last seen: {seen}")
        time.sleep(interval)
