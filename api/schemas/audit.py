"""The JSON shapes of the verifiable log's routes (RFC 9162 proofs, hashes in hex)."""

from __future__ import annotations

from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

HEX_HASH = r"^[0-9a-f]{64}$"


class InclusionOut(BaseModel):
    """An RFC 9162 §2.1.3 inclusion proof: the event's leaf in the tree of `size` leaves."""

    event_id: UUID
    leaf_index: int = Field(description="The event's leaf: its place in position order, from 0")
    size: int = Field(description="The size of the tree the proof is for")
    root: str = Field(pattern=HEX_HASH, description="That tree's root hash")
    hashes: list[str] = Field(description="The audit path, leaf end first (hex SHA-256)")


class ConsistencyOut(BaseModel):
    """An RFC 9162 §2.1.4 consistency proof: the tree of `from` leaves is a prefix of
    the tree of `to` leaves."""

    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)

    from_size: int = Field(alias="from")
    to: int
    from_root: str = Field(pattern=HEX_HASH)
    to_root: str = Field(pattern=HEX_HASH)
    hashes: list[str] = Field(description="The consistency path (hex SHA-256)")
