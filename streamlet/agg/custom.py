"""User aggregators from plain functions: :func:`streamlet.agg.custom`."""

from __future__ import annotations

import copy
from typing import Any, Callable

from streamlet.agg.base import Aggregator, state_problem
from streamlet.errors import TopologyError


class Custom(Aggregator):
    """An aggregator made of functions; see :func:`streamlet.agg.custom`."""

    uses_timestamp = False  # add(state, value): the functions never see it

    name = "custom"

    def __init__(self, initial: Any, add: Callable[[Any, Any], Any],
                 result: Callable[[Any], Any] | None = None,
                 subtract: Callable[[Any, Any], Any] | None = None,
                 merge: Callable[[Any, Any], Any] | None = None) -> None:
        for what, fn in (("add", add), ("result", result), ("subtract", subtract), ("merge", merge)):
            if fn is not None and not callable(fn):
                raise TopologyError(f"custom(): {what} must be a function, got {fn!r}")
        if callable(initial):
            self._initial = initial
        else:
            value = initial
            self._initial = lambda: copy.deepcopy(value)
        first = self._initial()
        problem = state_problem(first)
        if problem is not None:
            raise TopologyError(
                f"custom(): the initial state {first!r} cannot be stored: {problem}. A state must be "
                "plain data (None, bool, int, float, str, bytes, list, dict with str keys)"
            )
        self._add, self._result, self._subtract, self._merge = add, result, subtract, merge
        self.supports_subtract = subtract is not None
        self.supports_merge = merge is not None

    def initial(self) -> Any:
        return self._initial()

    def add(self, state: Any, value: Any, offset: int, timestamp: int) -> Any:
        return self._add(state, value)

    def subtract(self, state: Any, value: Any, offset: int, timestamp: int) -> Any:
        if self._subtract is None:
            return super().subtract(state, value, offset, timestamp)
        return self._subtract(state, value)

    def merge(self, a: Any, b: Any) -> Any:
        if self._merge is None:
            return super().merge(a, b)
        return self._merge(a, b)

    def result(self, state: Any) -> Any:
        return state if self._result is None else self._result(state)

    def __repr__(self) -> str:
        return f"sl.agg.custom(add={getattr(self._add, '__qualname__', self._add)!s})"
