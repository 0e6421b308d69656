"""``StoreCache``: the record cache's former name (:class:`~streamlet.state.caching.CachingStore`)."""

from streamlet.state.caching import MISSING, CachingStore

StoreCache = CachingStore

__all__ = ["MISSING", "CachingStore", "StoreCache"]
