"""The verifiable log: signed checkpoints, the verifier key, and RFC 9162 proofs."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import PlainTextResponse

from api.http.deps import ReadDep, Reader, ServiceDep, asked, in_worker_thread
from api.http.problem_types import problems
from api.schemas.audit import ConsistencyOut, InclusionOut
from api.schemas.queries import ConsistencyQuery, InclusionQuery

router = APIRouter(prefix="/v1/audit", tags=["audit"])
TEXT = {"content": {"text/plain": {"schema": {"type": "string"}}}}


@router.get(
    "/checkpoint",
    response_class=PlainTextResponse,
    responses={200: {**TEXT, "description": "A C2SP signed note"}, **problems(503)},
    summary="The latest signed checkpoint of the whole log",
)
async def get_checkpoint(svc: ReadDep, _: Reader) -> PlainTextResponse:
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
async def get_log_key(svc: ServiceDep, _: Reader) -> PlainTextResponse:
    """`<name>+<hex key id>+<base64(0x01‖Ed25519 public key)>`."""
    return PlainTextResponse(svc.notary.verifier_key + "\n")


@asked(
    router,
    InclusionQuery,
    "RFC 9162 inclusion proof of an event in the tree of a given size",
    404,
)
@in_worker_thread
def get_inclusion_proof(
    svc: ReadDep, _: Reader, query: Annotated[InclusionQuery, Query()]
) -> InclusionOut:
    return svc.notary.inclusion(query.event_id, query.size)


@asked(router, ConsistencyQuery, "RFC 9162 consistency proof between two tree sizes", 404)
@in_worker_thread
def get_consistency_proof(
    svc: ReadDep, _: Reader, query: Annotated[ConsistencyQuery, Query()]
) -> ConsistencyOut:
    return svc.notary.consistency(query.from_size, query.to)
