"""Drop-in replacements for upstream ``vineyard.deploy``."""
