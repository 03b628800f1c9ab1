"""Bad input to `POST /v1/studies`, on the real app and a real SQLite file: every case is a
4xx naming the field and the reason (never a 500 or a traceback), and a rejected request
leaves the database exactly as it was (sweepdoc's tables and Optuna's)."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from service.api import create_app
from service.settings import Settings
from studies import queue
from studies.db import Database, TrialState
from studies.trial_run import error_text
from tests.service.factory import tiny_spec
from tests.waiting import run_in_threads
from trainer import DatasetError, train

MAX_EPOCHS = 50
MAX_TRIALS = 40
MAX_QUEUED = 2


@pytest.fixture
def data_root(tmp_path: Path) -> Path:
    """A data root with an image folder, a checkpoint, and symlinks that escape it."""
    root = tmp_path / "data"
    (root / "cats" / "train").mkdir(parents=True)
    (root / "ckpt").mkdir()
    (root / "ckpt" / "base.pt").write_bytes(b"not really a checkpoint")
    outside = tmp_path / "outside"
    (outside / "secret-folder").mkdir(parents=True)
    (outside / "secret.pt").write_bytes(b"outside the data root")
    os.symlink(outside / "secret-folder", root / "escape")
    os.symlink(outside / "secret.pt", root / "ckpt" / "escape.pt")
    return root


@pytest.fixture
def settings(tmp_path: Path, data_root: Path) -> Settings:
    return Settings(
        home=tmp_path / "home",
        database_url=None,
        data_dir=data_root,
        api_token=None,
        max_epochs=MAX_EPOCHS,
        max_trials_per_study=MAX_TRIALS,
        max_queued_studies=MAX_QUEUED,
    )


@pytest.fixture
def api(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as client:
        yield client


def snapshot(settings: Settings) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table (sweepdoc's and Optuna's), to compare before and after."""
    engine = sa.create_engine(settings.resolved_database_url)
    try:
        meta = sa.MetaData()
        meta.reflect(engine)
        with engine.connect() as conn:
            return {
                name: sorted(conn.execute(sa.select(table)).all(), key=repr)
                for name, table in meta.tables.items()
            }
    finally:
        engine.dispose()


def with_(path: str, value: Any) -> dict[str, Any]:
    """A valid tiny spec with the dotted *path* set to *value*."""
    spec = tiny_spec("bad-input")
    *parents, leaf = path.split(".")
    node = spec
    for part in parents:
        node = node.setdefault(part, {})
    node[leaf] = value
    return spec


def without(key: str) -> dict[str, Any]:
    spec = tiny_spec("bad-input")
    del spec[key]
    return spec


GRID_10K = {"sampler": "grid", "grid": [round(1e-5 + i * 1e-6, 9) for i in range(10_000)]}

# (request body, the field the error must name, words its reason must contain)
CASES: dict[str, tuple[dict[str, Any], str, str]] = {
    "epochs-wrong-type": (with_("train.epochs", "ten"), "train.epochs", "integer"),
    "lr-wrong-type": (with_("search.lr_low", [1]), "search.lr_low", "number"),
    "model-wrong-type": (with_("model", "resnet"), "model", "dictionary"),
    "missing-dataset": (without("dataset"), "dataset", "required"),
    "unknown-top-field": (with_("learning_rate", 0.1), "learning_rate", "unknown field"),
    "unknown-nested-field": (with_("train.lr", 0.1), "train.lr", "unknown field"),
    "lr-zero": (with_("search", {"sampler": "random", "lr_low": 0}), "search.lr_low", "greater"),
    "lr-negative": (with_("search", {"sampler": "grid", "grid": [-0.1]}), "search.grid", "(0, 10]"),
    "lr-low-above-high": (
        with_("search", {"sampler": "random", "lr_low": 0.1, "lr_high": 0.01}),
        "search.lr_low",
        "must not exceed lr_high",
    ),
    "grid-of-10000": (with_("search", GRID_10K), "search", "10000 trials"),
    "epochs-1e9": (with_("train.epochs", 10**9), "train.epochs", "less than or equal to 1000"),
    "batch-size-0": (with_("train.batch_size", 0), "train.batch_size", "greater than or equal"),
    "unknown-dataset": (with_("dataset", "imagenet"), "dataset", "unknown dataset"),
    "unknown-arch": (with_("model.arch", "transformer"), "model.arch", "simple"),
    "folder-dotdot": (with_("dataset", "imagefolder:cats/../../x"), "dataset", "'..'"),
    "folder-absolute": (with_("dataset", "imagefolder:/etc"), "dataset", "relative"),
    "folder-symlink-escape": (with_("dataset", "imagefolder:escape"), "dataset", "outside"),
    "folder-missing": (with_("dataset", "imagefolder:dogs"), "dataset", "no folder 'dogs'"),
    "folder-nul": (with_("dataset", "imagefolder:cats\x00x"), "dataset", "NUL character"),
    "checkpoint-nul": (with_("train.init_from", "ckpt/\x00.pt"), "train.init_from", "NUL"),
    "checkpoint-dotdot": (with_("train.init_from", "../x.pt"), "train.init_from", "'..'"),
    "checkpoint-symlink-escape": (
        with_("train.init_from", "ckpt/escape.pt"),
        "train.init_from",
        "outside",
    ),
    "epochs-over-setting": (with_("train.epochs", 60), "train.epochs", f"at most {MAX_EPOCHS}"),
    "trials-over-setting": (
        with_("search", {"sampler": "random", "n_trials": 41}),
        "search.n_trials",
        f"limit of {MAX_TRIALS}",
    ),
}


