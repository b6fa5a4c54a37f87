"""Paging parameters shared by the API's list operations."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

# A page's start: bounded, so a huge or negative offset is a clear 422, not a database error.
Offset = Annotated[int, Field(ge=0, le=1_000_000_000)]

MAX_LIMIT = 500


def page(limit: int, offset: int) -> slice:
    """The slice of a list query for `limit` (clamped to 1…MAX_LIMIT) items from `offset` (validated by Offset)."""
    limit = max(1, min(limit, MAX_LIMIT))
    return slice(offset, offset + limit)
