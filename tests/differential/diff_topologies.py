"""The Python side of the differential test: each topology mirrors the Java one of the same name.

``tools/kstreams-diff/src/main/java/dev/streamlet/kdiff/Topologies.java`` defines the Kafka Streams
twin of every function here, operator for operator (docs/testing.md has the table). Functions test
``v is None`` where the Java ones test ``null``, so that a tombstone reaching a function shows as an
output difference rather than a crash on one side.
"""

from __future__ import annotations

from typing import Callable

import streamlet as sl

#: topology name → (builder, output topics, input topics)
TOPOLOGIES: dict[str, tuple[Callable[[sl.App], None], list[str], list[str]]] = {}


def topology(name: str, outputs: list[str], inputs: list[str]):
    def register(fn: Callable[[sl.App], None]) -> Callable[[sl.App], None]:
        TOPOLOGIES[name] = (fn, outputs, inputs)
        return fn
    return register


def build(name: str) -> sl.App:
    """A fresh app holding topology ``name``."""
    app = sl.App(f"kdiff-{name}")
    TOPOLOGIES[name][0](app)
    return app


def big(k, v) -> bool:
    return v is not None and v["amount"] > 50


@topology("stateless", ["filtered", "filtered-not", "mapped", "mapped-values", "flat-mapped",
                        "flat-mapped-values", "rekeyed", "small", "medium", "large"], ["in"])
def stateless(app: sl.App) -> None:
    s = app.stream("in")
    s.filter(big).to("filtered")
    s.filter_not(big).to("filtered-not")
    s.map(lambda k, v: (None if v is None else v["tag"],
                        None if v is None else {"key": k, "double": v["amount"] * 2})).to("mapped")
    s.map_values(lambda v: None if v is None else {**v, "big": v["amount"] > 50}).to("mapped-values")
    s.flat_map(lambda k, v: [] if v is None else [(v["tag"], {"i": i, "amount": v["amount"]})
                                                  for i in range(v["amount"] % 3)]).to("flat-mapped")
    s.flat_map_values(lambda v: [] if v is None else [v["amount"]] * (v["amount"] % 3)) \
        .to("flat-mapped-values")
    s.select_key(lambda k, v: None if v is None else v["user"]).to("rekeyed")
    branches = (s.split(name="size-")
                .branch(lambda k, v: v is not None and v["amount"] < 30, name="small")
                .branch(lambda k, v: v is not None and v["amount"] < 70, name="medium")
                .default_branch(name="large"))
    for size in ("small", "medium", "large"):
        branches[f"size-{size}"].to(size)


@topology("count", ["counts-out"], ["in"])
def count(app: sl.App) -> None:
    app.stream("in").group_by_key().count(name="counts").to_stream().to("counts-out")


@topology("reduce", ["reduced-out"], ["in"])
def reduce(app: sl.App) -> None:
    (app.stream("in").group_by_key()
     .reduce(lambda a, v: {"amount": a["amount"] + v["amount"], "user": v["user"]}, name="reduced")
     .to_stream().to("reduced-out"))


def _add(k, v, agg):
    return {"n": agg["n"] + 1, "sum": agg["sum"] + v["amount"], "tags": (agg["tags"] + [v["tag"]])[-3:]}


@topology("aggregate", ["agg-out"], ["in"])
def aggregate(app: sl.App) -> None:
    (app.stream("in").group_by_key()
     .aggregate(lambda: {"n": 0, "sum": 0, "tags": []}, _add, name="agg")
     .to_stream().to("agg-out"))


@topology("stream-group-by", ["per-user-out"], ["in"])
def stream_group_by(app: sl.App) -> None:
    (app.stream("in").group_by(lambda k, v: None if v is None else v["user"])
     .count(name="per-user").to_stream().to("per-user-out"))


@topology("table-group-by", ["city-counts", "city-ages"], ["users"])
def table_group_by(app: sl.App) -> None:
    users = app.table("users")
    users.group_by(lambda k, v: v["city"]).count(name="per-city").to_stream().to("city-counts")
    (users.group_by(lambda k, v: v["city"])
     .aggregate(lambda: 0, lambda k, v, agg: agg + v["age"], lambda k, v, agg: agg - v["age"],
                name="age-sum")
     .to_stream().to("city-ages"))


