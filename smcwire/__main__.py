"""``python -m smcwire``."""

from .cli import main

main()
