"""Identifiers: sortable, prefixed, safe to use as Step Functions execution names and S3 keys."""

from __future__ import annotations

from ulid import ULID


def new_generation_id() -> str:
    return f"gen_{ULID()}"


def new_element_id() -> str:
    return f"elm_{ULID()}"


def new_upload_id() -> str:
    return f"upl_{ULID()}"
