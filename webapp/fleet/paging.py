"""Paging parameters shared by the API's list operations."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

# A page's start: bounded, so a huge or negative offset is a clear 422, not a database error.
Offset = Annotated[int, Field(ge=0, le=1_000_000_000)]
