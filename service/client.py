"""The public Python client of a sweepdoc server's `/v1` API (the CLI's too).

```python
from pathlib import Path
from service.client import SweepdocClient
from studies.spec import load_spec_file

with SweepdocClient("http://127.0.0.1:8000", token="...") as client:
    study = client.submit(load_spec_file(Path("study.yaml")))
    for trial in client.trials(study.id).data:
        print(trial.params["lr"], trial.label)
```

Every method returns the server's answer as a pydantic model (the same models the server
answers with: ``StudyPublic``, ``TrialDetail``, ``Diagnosis``, ``RunPublic``, ``Verdict``, …)
or bytes for images, and raises a ``service.client_errors.ApiError`` subclass for an error
answer (``InvalidRequest`` with the rejected fields, ``NotFound``, ``Conflict``, …).

Token: the ``token`` argument; ``client_for`` falls back to ``SWEEPDOC_API_TOKEN``, as every
command does. Calls that are safe to repeat (reads, an epoch, finishing a run) are retried
on a lost connection, a 503 and a 429 (after its ``Retry-After``), ``retries`` times.
"""

from __future__ import annotations

import time
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, Self, TypeVar

import httpx
from pydantic import BaseModel

from service.client_errors import (
    ApiError,
    Conflict,
    ErrorItem,
    InvalidRequest,
    NotFound,
    RateLimited,
    ServerBusy,
    ServerUnreachable,
    Unauthorized,
    error_from_response,
)
from service.settings import get_settings
from studies.db import StudyStatus
from studies.diagnosis import Curves, Diagnosis
from studies.runlogs import CurveMapping
from studies.runs import EpochLog, RunCreate, RunDetail, RunPublic, Verdict
from studies.schemas import Chain, Page, Readiness, StudyPublic, TrialDetail, TrialPublic
from studies.spec import Objective, StudySpec

if TYPE_CHECKING:
    from service.api.routers.plugins import PluginsPublic
    from studies.diagnosis import StudySummary

__all__ = [
    "ApiError",
    "Conflict",
    "ErrorItem",
    "InvalidRequest",
    "NotFound",
    "RateLimited",
    "ServerBusy",
    "ServerUnreachable",
    "SweepdocClient",
    "Unauthorized",
    "client_for",
]

M = TypeVar("M", bound=BaseModel)
# The longest wait a retry honours from a 429's Retry-After (seconds).
_MAX_RETRY_WAIT_S = 30.0


