"""Store backends, one module each: importing this package registers all of them in
``STORE_BACKENDS`` (``lmdb`` imports its library only when a store is opened with it)."""
from miro_edge.memory.store.backends import lmdb, slots, sqlite
from miro_edge.memory.store.backends.base import STORE_BACKENDS

__all__ = ["STORE_BACKENDS", "lmdb", "slots", "sqlite"]
