"""`/v1/studies`: submit, list, read, cancel and delete studies; the study's diagnosis and
LR plot."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response, status

from service.api.deps import DatabaseDep, SettingsDep, SpecLimitsDep, StudyId
from service.api.errors import WRITE_ERRORS, error_responses
from service.api.json_body import JsonBody
from service.api.openapi import handler_name, id_links, png, png_route
from studies import store
from studies.db import StudyStatus
from studies.diagnosis import StudySummary
from studies.schemas import Chain, Page, StudyPublic
from studies.spec import StudySpec, check_submission

router = APIRouter(prefix="/v1/studies", tags=["studies"], generate_unique_id_function=handler_name)

# The spec is parsed and validated in a worker thread (see json_body.py).
SPEC_BODY = JsonBody(StudySpec)


# Where the id of the study just created leads.
STUDY_LINKS = id_links(
    "study_id",
    "$response.body#/id",
    {
        "GetStudy": "get_study",
        "ListTrials": "list_study_trials",
        "GetDiagnosis": "get_study_diagnosis",
        "GetLrPlot": "get_study_lr_plot",
        "GetChain": "get_study_chain",
        "CancelStudy": "cancel_study",
        "DeleteStudy": "delete_study",
    },
)


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=StudyPublic,
    responses={
        201: {"description": "The study, queued", "links": STUDY_LINKS},
        **error_responses(422, 503, *WRITE_ERRORS),
    },
    openapi_extra=SPEC_BODY.openapi,
)
def create_study(
    spec: Annotated[StudySpec, Depends(SPEC_BODY)],
    database: DatabaseDep,
    settings: SettingsDep,
    limits: SpecLimitsDep,
    request: Request,
    response: Response,
) -> StudyPublic:
    """Queue a study; its trials start as soon as a worker is free.

    422 names every field over this server's limits (`max_trials_per_study`, `max_epochs`) or
    a dataset path outside its data root; 429 when `max_queued_studies` are unfinished.
    Nothing is written unless the study is accepted.
    """
    check_submission(spec, limits=limits, data_root=settings.resolved_data_dir)
    study = store.submit_study(
        database,
        spec,
        artifacts_dir=settings.artifacts_dir,
        max_unfinished=settings.max_queued_studies,  # checked in the inserting transaction
    )
    response.headers["Location"] = str(request.url_for("get_study", study_id=study.id))
    return study


@router.get(
    "",
    response_model=Page[StudyPublic],
    responses=error_responses(422, 503),
)
def list_studies(
    database: DatabaseDep,
    status: Annotated[StudyStatus | None, Query(description="Only studies in this state.")] = None,
    offset: Annotated[int, Query(ge=0, le=2**31 - 1, description="Studies to skip.")] = 0,
    limit: Annotated[int, Query(ge=1, le=500, description="Most studies to return.")] = 50,
) -> Page[StudyPublic]:
    """Studies, newest first; `count` is the total that match the filter."""
    return store.list_studies(database, status=status, offset=offset, limit=limit)


@router.get(
    "/{study_id}",
    response_model=StudyPublic,
    responses=error_responses(404, 422, 503),
)
def get_study(study_id: StudyId, database: DatabaseDep) -> StudyPublic:
    """One study: status, counts per trial state, best trial, progress."""
    return store.get_study(database, study_id)


@router.get(
    "/{study_id}/chain",
    response_model=Chain,
    responses=error_responses(404, 422, 503),
)
def get_study_chain(study_id: StudyId, database: DatabaseDep) -> Chain:
    """The follow-up chain this study belongs to (`follow_up.max_rounds`), first round to
    last: each round's status, best trial, its label and objective value, and why the next
    round was taken or the loop stopped (`chain_reason`; null while undecided). A study
    without follow-up rounds is a chain of one."""
    return store.study_chain(database, study_id)


@router.post(
    "/{study_id}/cancel",
    response_model=StudyPublic,
    responses=error_responses(404, 409, 422, 503, *WRITE_ERRORS),
)
def cancel_study(study_id: StudyId, database: DatabaseDep) -> StudyPublic:
    """Cancel a study: queued trials never start, running ones stop at their next epoch;
    the follow-up rounds after it are cancelled too and its chain takes no new round.
    409 when nothing is left to stop."""
    return store.cancel_study(database, study_id)


@router.delete(
    "/{study_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=error_responses(404, 409, 422, 503, *WRITE_ERRORS),
)
def delete_study(study_id: StudyId, database: DatabaseDep, settings: SettingsDep) -> Response:
    """Delete a finished or cancelled study: its trials, epochs, attempts, its Optuna study
    and its plot files. 409 while it may still run: cancel it first, and delete it once its
    running trials have stopped (at their next epoch)."""
    store.delete_study(database, study_id, artifacts_dir=settings.artifacts_dir)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get(
    "/{study_id}/diagnosis",
    response_model=StudySummary,
    responses=error_responses(404, 422, 503),
)
def get_study_diagnosis(
    study_id: StudyId, database: DatabaseDep, limits: SpecLimitsDep
) -> StudySummary:
    """Labels by learning rate, the usable LR window, the next step and a follow-up spec
    within this server's limits (`max_trials_per_study`, `max_epochs`), ready to submit."""
    return store.study_diagnosis(database, study_id, limits=limits)


@png_route(router, "/{study_id}/lr.png")
def get_study_lr_plot(study_id: StudyId, database: DatabaseDep) -> Response:
    """Validation accuracy against learning rate, points colored by label."""
    return png(store.study_lr_png(database, study_id))


@png_route(router, "/{study_id}/lr_range.png")
def get_study_lr_range_plot(study_id: StudyId, database: DatabaseDep) -> Response:
    """An LR range test's loss against learning rate, the suggested rate marked; 404 when
    the study is not a range test (search.sampler range_test) or its test has not run."""
    return png(store.study_lr_range_png(database, study_id))
