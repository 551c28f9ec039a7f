"""One stream's whole history, and the commodity catalogue."""

from __future__ import annotations

from fastapi import APIRouter

from api.http.deps import Reader, ServiceDep, in_worker_thread
from api.http.params import AuthorityPath, CommodityPath, CountryPath
from api.http.problem_types import problems
from api.schemas.answers import CommoditiesOut, CommodityOut, StreamOut
from api.schemas.inputs import located
from domain.catalogue import CATALOGUE
from domain.keys import StreamKey

router = APIRouter(prefix="/v1", tags=["streams"])


@router.get(
    "/streams/{authority}/{country}/{commodity}",
    response_model=StreamOut,
    responses=problems(
        404, 422, 503, _404="No such route: a path parameter holding `/` names no stream"
    ),
    summary="Every event of one stream, in version order",
)
@in_worker_thread
def get_stream(
    authority: AuthorityPath,
    country: CountryPath,
    commodity: CommodityPath,
    svc: ServiceDep,
    _: Reader,
) -> StreamOut:
    """A stream with no events answers version 0 and no events."""
    key = located(("path",), lambda: StreamKey.parse(authority, country, commodity))
    return svc.stream(key)


@router.get(
    "/commodities",
    response_model=CommoditiesOut,
    responses=problems(422),
    summary="The commodity catalogue",
)
async def list_commodities(_: Reader) -> CommoditiesOut:
    return CommoditiesOut(
        commodities=[
            CommodityOut(
                slug=c.slug, hs_code=c.hs_code, name=c.name, hs_prefixes=list(c.hs_prefixes)
            )
            for c in CATALOGUE
        ]
    )
