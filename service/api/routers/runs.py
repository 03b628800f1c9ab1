"""`/v1/runs`: a user's own training loop streams its epochs and gets the live verdict back.

`POST /v1/runs` starts a run, `POST /v1/runs/{id}/epochs` logs one epoch and answers
`continue` or `stop` (the worker's live divergence check), `POST /v1/runs/{id}/finish` ends
it with the full diagnosis; `GET` reads a run, the runs of a project, a run's diagnosis;
`DELETE /v1/runs/{id}` removes a run with its epochs and its Optuna trial.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request, Response, status
from fastapi.exceptions import RequestValidationError

from service.api.deps import DatabaseDep
from service.api.errors import WRITE_ERRORS, error_responses
from service.api.json_body import JsonBody
from service.api.openapi import handler_name, id_links
from studies import runs
from studies.diagnosis import Diagnosis
from studies.schemas import Page

router = APIRouter(prefix="/v1/runs", tags=["runs"], generate_unique_id_function=handler_name)

RunId = Annotated[int, Path(ge=1, le=2**31 - 1, description="sweepdoc's id of the run.")]
CREATE_BODY = JsonBody(runs.RunCreate)
EPOCH_BODY = JsonBody(runs.EpochLog)

# Where a new run's id leads.
RUN_LINKS = id_links(
    "run_id",
    "$response.body#/id",
    {
        "GetRun": "get_run",
        "LogEpoch": "log_run_epoch",
        "FinishRun": "finish_run",
        "GetRunDiagnosis": "get_run_diagnosis",
        "DeleteRun": "delete_run",
    },
)


@contextmanager
def _epoch_refused_as_422() -> Iterator[None]:
    """An epoch that does not fit its run is a 422 naming the field, as a malformed one."""
    try:
        yield
    except runs.RunInputError as exc:
        raise RequestValidationError(
            [{"type": "invalid_epoch", "loc": ("body", exc.field), "msg": exc.reason}]
        ) from None


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=runs.RunPublic,
    responses={
        201: {"description": "The run, running", "links": RUN_LINKS},
        **error_responses(409, 422, 503, *WRITE_ERRORS),
    },
    openapi_extra=CREATE_BODY.openapi,
)
def create_run(
    body: Annotated[runs.RunCreate, Depends(CREATE_BODY)],
    database: DatabaseDep,
    request: Request,
    response: Response,
) -> runs.RunPublic:
    """Start a run of your own training loop in a project (the project's Optuna study,
    `runs:<project>`, is created by its first run). 409 when the project's study optimizes
    another objective."""
    run = runs.create_run(database, body)
    response.headers["Location"] = str(request.url_for("get_run", run_id=run.id))
    return run


@router.get(
    "",
    response_model=Page[runs.RunPublic],
    responses=error_responses(422, 503),
)
def list_runs(
    database: DatabaseDep,
    project: Annotated[str | None, Query(max_length=80, description="Only its runs.")] = None,
    offset: Annotated[int, Query(ge=0, le=2**31 - 1, description="Runs to skip.")] = 0,
    limit: Annotated[int, Query(ge=1, le=500, description="Most runs to return.")] = 50,
) -> Page[runs.RunPublic]:
    """Runs, newest first; `count` is the total that match."""
    return runs.list_runs(database, project=project, offset=offset, limit=limit)


@router.get(
    "/{run_id}",
    response_model=runs.RunDetail,
    responses=error_responses(404, 422, 503),
)
def get_run(run_id: RunId, database: DatabaseDep) -> runs.RunDetail:
    """One run: state, parameters, curves (null for non-finite values), its diagnosis."""
    return runs.get_run(database, run_id)


@router.post(
    "/{run_id}/epochs",
    response_model=runs.Verdict,
    responses=error_responses(404, 409, 422, 503, *WRITE_ERRORS),
    openapi_extra=EPOCH_BODY.openapi,
)
def log_run_epoch(
    run_id: RunId,
    body: Annotated[runs.EpochLog, Depends(EPOCH_BODY)],
    database: DatabaseDep,
) -> runs.Verdict:
    """Log one finished epoch; the answer says `continue`, or `stop` with the reason (the
    live divergence check sweepdoc's own workers run). Resending an epoch with the same
    values gets the same answer; other values are a 409; a gap in the epoch numbers, or
    other metrics than the first epoch's, a 422 naming the field."""
    with _epoch_refused_as_422():
        return runs.log_epoch(database, run_id, body)


@router.post(
    "/{run_id}/finish",
    response_model=runs.RunPublic,
    responses=error_responses(404, 409, 422, 503, *WRITE_ERRORS),
)
def finish_run(run_id: RunId, database: DatabaseDep) -> runs.RunPublic:
    """End the run with its full diagnosis (its Optuna trial COMPLETE). Finishing an ended
    run (finished, or stopped by the live check) returns it as it is; 409 without epochs."""
    return runs.finish_run(database, run_id)


@router.delete(
    "/{run_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=error_responses(404, 422, 503, *WRITE_ERRORS),
)
def delete_run(run_id: RunId, database: DatabaseDep) -> Response:
    """Delete a run, running or ended: its epochs and its Optuna trial go with it (the
    project's later trials are renumbered, as Optuna numbers trials without gaps). A loop
    still posting to it then gets 404; deleting it again is a 404 too."""
    runs.delete_run(database, run_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get(
    "/{run_id}/diagnosis",
    response_model=Diagnosis,
    responses=error_responses(404, 409, 422, 503),
)
def get_run_diagnosis(run_id: RunId, database: DatabaseDep) -> Diagnosis:
    """The run's diagnosis, the shape of a trial's: final once it ended, provisional (its
    epochs so far) while it runs; 409 before its first epoch."""
    return runs.run_diagnosis(database, run_id)
