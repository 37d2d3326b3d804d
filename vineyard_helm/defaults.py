"""Defaults shared by the API and the CLI (a module of its own: the CLI builds its parser from
them on every start, --version included, without importing the API)."""

DEFAULT_RELEASE = "vineyard"
DEFAULT_NAMESPACE = "vineyard"
#: helm's --timeout for waits (Go duration string or seconds).
DEFAULT_TIMEOUT = "5m"
