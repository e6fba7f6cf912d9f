"""The store's own exceptions (both in the ``StoreError`` family of ``miro_edge.errors``)."""
from miro_edge.errors import StoreError


class RecordNotFoundError(StoreError, KeyError):
    """No record has this id (never ingested, or evicted/deleted since)."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class StoreVersionError(StoreError):
    """The store was written in a format this version of miro_edge cannot read."""
