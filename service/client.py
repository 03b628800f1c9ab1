"""The CLI's HTTP client for a sweepdoc server: typed results, errors a person can act on."""

from __future__ import annotations

import time
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

import httpx
from pydantic import BaseModel

from service.settings import get_settings
from studies.db import StudyStatus
from studies.diagnosis import Diagnosis
from studies.schemas import Page, StudyPublic, TrialDetail, TrialPublic
from studies.spec import StudySpec

if TYPE_CHECKING:
    from studies.diagnosis import StudySummary

M = TypeVar("M", bound=BaseModel)


class ApiError(Exception):
    """The server answered with an error (its own message is kept), or could not be reached."""

    def __init__(self, message: str, *, status_code: int | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code


class ServerUnreachable(ApiError):
    """No sweepdoc server answers at the URL."""


class SweepdocClient:
    """A thin, typed wrapper over the `/v1` API."""

    def __init__(self, base_url: str, *, timeout_s: float = 30.0, token: str | None = None) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.base_url = base_url.rstrip("/")
        self._http = httpx.Client(base_url=self.base_url, timeout=timeout_s, headers=headers)

    def __enter__(self) -> SweepdocClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

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

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        if method != "GET":  # the server takes writes as JSON only, body or not (api/origin.py)
            kwargs.setdefault("headers", {"content-type": "application/json"})
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise ServerUnreachable(
                f"cannot reach a sweepdoc server at {self.base_url} ({exc.__class__.__name__}). "
                "Start one with `sweepdoc serve`, or point --url / SWEEPDOC_URL at yours."
            ) from exc
        if response.is_error:
            raise ApiError(_error_message(response), status_code=response.status_code)
        return response

    def _get(self, model: type[M], path: str, **params: Any) -> M:
        return model.model_validate(self._request("GET", path, params=params).json())

    def submit(self, spec: StudySpec) -> StudyPublic:
        # Send only what the file said: the server fills in its own defaults.
        body = spec.model_dump(mode="json", exclude_unset=True)
        return StudyPublic.model_validate(self._request("POST", "/v1/studies", json=body).json())

    def cancel(self, study_id: int) -> StudyPublic:
        response = self._request("POST", f"/v1/studies/{study_id}/cancel")
        return StudyPublic.model_validate(response.json())

    def delete(self, study_id: int) -> None:
        """Delete a finished or cancelled study (ApiError 409 while it may still run)."""
        self._request("DELETE", f"/v1/studies/{study_id}")

    def study(self, study_id: int) -> StudyPublic:
        return self._get(StudyPublic, f"/v1/studies/{study_id}")

    def studies(
        self, *, status: StudyStatus | None = None, offset: int = 0, limit: int = 50
    ) -> Page[StudyPublic]:
        params: dict[str, Any] = {"offset": offset, "limit": limit}
        if status is not None:
            params["status"] = status.value
        return self._get(Page[StudyPublic], "/v1/studies", **params)

    def trials(self, study_id: int) -> Page[TrialPublic]:
        return self._get(Page[TrialPublic], f"/v1/studies/{study_id}/trials")

    def trial(self, trial_id: int) -> TrialDetail:
        return self._get(TrialDetail, f"/v1/trials/{trial_id}")

    def trial_diagnosis(self, trial_id: int) -> Diagnosis:
        return self._get(Diagnosis, f"/v1/trials/{trial_id}/diagnosis")

    def study_diagnosis(self, study_id: int) -> StudySummary:
        from studies.diagnosis import StudySummary

        return self._get(StudySummary, f"/v1/studies/{study_id}/diagnosis")

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


def _error_message(response: httpx.Response) -> str:
    """The server's own message (and rejected fields), else the status line."""
    try:
        body = response.json()
    except ValueError:
        return f"HTTP {response.status_code} from {response.request.url}"
    if not isinstance(body, dict):
        return f"HTTP {response.status_code}: {body}"
    message = str(body.get("message") or body.get("detail") or body)
    fields = [f for f in body.get("errors") or [] if isinstance(f, dict)]
    if not fields:
        return message
    # One line per rejected field reads better than the server's one-line summary.
    lines = [f"  {f.get('field')}: {f.get('reason')}" for f in fields]
    return "\n".join([f"the server refused the request (HTTP {response.status_code}):", *lines])


def client_for(url: str | None) -> SweepdocClient:
    """A client for *url*, else the configured SWEEPDOC_URL, with the configured token."""
    settings = get_settings()
    token = settings.api_token.get_secret_value() if settings.api_token else None
    return SweepdocClient(url or settings.url, timeout_s=settings.request_timeout_s, token=token)
