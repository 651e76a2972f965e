"""Subcommands of the `mlplatform` CLI, one module per feature."""
