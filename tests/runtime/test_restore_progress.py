"""The restore progress bar: shown on a terminal, absent otherwise."""

from __future__ import annotations

import io

from rich.console import Console

from streamlet.runtime.restore_progress import RestoreProgress


def test_a_bar_per_store_partition_on_a_terminal() -> None:
    out = io.StringIO()
    progress = RestoreProgress(Console(file=out, force_terminal=True, width=100), enabled=True)
    update = progress.callback("summary", 3)
    assert update is not None
    update(500, 2_000)
    update(2_000, 2_000)
    progress.close()
    text = out.getvalue()
    assert "restoring summary [3]" in text and "2000/2000" in text
    assert progress.restores == {("summary", 3): (2_000, 2_000)}


def test_no_bar_without_a_terminal_but_the_figures_are_kept_for_metrics() -> None:
    out = io.StringIO()
    progress = RestoreProgress(Console(file=out, force_terminal=True, width=100), enabled=False)
    update = progress.callback("summary", 0)
    assert progress.restores == {("summary", 0): (0, 0)}
    update(300, 200)  # a restore may find more than the end it was told
    progress.close()
    assert out.getvalue() == "" and progress.restores == {("summary", 0): (300, 300)}