@pytest.mark.parametrize(("spec", "field", "reason"), CASES.values(), ids=CASES.keys())
def test_bad_spec_is_422_naming_the_field_and_the_reason_and_changes_nothing(
    api: TestClient, settings: Settings, spec: dict[str, Any], field: str, reason: str
) -> None:
    assert api.post("/v1/studies", json=tiny_spec("kept")).status_code == 201
    before = snapshot(settings)

    response = api.post("/v1/studies", json=spec)

    assert response.status_code == 422, response.text
    body = response.json()
    assert body["code"] in ("invalid_request", "invalid_spec")
    named = [e for e in body["errors"] if e["field"] == field]
    assert named, f"no error names {field!r}: {body['errors']}"
    assert any(reason.lower() in e["reason"].lower() for e in named), named
    assert "Traceback" not in response.text
    assert str(settings.resolved_data_dir.parent) not in response.text  # no server paths
    assert snapshot(settings) == before


def test_paths_inside_the_data_root_are_accepted(api: TestClient) -> None:
    spec = with_("dataset", "imagefolder:cats")
    spec["train"]["init_from"] = "ckpt/base.pt"
    assert api.post("/v1/studies", json=spec).status_code == 201


@pytest.mark.parametrize(
    ("content", "content_type"),
    [
        (b'{"dataset": "digits",', "application/json"),
        (b"\xff\xfe not utf-8", "application/json"),
        (b"dataset: digits", "application/json"),
        (b"", "application/json"),
        (b"\x80", "application/json"),
    ],
    ids=["truncated", "not-utf8", "not-json", "empty", "lone-0x80"],
)
def test_malformed_bodies_are_422_and_change_nothing(
    api: TestClient, settings: Settings, content: bytes, content_type: str
) -> None:
    assert api.post("/v1/studies", json=tiny_spec("kept")).status_code == 201
    before = snapshot(settings)

    response = api.post("/v1/studies", content=content, headers={"content-type": content_type})

    assert response.status_code == 422, response.text
    assert response.json()["code"] == "invalid_request"
    assert "not valid JSON" in response.json()["message"]
    assert response.json()["errors"], response.text
    assert snapshot(settings) == before


def test_an_oversized_body_is_413_and_changes_nothing(
    api: TestClient, settings: Settings
) -> None:
    assert api.post("/v1/studies", json=tiny_spec("kept")).status_code == 201
    before = snapshot(settings)
    spec = tiny_spec("huge", description="x" * (settings.max_body_bytes + 1))

    response = api.post("/v1/studies", json=spec)

    assert response.status_code == 413, response.text
    assert str(settings.max_body_bytes) in response.json()["message"]
    assert snapshot(settings) == before


def test_a_full_queue_is_429_naming_the_limit_until_a_study_finishes(
    api: TestClient, settings: Settings
) -> None:
    ids = [api.post("/v1/studies", json=tiny_spec(f"q{i}")).json()["id"] for i in range(2)]
    before = snapshot(settings)

    refused = api.post("/v1/studies", json=tiny_spec("one-too-many"))

    assert refused.status_code == 429, refused.text
    body = refused.json()
    assert body["code"] == "queue_full"
    assert f"limit is {MAX_QUEUED}" in body["message"]
    assert "SWEEPDOC_MAX_QUEUED_STUDIES" in body["message"]
    assert refused.headers["Retry-After"]
    assert snapshot(settings) == before
    # A cancelled study no longer counts: the next submission fits.
    assert api.post(f"/v1/studies/{ids[0]}/cancel", json={}).status_code == 200
    assert api.post("/v1/studies", json=tiny_spec("fits-now")).status_code == 201


# Just under the 1 MB body limit: one invalid item per 5 bytes, some 190,000 errors.
NEARLY_1MB_OF_ERRORS = {"dataset": "digits", "search": {"grid": ["x"] * 190_000}}


