"""``python -m vineyard_helm``: the vineyard-helm command line."""

from .cli import main_entry

main_entry()
