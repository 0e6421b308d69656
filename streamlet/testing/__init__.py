"""Test a topology without a broker: :class:`TestDriver`."""

from streamlet.testing.driver import TestDriver

__all__ = ["TestDriver"]
