"""The installed versions of the packages that decide a result, recorded with every stress run and shown on its page."""

from __future__ import annotations

from typing import Iterable

__all__ = ["PACKAGES", "package_versions"]

PACKAGES = ("persona-probe", "torch", "transformers", "nnsight", "peft", "plotly", "sentence-transformers")


def package_versions(packages: Iterable[str] = PACKAGES) -> dict[str, str]:
    """Installed versions of the packages that decide a result (``not installed`` when absent), plus Python's."""
    import platform
    from importlib import metadata

    out = {"python": platform.python_version()}
    for name in packages:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out
