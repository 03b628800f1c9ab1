"""`POST /v1/diagnose`: label any curves, from any framework, without storing anything."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from service.api.errors import error_responses
from service.api.json_body import JsonBody
from studies.diagnosis import Curves, Diagnosis, diagnose_run

router = APIRouter(prefix="/v1", tags=["diagnose"])

# Curves are parsed and validated in a worker thread (see json_body.py).
CURVES_BODY = JsonBody(Curves)


@router.post(
    "/diagnose",
    response_model=Diagnosis,
    responses=error_responses(422),
    openapi_extra=CURVES_BODY.openapi,
)
def diagnose(curves: Annotated[Curves, Depends(CURVES_BODY)]) -> Diagnosis:
    """Diagnose one run's curves JSON (`null` stands for a non-finite value)."""
    return diagnose_run(curves)
