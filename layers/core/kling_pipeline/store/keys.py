"""Partition keys of the generations table, shared by the document stores and the items kept beside a
document (callback receipts, webhook deliveries)."""

from __future__ import annotations

GENERATION_KIND = "GEN"


def partition_key(kind: str, document_id: str) -> str:
    """The partition a document shares with the items kept beside it."""
    return f"{kind}#{document_id}"
