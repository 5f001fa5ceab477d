"""A bounded memo: trace fields and register sets repeat, so conversions are worth remembering."""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class Memo(dict[K, V], Generic[K, V]):
    """``memo[key]`` is ``convert(key)``, computed once. Cleared when ``size`` keys are held, so
    memory stays bounded whatever the trace."""

    def __init__(self, convert: Callable[[K], V], size: int = 1 << 14) -> None:
        super().__init__()
        self.convert = convert
        self.size = size

    def __missing__(self, key: K) -> V:
        if len(self) >= self.size:
            self.clear()
        value = self[key] = self.convert(key)
        return value