class WithBlock:
    """``with`` support: leaving the block calls ``_leave`` (told whether the block raised)."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._leave(failed=exc_type is not None)

    def _leave(self, *, failed: bool) -> None:
        raise NotImplementedError


class SweepdocClient(WithBlock):
    """A typed client of one sweepdoc server (``base_url``, e.g. ``http://127.0.0.1:8000``)."""

    def __init__(
        self,
        base_url: str,
        *,
        timeout_s: float = 30.0,
        token: str | None = None,
        retries: int = 3,
    ) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.base_url = base_url.rstrip("/")
        self.retries = retries
        self._http = httpx.Client(base_url=self.base_url, timeout=timeout_s, headers=headers)

    def close(self) -> None:
        self._http.close()

    def _leave(self, *, failed: bool) -> None:
        self.close()

    # -- HTTP --------------------------------------------------------------------------

    def _request(
        self, method: str, path: str, *, retry: bool = False, **kwargs: Any
    ) -> httpx.Response:
        """One call; *retry*: the call is safe to repeat, so a lost connection, a 503 or a
        429 is retried (0.5 s apart, doubling, or the server's Retry-After)."""
        if method != "GET":  # the server takes writes as JSON only, body or not (api/origin.py)
            kwargs.setdefault("headers", {"content-type": "application/json"})
        attempts = 1 + (self.retries if retry else 0)
        delay = 0.5
        for attempt in range(1, attempts + 1):
            try:
                response = self._http.request(method, path, **kwargs)
            except httpx.TransportError as exc:
                if attempt < attempts:
                    time.sleep(delay)
                    delay *= 2
                    continue
                raise self._unreachable(exc) from exc
            if not response.is_error:
                return response
            error = error_from_response(response)
            if attempt == attempts or not isinstance(error, RateLimited | ServerBusy):
                raise error
            wait = error.retry_after_s if isinstance(error, RateLimited) else None
            time.sleep(min(wait if wait is not None else delay, _MAX_RETRY_WAIT_S))
            delay *= 2
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _unreachable(self, exc: httpx.TransportError) -> ServerUnreachable:
        return ServerUnreachable(
            f"cannot reach a sweepdoc server at {self.base_url} ({exc.__class__.__name__}). "
            "Start one with `sweepdoc serve`, or point --url / SWEEPDOC_URL at yours."
        )

    def _get(self, model: type[M], path: str, **params: Any) -> M:
        response = self._request("GET", path, retry=True, params=params)
        return model.model_validate(response.json())

    def _post(self, model: type[M], path: str, body: BaseModel | None = None, **kw: Any) -> M:
        content = body.model_dump_json(exclude_unset=True) if body is not None else None
        response = self._request("POST", path, content=content, **kw)
        return model.model_validate(response.json())

    def _bytes(self, path: str) -> bytes:
        return self._request("GET", path, retry=True).content

    # -- server ------------------------------------------------------------------------

    def readiness(self) -> Readiness:
        """`GET /readyz`: whether the database answers and a worker was seen (a 503 answer
        is a readiness too: it says what is missing)."""
        response = self._http.get("/readyz")
        if response.status_code not in (200, 503):
            raise error_from_response(response)
        return Readiness.model_validate(response.json())

    def wait_until_up(self, timeout_s: float) -> None:
        """Wait until `/healthz` answers; raise `ServerUnreachable` after *timeout_s*."""
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                if self._http.get("/healthz").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() >= deadline:
                raise ServerUnreachable(
                    f"the sweepdoc server at {self.base_url} did not come up in {timeout_s:.0f} s"
                )
            time.sleep(0.2)

    def dashboard_url(self, study: StudyPublic | None = None) -> str:
        """The dashboard, at *study*'s page when the dashboard lists it."""
        root = f"{self.base_url}/dashboard"
        if study is None:
            return root
        try:
            listed = self._http.get("/api/studies").json()["study_summaries"]
        except (httpx.HTTPError, ValueError, KeyError, TypeError):
            return root  # the link is a convenience: never fail a command over it
        for summary in listed:
            if summary.get("study_name") == study.optuna_study_name:
                return f"{root}/studies/{summary['study_id']}"
        return root

    # -- studies -----------------------------------------------------------------------

    def submit(self, spec: StudySpec) -> StudyPublic:
        """Queue a study (`POST /v1/studies`)."""
        # Send only what the file said: the server fills in its own defaults.
        body = spec.model_dump(mode="json", exclude_unset=True)
        return StudyPublic.model_validate(self._request("POST", "/v1/studies", json=body).json())

    def studies(
        self, *, status: StudyStatus | None = None, offset: int = 0, limit: int = 50
    ) -> Page[StudyPublic]:
        """Studies, newest first (`GET /v1/studies`)."""
        params: dict[str, Any] = {"offset": offset, "limit": limit}
        if status is not None:
            params["status"] = status.value
        return self._get(Page[StudyPublic], "/v1/studies", **params)

    def study(self, study_id: int) -> StudyPublic:
        return self._get(StudyPublic, f"/v1/studies/{study_id}")

    def cancel(self, study_id: int) -> StudyPublic:
        """Cancel a study: waiting trials never start, running ones stop at their next epoch."""
        return self._post(StudyPublic, f"/v1/studies/{study_id}/cancel")

    def delete(self, study_id: int) -> None:
        """Delete a finished or cancelled study (`Conflict` while it may still run)."""
        self._request("DELETE", f"/v1/studies/{study_id}")

    def trials(self, study_id: int) -> Page[TrialPublic]:
        return self._get(Page[TrialPublic], f"/v1/studies/{study_id}/trials")

    def study_diagnosis(self, study_id: int) -> StudySummary:
        """Labels by learning rate, the LR window, the next step and a follow-up spec."""
        from studies.diagnosis import StudySummary

        return self._get(StudySummary, f"/v1/studies/{study_id}/diagnosis")

    def study_lr_png(self, study_id: int) -> bytes:
        """Validation accuracy against learning rate, as a PNG."""
        return self._bytes(f"/v1/studies/{study_id}/lr.png")

    def study_chain(self, study_id: int) -> Chain:
        """The follow-up chain the study belongs to, first round to last."""
        return self._get(Chain, f"/v1/studies/{study_id}/chain")

    def study_lr_range_png(self, study_id: int) -> bytes:
        """A range test study's loss against learning rate, as a PNG (`NotFound` otherwise)."""
        return self._bytes(f"/v1/studies/{study_id}/lr_range.png")

    # -- trials ------------------------------------------------------------------------

    def trial(self, trial_id: int) -> TrialDetail:
        return self._get(TrialDetail, f"/v1/trials/{trial_id}")

    def trial_diagnosis(self, trial_id: int) -> Diagnosis:
        return self._get(Diagnosis, f"/v1/trials/{trial_id}/diagnosis")

    def trial_curves_png(self, trial_id: int) -> bytes:
        """The trial's loss and accuracy curves, as a PNG."""
        return self._bytes(f"/v1/trials/{trial_id}/curves.png")

    def download_checkpoint(self, trial_id: int, path: Path) -> Path:
        """Stream the trial's stored checkpoint into *path* (weights, configs, class names,
        normalization; ``trainer.load_checkpoint`` reads it): written whole, through a
        temporary file renamed, or not at all. ``NotFound`` says why a trial has none."""
        partial = path.with_name(f".{path.name}.part")
        try:
            with self._http.stream("GET", f"/v1/trials/{trial_id}/checkpoint") as response:
                if response.is_error:
                    response.read()
                    raise error_from_response(response)
                with partial.open("wb") as out:
                    for chunk in response.iter_bytes():
                        out.write(chunk)
        except httpx.TransportError as exc:
            partial.unlink(missing_ok=True)
            raise ServerUnreachable(
                f"lost the sweepdoc server at {self.base_url} during the download "
                f"({exc.__class__.__name__})"
            ) from exc
        except BaseException:
            partial.unlink(missing_ok=True)  # never half a checkpoint left behind
            raise
        partial.replace(path)
        return path

    # -- plugins -----------------------------------------------------------------------

    def plugins(self) -> PluginsPublic:
        """The model and dataset plugins and torchvision models the server accepts."""
        # Its model is the router's: imported on first use, as the server's modules are slow.
        from service.api.routers.plugins import PluginsPublic

        return self._get(PluginsPublic, "/v1/plugins")

    # -- diagnose (stores nothing) -----------------------------------------------------

    def diagnose(self, curves: Curves) -> Diagnosis:
        """Label any run's curves (`POST /v1/diagnose`)."""
        return self._post(Diagnosis, "/v1/diagnose", curves, retry=True)

    def diagnose_log(
        self,
        content: str | bytes,
        *,
        format: Literal["csv", "tensorboard"],
        map: dict[str, str] | None = None,
        num_classes: int | None = None,
    ) -> tuple[Diagnosis, CurveMapping]:
        """Label a CSV log (text) or a TensorBoard event file (bytes); with the mapping used
        (which column or tag became which curve). *map*: curve → column or tag."""
        import base64

        body: dict[str, Any] = {"format": format, "map": map or {}, "num_classes": num_classes}
        if isinstance(content, bytes):
            body["content_base64"] = base64.b64encode(content).decode("ascii")
        else:
            body["content"] = content
        answer = self._request("POST", "/v1/diagnose", json=body, retry=True).json()
        return Diagnosis.model_validate(answer), CurveMapping.model_validate(answer["mapping"])

    # -- external runs (a training loop of your own; see service.tracking) -------------

    def create_run(
        self,
        project: str,
        name: str,
        *,
        params: dict[str, Any] | None = None,
        num_classes: int | None = None,
        objective: Objective = Objective.VAL_ACC,
    ) -> RunPublic:
        """Start a run in *project* (`POST /v1/runs`). Not retried: a lost answer would
        start a second run."""
        body = RunCreate(
            project=project,
            name=name,
            params=params or {},
            num_classes=num_classes,
            objective=objective,
        )
        return self._post(RunPublic, "/v1/runs", body)

    def log_epoch(self, run_id: int, epoch: EpochLog, *, retry: bool = True) -> Verdict:
        """Log one finished epoch; the verdict says continue or stop (and why). Retried when
        the answer is lost (*retry* False: one try): the server stores an epoch once and
        answers a resend the same."""
        return self._post(Verdict, f"/v1/runs/{run_id}/epochs", epoch, retry=retry)

    def finish_run(self, run_id: int) -> RunPublic:
        """End the run with its full diagnosis (safe to repeat)."""
        return self._post(RunPublic, f"/v1/runs/{run_id}/finish", retry=True)

    def run(self, run_id: int) -> RunDetail:
        return self._get(RunDetail, f"/v1/runs/{run_id}")

    def runs(
        self, *, project: str | None = None, offset: int = 0, limit: int = 50
    ) -> Page[RunPublic]:
        """Runs, newest first; only *project*'s when given."""
        params: dict[str, Any] = {"offset": offset, "limit": limit}
        if project is not None:
            params["project"] = project
        return self._get(Page[RunPublic], "/v1/runs", **params)

    def delete_run(self, run_id: int) -> None:
        """Delete a run with its epochs and its Optuna trial (`DELETE /v1/runs/{id}`);
        ``NotFound`` once it is gone."""
        self._request("DELETE", f"/v1/runs/{run_id}")

    def run_diagnosis(self, run_id: int) -> Diagnosis:
        """The run's diagnosis (provisional while it runs), the shape of a trial's."""
        return self._get(Diagnosis, f"/v1/runs/{run_id}/diagnosis")


def client_for(url: str | None = None, *, token: str | None = None) -> SweepdocClient:
    """A client for *url* (default: SWEEPDOC_URL), with *token* (default:
    SWEEPDOC_API_TOKEN) and the configured request timeout."""
    settings = get_settings()
    if token is None and settings.api_token is not None:
        token = settings.api_token.get_secret_value()
    return SweepdocClient(url or settings.url, timeout_s=settings.request_timeout_s, token=token)
