"""The ``smcwire`` command line: a thin shell over the library."""

from __future__ import annotations

from .main import cli, main

__all__ = ["cli", "main"]