@topology("table-to-stream", ["users-changes"], ["users"])
def table_to_stream(app: sl.App) -> None:
    app.table("users").to_stream().to("users-changes")


@topology("table-filter", ["older"], ["users"])
def table_filter(app: sl.App) -> None:
    (app.table("users").filter(lambda k, v: v["age"] >= 30).map_values(lambda v: v["city"])
     .to_stream().to("older"))


@topology("stream-table-join", ["enriched", "enriched-left"], ["in", "users"])
def stream_table_join(app: sl.App) -> None:
    orders, users = app.stream("in"), app.table("users")
    orders.join(users, lambda o, u: {"amount": None if o is None else o["amount"],
                                     "city": u["city"]}).to("enriched")
    orders.left_join(users, lambda o, u: {"amount": None if o is None else o["amount"],
                                          "city": None if u is None else u["city"]}).to("enriched-left")


@topology("named-aggregators", ["summary-out"], ["in"])
def named_aggregators(app: sl.App) -> None:
    (app.stream("in").group_by_key()
     .aggregate(n=sl.agg.count(), total=sl.agg.sum("amount"),
                low=sl.agg.min("amount"), high=sl.agg.max("amount"),
                first=sl.agg.first_value("user"), latest=sl.agg.latest_by_offset("user"),
                earliest=sl.agg.earliest_by_offset("user"), users=sl.agg.collect_list("user"),
                tags=sl.agg.collect_set("tag"), top=sl.agg.top_k("amount", 2), name="summary")
     .to_stream().to("summary-out"))


def _tag_age(o, u):
    return {"tag": None if o is None else o["tag"], "age": None if u is None else u["age"]}


@topology("rekeyed-join", ["by-amount", "by-amount-left"], ["in", "in2", "users"])
def rekeyed_join(app: sl.App) -> None:
    orders = (app.stream("in").merge(app.stream("in2"))
              .select_key(lambda k, v: None if v is None else f"k{v['amount'] % 6}"))  # repartitioned
    users = app.table("users")
    orders.join(users, _tag_age).to("by-amount")
    orders.left_join(users, _tag_age).to("by-amount-left")


@topology("derived-table-join", ["older-cities"], ["in", "users"])
def derived_table_join(app: sl.App) -> None:
    older = app.table("users").filter(lambda k, v: v["age"] >= 30).map_values(lambda v: v["city"])
    (app.stream("in")
     .left_join(older, lambda o, city: {"amount": None if o is None else o["amount"], "city": city})
     .to("older-cities"))


def _city_plan(u, a):
    """A table–table joiner: a left join passes ``a=None``, an outer join either side ``None``."""
    return {"city": None if u is None else u["city"], "plan": None if a is None else a["plan"]}


@topology("table-table-join", ["tt-inner", "tt-left", "tt-outer"], ["users", "accounts"])
def table_table_join(app: sl.App) -> None:
    users, accounts = app.table("users"), app.table("accounts")
    users.join(accounts, _city_plan).to_stream().to("tt-inner")
    users.left_join(accounts, _city_plan).to_stream().to("tt-left")
    users.outer_join(accounts, _city_plan).to_stream().to("tt-outer")


@topology("table-join-filter", ["tt-gold"], ["users", "accounts"])
def table_join_filter(app: sl.App) -> None:
    (app.table("users").join(app.table("accounts"), _city_plan)
     .filter(lambda k, v: v["plan"] == "gold").to_stream().to("tt-gold"))


# -- windows ----------------------------------------------------------------------------------------
def window_key(w, v):
    return f"{w.key}@{w.start}/{w.end}", v


@topology("windowed-changes", ["tumbling-counts", "hopping-sums"], ["in"])
def windowed_changes(app: sl.App) -> None:
    s = app.stream("in")
    (s.group_by_key().windowed_by(sl.Tumbling(1000, grace=300)).count(name="tumbling-counts")
     .to_stream().map(window_key).to("tumbling-counts"))
    (s.group_by_key().windowed_by(sl.Hopping(1000, 500, grace=0))
     .aggregate(lambda: 0, lambda k, v, agg: agg + v["amount"], name="hopping-sums")
     .to_stream().map(window_key).to("hopping-sums"))


