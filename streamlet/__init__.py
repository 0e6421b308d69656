"""streamlet — Kafka Streams-style stream processing in Python, no JVM.

    import streamlet as sl

    app = sl.App("orders-app", brokers="embedded")
    orders = app.stream("orders")
    orders.filter(lambda k, v: v["amount"] > 100).to("big-orders")
    app.run()
"""

from typing import Any

from streamlet import errors, serde, testing
from streamlet.app import App
from streamlet.dsl.global_table import GlobalKTable
from streamlet.dsl.grouped import KGroupedStream, KGroupedTable
from streamlet.dsl.split import BranchedStreams
from streamlet.dsl.stream import KStream
from streamlet.dsl.table import KTable
from streamlet.record import Record, Windowed
from streamlet.topology.windows import Hopping, Session, Sliding, Tumbling
from streamlet.topology.punctuation import Cancellable, Processor, ProcessorContext, PunctuationType

__version__ = "0.1.0"

__all__ = ["App", "KStream", "KTable", "GlobalKTable", "KGroupedStream", "KGroupedTable", "BranchedStreams", "Record",
           "Windowed", "Tumbling", "Hopping", "Sliding", "Session",
           "Processor", "ProcessorContext", "PunctuationType", "Cancellable",
           "agg", "serde", "testing", "errors", "__version__"]

#: Public names that later issues build; using one says so clearly.
_NOT_BUILT_YET = {
    "JoinWindows": "stream–stream joins",
}


def __getattr__(name: str) -> Any:
    if name == "agg":
        import importlib

        return importlib.import_module("streamlet.agg")
    if name in _NOT_BUILT_YET:
        raise NotImplementedError(
            f"sl.{name} is not built yet: {_NOT_BUILT_YET[name]} land in a later release; "
            "streams, tables, aggregations and stream–table joins work today"
        )
    raise AttributeError(f"module 'streamlet' has no attribute {name!r}")
