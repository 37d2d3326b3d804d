"""What the test suites share, imported as `tests.support.<module>` (pytest's rootdir is on
the import path through `pythonpath` in pyproject.toml; no test module edits the path):

- paths: the repository's paths (chart, ci scenarios, built binaries).
- helm: the pinned helm binaries, a helm home of a test's own, helm runs.
- wait: `wait_for`, the one polling helper (raises naming what it waited for).
- kube: the API server through the official `kubernetes` client, readiness of nodes, pods,
  DaemonSets and StatefulSets, namespaces and volumes the tests create, inventories.
- clusters: the local cluster a test session uses (kwok nodes) and per-test namespaces.
- chart_render: `helm template` of the chart, no cluster.
- figures: measurements the tests record into JSON files under .cache/.
"""
