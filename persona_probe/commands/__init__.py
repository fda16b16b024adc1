"""Subcommands of the ``persona-probe`` CLI that belong to no single feature module."""