@pytest.mark.parametrize(
    "body",
    [
        NEARLY_1MB_OF_ERRORS,
        with_("dataset", "imagefolder:" + "../" * 300_000),  # one reason quoting 900 KB
    ],
    ids=["190k-errors", "900kb-echo"],
)
def test_a_huge_invalid_body_gets_a_small_422_that_says_what_it_left_out(
    api: TestClient, settings: Settings, body: dict[str, Any]
) -> None:
    response = api.post("/v1/studies", json=body)

    assert len(response.request.content) < settings.max_body_bytes
    assert response.status_code == 422, response.text[:500]
    assert len(response.content) < 20_000  # was 28 MB: every error, each input echoed
    errors = response.json()
    assert 1 <= len(errors["errors"]) <= 20
    assert all(len(e["reason"]) < 400 for e in errors["errors"])
    if len(body["search"].get("grid", [])) > 20:
        assert errors["errors_omitted"] == 190_000 - 20
        assert "189980 more errors are not listed" in errors["message"]
        assert errors["errors"][0]["field"] == "search.grid.0"


def test_a_long_generated_study_name_is_cut_to_fit_the_name_column(
    api: TestClient, data_root: Path
) -> None:
    folder = "f" * 120
    (data_root / folder).mkdir()
    spec = without("name")
    spec["dataset"] = f"imagefolder:{folder}"

    response = api.post("/v1/studies", json=spec)

    assert response.status_code == 201, response.text
    name = response.json()["name"]
    assert len(name) == 80
    assert name.startswith("fff") and name.endswith("-simple-lr-grid")


def _trial_error(
    settings: Settings, spec: dict[str, Any], *, worker_data_dir: Path
) -> tuple[int, str]:
    """Run the first trial of *spec* as a worker would (its claim, the real trainer on the
    server's data root, the error text it records with *worker_data_dir* as its own data
    root), failing; its id and the error as stored."""
    database = Database(settings.resolved_database_url)
    try:
        claim = queue.claim_next(database, worker="w", device="cpu")
        assert claim is not None
        config = claim.spec.to_run_config(
            claim.params or {"lr": 0.1}, data_dir=settings.resolved_data_dir
        )
        with pytest.raises(DatasetError) as raised:
            train(config)
        error = error_text(raised.value, worker_data_dir)
        assert queue.finish(database, claim, state=TrialState.FAILED, error=error)
        return claim.trial_id, error
    finally:
        database.dispose()


@pytest.mark.parametrize(
    ("dataset", "shown"),
    [("mnist", "MNIST/raw"), ("imagefolder:broken", "'a/x.png' in the image folder")],
    ids=["missing-mnist-files", "undecodable-image"],
)
def test_a_trials_error_shows_paths_relative_to_the_data_root(
    api: TestClient, settings: Settings, data_root: Path, dataset: str, shown: str
) -> None:
    """Issue 14: trial errors showed the server's absolute paths (the files the trainer
    could not read). They are shown relative to the data root."""
    for label in ("a", "b"):
        (data_root / "broken" / label).mkdir(parents=True)
        (data_root / "broken" / label / "x.png").write_bytes(b"not a png")
    spec = with_("dataset", dataset)
    assert api.post("/v1/studies", json=spec).status_code == 201, spec

    root = str(settings.resolved_data_dir)
    # A worker that sees the files under another path (another machine's mount) stores its
    # own paths; the API takes the server's data root out of what it shows.
    trial_id, stored = _trial_error(settings, spec, worker_data_dir=data_root / "elsewhere")
    detail = api.get(f"/v1/trials/{trial_id}").json()
    assert detail["state"] == "failed" and shown in detail["error"], detail["error"]
    assert root not in detail["error"]
    assert "DatasetError" in detail["error"]
    if dataset.startswith("imagefolder:"):  # the trainer's own message is relative already
        assert root not in stored.split("\n\n")[0]
    else:
        assert root in stored  # the worker could not strip a root that is not its own

    # A worker stores its error with its own data root taken out, whatever server reads it.
    _, stored = _trial_error(settings, spec, worker_data_dir=settings.resolved_data_dir)
    assert root not in stored and shown in stored, stored


@pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def test_six_concurrent_submissions_against_a_limit_of_one_queue_exactly_one(
    request: pytest.FixtureRequest, tmp_path: Path, backend: str
) -> None:
    """Issue 14: with SWEEPDOC_MAX_QUEUED_STUDIES=1, six concurrent submissions were all
    accepted. Six threads released at once post to the real app (its handlers run in its
    thread pool, each on its own connection): one 201, five 429, one Optuna study."""
    url = None if backend == "sqlite" else request.getfixturevalue("postgres_url")
    settings = Settings(home=tmp_path / "home", database_url=url, max_queued_studies=1)
    contenders = 6
    start = threading.Barrier(contenders)
    statuses: list[int] = []
    with TestClient(create_app(settings)) as api:

        def submit(index: int) -> None:
            start.wait(timeout=60)
            statuses.append(api.post("/v1/studies", json=tiny_spec(f"race-{index}")).status_code)

        run_in_threads(submit, contenders)
        listed = api.get("/api/studies").json()["study_summaries"]

    assert sorted(statuses) == [201] + [429] * (contenders - 1)
    assert len(listed) == 1  # the refused ones' Optuna studies were removed
