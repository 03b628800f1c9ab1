"""Trials: a study's trials, one trial with its curves, its diagnosis, its curves plot and its
checkpoint (the trained model, as a file download)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response
from fastapi.responses import FileResponse

from service.api.deps import DatabaseDep, SettingsDep, StudyId, TrialId
from service.api.errors import error_responses
from service.api.openapi import handler_name, id_links, png, png_route
from studies import store
from studies.diagnosis import Diagnosis
from studies.schemas import Page, TrialDetail, TrialPublic

router = APIRouter(prefix="/v1", tags=["trials"], generate_unique_id_function=handler_name)

CHECKPOINT: dict[int | str, dict[str, Any]] = {
    200: {
        "content": {"application/octet-stream": {}},
        "description": "The checkpoint file (torch.save; loads with "
        "`trainer.load_checkpoint`, or `torch.load(..., weights_only=True)`)",
    }
}


# OpenAPI links: a listed trial's id leads to its pages (the first trial's, for tools such
# as schemathesis's stateful phase that follow links to reach real ids). Not its checkpoint:
# a listed trial has none until it completes (a 404 a link-follower takes for a bug).
TRIAL_LINKS = id_links(
    "trial_id",
    "$response.body#/data/0/id",
    {
        "GetTrial": "get_trial",
        "GetTrialDiagnosis": "get_trial_diagnosis",
        "GetCurvesPlot": "get_trial_curves_plot",
    },
)


@router.get(
    "/studies/{study_id}/trials",
    response_model=Page[TrialPublic],
    responses={
        200: {"description": "The study's trials", "links": TRIAL_LINKS},
        **error_responses(404, 422, 503),
    },
)
def list_study_trials(study_id: StudyId, database: DatabaseDep) -> Page[TrialPublic]:
    """Every trial of a study, in trial-number order."""
    return store.list_trials(database, study_id)


@router.get(
    "/trials/{trial_id}",
    response_model=TrialDetail,
    responses=error_responses(404, 422, 503),
)
def get_trial(trial_id: TrialId, database: DatabaseDep, settings: SettingsDep) -> TrialDetail:
    """Params, state, worker, device, timings, error text (paths relative to the data root)
    and the full curves JSON."""
    return store.get_trial(database, trial_id, data_root=settings.resolved_data_dir)


@router.get(
    "/trials/{trial_id}/diagnosis",
    response_model=Diagnosis,
    responses=error_responses(404, 409, 422, 503),
)
def get_trial_diagnosis(trial_id: TrialId, database: DatabaseDep) -> Diagnosis:
    """The label of the trial's curves, with evidence and recommended next steps."""
    return store.trial_diagnosis(database, trial_id)


@png_route(router, "/trials/{trial_id}/curves.png")
def get_trial_curves_plot(trial_id: TrialId, database: DatabaseDep) -> Response:
    """Train/val loss and accuracy per epoch, best epoch marked, label in the title."""
    return png(store.trial_curves_png(database, trial_id))


@router.get(
    "/trials/{trial_id}/checkpoint",
    response_class=FileResponse,
    responses={**CHECKPOINT, **error_responses(404, 422, 503)},
)
def get_trial_checkpoint(
    trial_id: TrialId, database: DatabaseDep, settings: SettingsDep
) -> FileResponse:
    """The trial's best-epoch checkpoint (by the study's objective): weights, model and data
    config, class names, normalization statistics. 404 says why there is none: the trial
    is not complete, its checkpoint was deleted by retention (the study keeps its best
    `keep_checkpoints`), or skipped because the artifact store was full."""
    stored = store.trial_checkpoint(database, trial_id, artifacts_dir=settings.artifacts_dir)
    return FileResponse(
        stored.path, media_type="application/octet-stream", filename=stored.download_name
    )
