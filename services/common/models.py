"""The one base for models read from files, records and requests."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Strict(BaseModel):
    """Unknown fields are errors and a model, once read, does not change."""

    model_config = ConfigDict(extra="forbid", frozen=True)
