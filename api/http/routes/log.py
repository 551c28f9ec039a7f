"""The verifiable log: signed checkpoints, the verifier key, and RFC 9162 proofs."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import PlainTextResponse

from api.http.deps import Reader, ServiceDep, in_worker_thread
from api.http.params import EventIdQuery, TreeSize
from api.http.problem_types import problems
from api.schemas.audit import ConsistencyOut, InclusionOut
from api.schemas.inputs import MAX_POSITION

router = APIRouter(prefix="/v1/audit", tags=["audit"])
TEXT = {"content": {"text/plain": {"schema": {"type": "string"}}}}


@router.get(
    "/checkpoint",
    response_class=PlainTextResponse,
    responses={200: {**TEXT, "description": "A C2SP signed note"}, **problems(503)},
    summary="The latest signed checkpoint of the whole log",
)
async def checkpoint(svc: ServiceDep, _: Reader) -> PlainTextResponse:
    """Origin, tree size and base64 Merkle root, a blank line, and the Ed25519 signature
    line; it covers every event recorded more than two seconds earlier. The header
    `Checkpoint-Signed-At` says when it was signed."""
    latest = await run_in_threadpool(svc.notary.checkpoint)
    return PlainTextResponse(latest.note, headers={"Checkpoint-Signed-At": latest.signed_at})


@router.get(
    "/key",
    response_class=PlainTextResponse,
    responses={200: {**TEXT, "description": "The signed-note verifier key"}, **problems(503)},
    summary="The key that verifies checkpoints",
)
async def key(svc: ServiceDep, _: Reader) -> PlainTextResponse:
    """`<name>+<hex key id>+<base64(0x01‖Ed25519 public key)>`."""
    return PlainTextResponse(svc.notary.verifier_key + "\n")


@router.get(
    "/proof/inclusion",
    response_model=InclusionOut,
    responses=problems(404, 422, 503),
    summary="RFC 9162 inclusion proof of an event in the tree of a given size",
)
@in_worker_thread
def inclusion(
    svc: ServiceDep, _: Reader, event_id: EventIdQuery, size: TreeSize = None
) -> InclusionOut:
    return svc.notary.inclusion(event_id, size)


@router.get(
    "/proof/consistency",
    response_model=ConsistencyOut,
    responses=problems(404, 422, 503),
    summary="RFC 9162 consistency proof between two tree sizes",
)
@in_worker_thread
def consistency(
    svc: ServiceDep,
    _: Reader,
    from_size: Annotated[
        int, Query(alias="from", ge=0, le=MAX_POSITION, description="The earlier tree size")
    ],
    to: TreeSize = None,
) -> ConsistencyOut:
    return svc.notary.consistency(from_size, to)
