"""Several named aggregators computed together: one state per column, a dict per row."""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

from streamlet.agg.base import Aggregator, table_aggregation_message
from streamlet.errors import StateError, TopologyError


class Aggregation:
    """``Aggregation({"events": count(), "last": latest_by_offset("name")})``.

    The same protocol as one :class:`~streamlet.agg.base.Aggregator`, over a
    state that is a list with one state per column, in column order; the
    result is a dict column → result. ``supports_subtract`` /
    ``supports_merge`` hold when every column supports it;
    ``needs_state_check`` when any column needs it.
    """

    def __init__(self, columns: dict[str, Aggregator]) -> None:
        if not isinstance(columns, dict) or not columns:
            raise TopologyError("an aggregation needs at least one column: {name: sl.agg.count(), ...}")
        for col, agg in columns.items():
            if not isinstance(col, str):
                raise TopologyError(f"column names must be str, got {col!r}")
            if not all(callable(getattr(agg, m, None)) for m in ("initial", "add", "result")):
                raise TopologyError(
                    f"column {col!r} is {agg!r}, not an aggregator: use sl.agg.count(), "
                    "sl.agg.sum('field'), ... or a subclass of sl.agg.Aggregator"
                )
        self.columns = list(columns)
        self.aggregators = list(columns.values())
        self.supports_subtract = all(getattr(a, "supports_subtract", False) for a in self.aggregators)
        self.supports_merge = all(getattr(a, "supports_merge", False) for a in self.aggregators)
        self.needs_state_check = any(getattr(a, "needs_state_check", True) for a in self.aggregators)
        self._n = len(self.aggregators)
        self.uses_timestamp = any(getattr(a, "uses_timestamp", True) for a in self.aggregators)
        # add / subtract / result run per record: unrolled over the columns they are about twice as
        # fast as a loop (generated from indexes only; columns and functions are bound by name)
        self.add = self._unrolled("add", "state, value, offset, timestamp", "[{}]",
                                  "f{i}(state[{i}], value, offset, timestamp)")
        self.result = self._unrolled("result", "state", "{{{}}}", "k{i}: f{i}(state[{i}])")
        if self.supports_subtract:
            self.subtract = self._unrolled("subtract", "state, value, offset, timestamp", "[{}]",
                                           "f{i}(state[{i}], value, offset, timestamp)")

    def initial(self) -> list[Any]:
        return [a.initial() for a in self.aggregators]

    # add / subtract / result below say what the unrolled versions made in __init__ do

    def add(self, state: list[Any], value: Any, offset: int, timestamp: int) -> list[Any]:
        """Each column's ``add``: a new list of states."""
        self._check_shape(state)
        return [a.add(s, value, offset, timestamp) for a, s in zip(self.aggregators, state)]

    def subtract(self, state: list[Any], value: Any, offset: int, timestamp: int) -> list[Any]:
        """Each column's ``subtract``; a TopologyError naming the columns that cannot."""
        if not self.supports_subtract:
            raise TopologyError(self.no_subtract_reason())
        self._check_shape(state)
        return [a.subtract(s, value, offset, timestamp) for a, s in zip(self.aggregators, state)]

    def merge(self, a: list[Any], b: list[Any]) -> list[Any]:
        if not self.supports_merge:
            bad = [f"{c}={x!r}" for c, x in zip(self.columns, self.aggregators)
                   if not getattr(x, "supports_merge", False)]
            raise TopologyError(f"column(s) {', '.join(bad)} cannot merge session windows")
        self._check_shape(a)
        self._check_shape(b)
        return [agg.merge(x, y) for agg, x, y in zip(self.aggregators, a, b)]

    def result(self, state: list[Any]) -> dict[str, Any]:
        """A dict column → that column's result."""
        self._check_shape(state)
        return {c: a.result(s) for c, a, s in zip(self.columns, self.aggregators, state)}

    def _unrolled(self, method: str, params: str, shape: str, item: str) -> Callable[..., Any]:
        namespace: dict[str, Any] = {"wrong_shape": self._wrong_shape, "n": self._n}
        items = []
        for i, (col, agg) in enumerate(zip(self.columns, self.aggregators)):
            namespace[f"f{i}"] = getattr(agg, method)
            namespace[f"k{i}"] = col
            fast = _inline_add(agg, i, namespace) if method == "add" else None
            items.append(fast or item.format(i=i))
        body = shape.format(", ".join(items))
        source = (f"def {method}({params}):\n"
                  "    if type(state) is not list or len(state) != n:\n"
                  "        wrong_shape(state)\n"
                  f"    return {body}\n")
        exec(compile(source, f"<streamlet.agg.Aggregation.{method}>", "exec"), namespace)
        return namespace[method]

    def no_subtract_reason(self) -> str:
        """Why this aggregation cannot aggregate a table (names each column that cannot subtract)."""
        return table_aggregation_message([(c, a) for c, a in zip(self.columns, self.aggregators)
                                          if not getattr(a, "supports_subtract", False)])

    def _check_shape(self, state: Any) -> None:
        if type(state) is not list or len(state) != self._n:
            self._wrong_shape(state)

    def _wrong_shape(self, state: Any) -> None:
        n = len(state) if isinstance(state, list) else "no"
        raise StateError(
            f"a stored aggregate has {n} column states but this aggregation has {self._n} columns "
            f"({', '.join(self.columns)}): the aggregate(...) columns changed since the state was "
            "written. Keep the columns as they were, or start the aggregation afresh (a new "
            "application id, or delete the state directory and the changelog topic)"
        )

    def __repr__(self) -> str:
        inner = ", ".join(f"{c!r}: {a!r}" for c, a in zip(self.columns, self.aggregators))
        return f"Aggregation({{{inner}}})"


