"""`POST /v1/diagnose`: label any curves, from any framework, without storing anything."""

from __future__ import annotations

from fastapi import APIRouter

from service.api.errors import error_responses
from studies.diagnosis import Curves, Diagnosis, diagnose_run

router = APIRouter(prefix="/v1", tags=["diagnose"])


@router.post("/diagnose", response_model=Diagnosis, responses=error_responses(422))
def diagnose(curves: Curves) -> Diagnosis:
    """Diagnose one run's curves JSON (`null` stands for a non-finite value)."""
    return diagnose_run(curves)
