"""How a worker stops (``Runner.run``'s last step): the HTTP side first, then the final commit (or the
abort / abandon after a failure), the standbys, the restores and the tasks, leaving the group, the
stores and the producer's flush — in this order, so that nothing is committed that was not processed
and a rebalance while closing starts no task."""

from __future__ import annotations

import logging
from typing import Any

from confluent_kafka import KafkaException

from streamlet.errors import StreamletError
from streamlet.runtime.lifecycle import CLOSE_TIMEOUT_S, close_within
from streamlet.runtime.transactions import ExactlyOnceCheckpoint

log = logging.getLogger("streamlet.runtime")


def shutdown(runner: Any, clean: bool) -> None:
    """Stop ``runner``'s worker; ``clean``: commit what was processed (False after a failure)."""
    runner.ready.clear()
    if runner.http is not None:
        runner.http.stop()
    if runner.consumer is None:
        return
    if not clean and isinstance(runner.committer, ExactlyOnceCheckpoint):
        runner.committer.abort("the worker stops after a failure")  # read_committed readers go on now
    elif not clean and runner.committer is not None:
        runner.committer.abandon()  # closing the consumer revokes, and the revoke callback commits
    try:
        if clean and runner.committer is not None:
            try:
                runner.committer.commit()
            except StreamletError as exc:
                log.error("final commit failed: %s", exc)
        if runner.standbys is not None:
            runner.standbys.close()
            runner.standbys = None
        if runner.updater is not None:
            runner.updater.close()
        if runner.tasks is not None:
            runner.tasks.close_all()
            runner.tasks.tasks.clear()
        runner.closing = True  # an assignment the group hands out while the consumer closes is ignored
        close_within(runner.consumer, CLOSE_TIMEOUT_S)
        if runner.state is not None:
            runner.state.close()
        if runner.global_state is not None:
            runner.global_state.close()
            runner.global_state = None
    except KafkaException as exc:
        log.warning("error while leaving the group: %s", exc)
    finally:
        if runner.producer is not None:
            runner.producer.flush(10)
        runner.consumer = None
        runner.producer = None
        runner.admin = None