def _inline_add(agg: Aggregator, i: int, namespace: dict[str, Any]) -> str | None:
    """An expression doing ``agg.add`` for column ``i`` without a call in the usual case, or None.

    Only for built-in aggregators whose ``add`` is known; the unusual cases (a
    missing field, a record out of offset order, a value that is not a dict)
    still call ``f{i}``, the aggregator's own ``add``, so the result is always
    what ``add`` returns.
    """
    template = inline_add_template(agg, i, namespace, f"f{i}", f"field{i}")
    return None if template is None else template.format(
        state="state", value="value", offset="offset", timestamp="timestamp", s=f"s{i}", x=f"x{i}")


def inline_add_template(agg: Aggregator, i: int, namespace: dict[str, Any], f: str, field: str) -> str | None:
    """:func:`_inline_add` as a template: ``{state}`` ``{value}`` ``{offset}`` ``{timestamp}`` and
    the temporaries ``{s}`` ``{x}`` are named by the caller; ``namespace`` gets ``f`` (the
    aggregator's ``add``) and ``field``. The new state as one expression (a new list where the
    state changes), for code that must not touch the old state."""
    u = inline_update(agg, i, namespace, f, field)
    if u is None:
        return None
    if u.cond is None:
        return u.expr
    if not u.apply:
        return f"({{s}} if {u.cond} else {u.call})"
    return f"({u.new} if {u.cond} else {u.call})"


class InlineUpdate(NamedTuple):
    """How generated code updates column ``i`` of a row's state list without calling ``add`` in
    the usual case. Templates as in :func:`inline_add_template`.

    * ``cond`` is None: the new state is ``expr`` (e.g. ``count``'s ``{state}[i] + 1``);
    * else when ``cond`` holds, the state ``{s}`` (bound by ``cond``) is kept, updated in place by
      the ``apply`` statements if there are any; ``new`` is the same new state as a new object;
      otherwise the new state is ``call`` (the aggregator's own ``add``).
    """

    cond: str | None
    expr: str
    apply: tuple[str, ...]
    new: str
    call: str


def inline_update(agg: Aggregator, i: int, namespace: dict[str, Any], f: str, field: str,
                  newer: bool = False) -> InlineUpdate | None:
    """The usual case of a built-in aggregator's ``add`` as templates, or None (call ``add``).

    ``newer``: the caller has checked that the record's offset is above the
    row's replay mark, hence above every offset a column holds, so the
    by-offset aggregators need not compare offsets.

    Only for built-in aggregators whose ``add`` is known; the unusual cases (a
    missing field, a record out of offset order, a value that is not a dict)
    still call ``f``, the aggregator's own ``add``, so the result is always
    what ``add`` returns (for a value that is not a dict: a ``FieldError``).
    """
    from streamlet.agg.by_offset import EarliestByOffset, LatestByOffset
    from streamlet.agg.numeric import CountAll

    kind = type(agg)
    call = f"{f}({{state}}[{i}], {{value}}, {{offset}}, {{timestamp}})"
    if kind is CountAll:
        return InlineUpdate(None, f"{{state}}[{i}] + 1", (), "", call)
    if kind is EarliestByOffset and agg.n is None:
        # a later record changes nothing once a value is held (a value that is not a dict, where
        # the field is read by name, goes through add: a bad record)
        namespace[f] = agg.add
        order = "" if newer else " and {offset} >= {s}[0]"
        dict_only = "{value}.__class__ is dict and " if agg.check is not None else ""
        return InlineUpdate(f"{dict_only}({{s}} := {{state}}[{i}]) is not None{order}", "", (), "", call)
    if kind is not LatestByOffset:
        return None
    if agg.n is None and agg.ignore_nulls and isinstance(agg.field, str):
        # a field name: v.get(field) if v is a dict; anything else goes through add itself
        namespace[f] = agg.add
        namespace[field] = agg.field
        return InlineUpdate(
            f"{{value}}.__class__ is dict and ({{x}} := {{value}}.get({field})) is not None "
            f"and ({{s}} := {{state}}[{i}]) is not None" + ("" if newer else " and {offset} >= {s}[0]"),
            "", ("{s}[0] = {offset}", "{s}[1] = {x}"), "[{offset}, {x}]", call)
    return None
