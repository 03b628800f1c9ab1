"""The public client against a real `serve`: typed answers for every kind of call, and
errors that carry the API's code, message and rejected fields."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from service.api.errors import ErrorItem as ServerErrorItem
from service.client import (
    Conflict,
    ErrorItem,
    InvalidRequest,
    NotFound,
    ServerUnreachable,
    SweepdocClient,
    Unauthorized,
    client_for,
)
from service.client_errors import ApiError, RateLimited, ServerBusy, error_from_response
from service.settings import get_settings
from studies.diagnosis import Curves, Diagnosis, diagnose_run
from studies.runlogs import CurveMapping
from studies.runs import EpochLog, RunDetail, RunPublic, Verdict
from studies.schemas import Page, Readiness, StudyPublic, TrialPublic
from studies.spec import StudySpec
from tests.service.factory import healthy_curves, tiny_spec
from tests.service.runs_serve import api_server
from tests.service.serve_process import ServeProcess, free_port

TOKEN = "client-test-token-0123456789"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    with api_server(tmp_path_factory.mktemp("client"), SWEEPDOC_API_TOKEN=TOKEN) as process:
        yield process


@pytest.fixture
def client(server: ServeProcess) -> Iterator[SweepdocClient]:
    with SweepdocClient(server.url, token=TOKEN) as client:
        yield client


def test_the_client_reads_its_error_items_as_the_server_writes_them() -> None:
    # The client does not import the server's modules (seconds); the shapes must agree.
    assert ErrorItem.model_fields.keys() == ServerErrorItem.model_fields.keys()


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (401, Unauthorized),
        (404, NotFound),
        (409, Conflict),
        (422, InvalidRequest),
        (429, RateLimited),
        (503, ServerBusy),
        (500, ApiError),
    ],
)
def test_each_error_status_is_its_own_exception_with_the_answers_retry_after(
    status: int, kind: type[ApiError]
) -> None:
    answer = httpx.Response(
        status,
        json={"code": "some_code", "message": "refused", "errors": []},
        headers={"retry-after": "7"},
        request=httpx.Request("POST", "http://sweepdoc.test/v1/studies"),
    )
    error = error_from_response(answer)
    assert type(error) is kind
    assert (error.status_code, error.code, str(error)) == (status, "some_code", "refused")
    assert error.retry_after_s == 7.0
    assert error.transient is (status in (429, 500, 503))


def test_an_answer_without_retry_after_says_none() -> None:
    answer = httpx.Response(
        429,
        json={"code": "rate_limited", "message": "slow down"},
        request=httpx.Request("POST", "http://sweepdoc.test/v1/studies"),
    )
    error = error_from_response(answer)
    assert isinstance(error, RateLimited) and error.retry_after_s is None


def test_studies_and_trials_come_back_typed(client: SweepdocClient, tmp_path: Path) -> None:
    study = client.submit(StudySpec.model_validate(tiny_spec("via-client")))
    assert isinstance(study, StudyPublic) and study.status == "queued"
    assert client.study(study.id) == study
    listed = client.studies(limit=5)
    assert isinstance(listed, Page) and study.id in [s.id for s in listed.data]
    trials = client.trials(study.id)
    assert len(trials.data) == 2 and all(isinstance(t, TrialPublic) for t in trials.data)
    assert client.trial(trials.data[0].id).params == trials.data[0].params
    assert client.cancel(study.id).status == "cancelled"
    assert client.study_lr_png(study.id).startswith(b"\x89PNG")
    assert [r.id for r in client.study_chain(study.id).rounds] == [study.id]  # a chain of one
    with pytest.raises(NotFound):  # not a range test
        client.study_lr_range_png(study.id)
    target = tmp_path / "trial.pt"
    with pytest.raises(NotFound, match="checkpoint"):  # the trial never ran
        client.download_checkpoint(trials.data[0].id, target)
    assert not target.exists() and not list(tmp_path.iterdir())
    with pytest.raises(Conflict) as refused:  # nothing recorded yet
        client.trial_diagnosis(trials.data[0].id)
    assert refused.value.status_code == 409 and refused.value.code == "conflict"


def test_plugins_come_back_typed(client: SweepdocClient) -> None:
    plugins = client.plugins()
    assert "resnet18" in plugins.torchvision_models
    assert all(p.use_as == f"plugin:{p.name}" for p in plugins.models + plugins.datasets)


def test_diagnose_curves_and_logs(client: SweepdocClient) -> None:
    curves = Curves.model_validate(healthy_curves())
    assert client.diagnose(curves) == diagnose_run(curves)
    csv = "epoch,loss,val_loss\n" + "".join(
        f"{e},{2.0 - 0.1 * e},{2.1 - 0.1 * e}\n" for e in range(6)
    )
    diagnosis, mapping = client.diagnose_log(csv, format="csv")
    assert isinstance(diagnosis, Diagnosis) and isinstance(mapping, CurveMapping)
    assert {m.curve: m.source for m in mapping.mapped} == {
        "train_loss": "loss",
        "val_loss": "val_loss",
    }


def test_runs_come_back_typed(client: SweepdocClient) -> None:
    run = client.create_run("client-runs", "r1", params={"lr": 0.1}, num_classes=10)
    assert isinstance(run, RunPublic) and run.state == "running"
    curves = healthy_curves(4)
    for epoch in range(1, 5):
        values = {k: curves[k][epoch - 1] for k in ("train_loss", "val_loss", "val_acc")}
        verdict = client.log_epoch(run.id, EpochLog(epoch=epoch, **values))
        assert isinstance(verdict, Verdict) and not verdict.stop
    assert client.run_diagnosis(run.id).evidence.epochs == 4  # provisional
    ended = client.finish_run(run.id)
    assert ended.state == "complete" and ended.label is not None
    detail = client.run(run.id)
    assert isinstance(detail, RunDetail) and detail.curves["val_acc"] == curves["val_acc"][:4]
    assert [r.id for r in client.runs(project="client-runs").data] == [run.id]


def test_refusals_carry_the_fields_and_the_cli_message(client: SweepdocClient) -> None:
    run = client.create_run("client-errors", "r")
    with pytest.raises(InvalidRequest) as refused:
        client.log_epoch(run.id, EpochLog(epoch=2, val_acc=0.5))
    error = refused.value
    assert error.status_code == 422 and error.code == "invalid_request"
    assert [(e.field, e.location) for e in error.errors] == [("epoch", "body")]
    assert str(error).splitlines() == [
        "the server refused the request (HTTP 422):",
        f"  epoch: {error.errors[0].reason}",
    ]
    with pytest.raises(NotFound, match="run 999999 does not exist"):
        client.run(999999)


def test_the_token_is_the_argument_or_sweepdoc_api_token(
    server: ServeProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    with SweepdocClient(server.url) as anonymous, pytest.raises(Unauthorized):
        anonymous.runs()
    monkeypatch.setenv("SWEEPDOC_API_TOKEN", TOKEN)
    get_settings.cache_clear()
    try:
        with client_for(server.url) as configured:
            assert isinstance(configured.readiness(), Readiness)
            assert configured.runs().count >= 0
        # An explicit token wins over the environment's.
        explicit = client_for(server.url, token="wrong-token-0123456789")
        with explicit, pytest.raises(Unauthorized):
            explicit.runs()
    finally:
        get_settings.cache_clear()


def test_no_server_is_server_unreachable() -> None:
    nobody = SweepdocClient(f"http://127.0.0.1:{free_port()}", retries=1)
    with nobody, pytest.raises(ServerUnreachable, match="cannot reach a sweepdoc server"):
        nobody.studies()
