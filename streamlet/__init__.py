"""streamlet — Kafka Streams-style stream processing in Python, no JVM.

    import streamlet as sl

    app = sl.App("orders-app", brokers="embedded")
    orders = app.stream("orders")
    orders.filter(lambda k, v: v["amount"] > 100).to("big-orders")
    app.run()
"""

from streamlet import errors, serde, testing
from streamlet.app import App
from streamlet.dsl.split import BranchedStreams
from streamlet.dsl.stream import KStream
from streamlet.record import Record

__version__ = "0.1.0"

__all__ = ["App", "KStream", "BranchedStreams", "Record", "serde", "testing", "errors", "__version__"]