@topology("windowed-final", ["tumbling-final"], ["in"])
def windowed_final(app: sl.App) -> None:
    (app.stream("in").group_by_key().windowed_by(sl.Tumbling(1000, grace=200)).emit_final()
     .count(name="tumbling-final").to_stream().map(window_key).to("tumbling-final"))


@topology("windowed-final-hopping", ["hopping-final"], ["in"])
def windowed_final_hopping(app: sl.App) -> None:
    s = app.stream("in")
    (s.group_by_key().windowed_by(sl.Hopping(1500, 500, grace=100)).emit_final()
     .aggregate(lambda: 0, lambda k, v, agg: agg + v["amount"], name="hopping-final")
     .to_stream().map(window_key).to("hopping-final"))


@topology("session-windows", ["session-counts", "session-sums", "session-final"], ["in"])
def session_windows(app: sl.App) -> None:
    s = app.stream("in")
    gap300 = sl.Session(300, grace=200)
    (s.group_by_key().windowed_by(gap300).count(name="session-counts")
     .to_stream().map(window_key).to("session-counts"))
    (s.group_by_key().windowed_by(sl.Session(150, grace=0))
     .aggregate(lambda: 0, lambda k, v, agg: agg + v["amount"], merger=lambda k, a, b: a + b, name="session-sums")
     .to_stream().map(window_key).to("session-sums"))
    (s.group_by_key().windowed_by(gap300).emit_final().count(name="session-final")
     .to_stream().map(window_key).to("session-final"))


@topology("sliding-windows", ["sliding-counts", "sliding-sums"], ["in"])
def sliding_windows(app: sl.App) -> None:
    s = app.stream("in")
    (s.group_by_key().windowed_by(sl.Sliding(300, grace=200)).count(name="sliding-counts")
     .to_stream().map(window_key).to("sliding-counts"))
    (s.group_by_key().windowed_by(sl.Sliding(1500, grace=0))
     .aggregate(lambda: 0, lambda k, v, agg: agg + v["amount"], name="sliding-sums")
     .to_stream().map(window_key).to("sliding-sums"))


@topology("sliding-final", ["sliding-final"], ["in"])
def sliding_final(app: sl.App) -> None:
    (app.stream("in").group_by_key().windowed_by(sl.Sliding(300, grace=100)).emit_final()
     .count(name="sliding-final").to_stream().map(window_key).to("sliding-final"))


def _by_user(k, v):
    """The global table's lookup key from a stream value: ``"u2"`` → ``"k2"``; ``None`` without a user."""
    return None if v is None or v["user"] is None else "k" + v["user"][1:]


def _amount_vat(o, c):
    return {"amount": None if o is None else o["amount"], "vat": None if c is None else c["vat"]}


@topology("global-table-join", ["gt-inner", "gt-left", "gt-by-key"], ["in", "countries"])
def global_table_join(app: sl.App) -> None:
    countries, orders = app.global_table("countries"), app.stream("in")
    orders.join(countries, _amount_vat, key_selector=_by_user).to("gt-inner")
    orders.left_join(countries, _amount_vat, key_selector=_by_user).to("gt-left")
    orders.left_join(countries, _amount_vat, key_selector=lambda k, v: k).to("gt-by-key")


def _level_city(m, u):
    """A foreign-key joiner: a left join passes ``u=None`` when the membership's user has no row."""
    return {"level": m["level"], "city": None if u is None else u["city"]}


def _user_of(m):
    """The foreign key of a membership: a key of 'users', or None."""
    return m["user"]


@topology("fk-join", ["fk-inner", "fk-left"], ["memberships", "users"])
def fk_join(app: sl.App) -> None:
    memberships, users = app.table("memberships"), app.table("users")
    memberships.join(users, _level_city, foreign_key=_user_of, name="fk-inner").to_stream().to("fk-inner")
    memberships.left_join(users, _level_city, foreign_key=_user_of, name="fk-left").to_stream().to("fk-left")
