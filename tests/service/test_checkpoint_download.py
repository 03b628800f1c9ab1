"""The trained model to take home, end to end (issue 13 part 3): a real `sweepdoc serve` with
a real worker process and a SQLite file, behind a token. A study runs to the end; its best
trial's checkpoint, downloaded over HTTP, loads into the trainer and scores exactly the
trial's best validation accuracy again; `sweepdoc export` writes the four files; a trial
without a checkpoint is a 404 that says why."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from tests.service.factory import tiny_spec
from tests.service.serve_process import ServeProcess, run_cli, serving
from tests.waiting import wait_until
from trainer import evaluate_checkpoint, load_checkpoint

TOKEN = "checkpoint-test-token-0123456789"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    home = tmp_path_factory.mktemp("serve-checkpoints")
    process = ServeProcess(
        home,
        database_url=f"sqlite:///{home / 'sweepdoc.db'}",
        workers=1,
        env_overrides={"SWEEPDOC_API_TOKEN": TOKEN},
    )
    process.http.headers["Authorization"] = f"Bearer {TOKEN}"
    with serving(process, workers=1):
        process.wait_for_workers(1)
        yield process


@pytest.fixture(scope="module")
def finished(server: ServeProcess) -> dict[str, Any]:
    spec = tiny_spec("take-home", grid=(0.1, 0.03), epochs=4)
    response = server.http.post("/v1/studies", json=spec)
    assert response.status_code == 201, response.text
    study = server.wait_for_study(response.json()["id"])
    assert study["status"] == "completed", study
    return study


def _cancel(server: ServeProcess, study_id: int) -> int:
    json_body = {"content-type": "application/json"}  # every write is JSON, body or not
    return server.http.post(f"/v1/studies/{study_id}/cancel", headers=json_body).status_code


def test_a_downloaded_checkpoint_scores_its_trials_best_val_accuracy_exactly(
    server: ServeProcess, finished: dict[str, Any], tmp_path: Path
) -> None:
    torch.set_num_threads(1)
    trial = server.get(f"/v1/trials/{finished['best_trial']['trial_id']}")
    response = server.http.get(f"/v1/trials/{trial['id']}/checkpoint")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/octet-stream"
    name = f"sweepdoc-study-{finished['id']}-trial-{trial['id']}.pt"
    assert f'filename="{name}"' in response.headers["content-disposition"]
    path = tmp_path / name
    path.write_bytes(response.content)

    ckpt = load_checkpoint(path)
    assert ckpt.epoch == trial["checkpoint_epoch"] == trial["best_epoch"]
    assert trial["checkpoint_bytes"] == len(response.content)
    assert ckpt.class_names == [str(d) for d in range(10)]
    scored = evaluate_checkpoint(ckpt, device="cpu")
    assert scored.val_acc == trial["best_val_acc"] == finished["best_trial"]["value"]
    assert scored.val_loss == ckpt.metric["val_loss"]


def test_the_checkpoint_is_read_with_the_token_like_every_other_read(
    server: ServeProcess, finished: dict[str, Any]
) -> None:
    path = f"/v1/trials/{finished['best_trial']['trial_id']}/checkpoint"
    response = server.http.get(path, headers={"Authorization": "Bearer wrong-token-0123456789"})
    assert response.status_code == 401


def test_a_trial_without_a_checkpoint_is_a_404_saying_why(server: ServeProcess) -> None:
    unknown = server.http.get("/v1/trials/9999/checkpoint")
    assert unknown.status_code == 404
    assert unknown.json()["message"] == "trial 9999 does not exist"
    # A cancelled study: its trials end pruned (stopped, or never started).
    study = server.http.post("/v1/studies", json=tiny_spec("never-runs", epochs=50)).json()
    assert _cancel(server, study["id"]) == 200

    def stopped() -> list[dict[str, Any]]:
        # Cancelled at once; a running trial stops at its next epoch.
        trials: list[dict[str, Any]] = server.get(f"/v1/studies/{study['id']}/trials")["data"]
        return trials if all(t["state"] == "pruned" for t in trials) else []

    for trial in wait_until(stopped, "the cancelled study's trials to stop"):
        response = server.http.get(f"/v1/trials/{trial['id']}/checkpoint")
        assert response.status_code == 404
        assert response.json()["message"] == (
            f"trial {trial['id']} ended pruned: only complete trials keep a checkpoint"
        )


def test_export_writes_checkpoint_curves_config_and_model_card(
    server: ServeProcess, finished: dict[str, Any], tmp_path: Path
) -> None:
    out = tmp_path / "model"
    done = run_cli(
        "export",
        str(finished["id"]),
        str(out),
        "--url",
        server.url,
        SWEEPDOC_API_TOKEN=TOKEN,
    )
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in out.iterdir()) == [
        "checkpoint.pt",
        "config.json",
        "curves.json",
        "model_card.md",
    ]
    trial = server.get(f"/v1/trials/{finished['best_trial']['trial_id']}")
    ckpt = load_checkpoint(out / "checkpoint.pt")
    assert json.loads((out / "config.json").read_text()) == ckpt.config.to_json()
    assert ckpt.config.optim.lr == trial["params"]["lr"]
    assert json.loads((out / "curves.json").read_text()) == trial["curves"]
    card = (out / "model_card.md").read_text()
    for fact in (
        f"Study {finished['id']} (`take-home`, objective val_acc)",
        f"trial {trial['id']} (#{trial['number']})",
        "Dataset: `digits`",
        f"- Label: {trial['label']} (confidence",
        f"Validation at the checkpoint's epoch {ckpt.epoch}: accuracy {ckpt.metric['val_acc']:.4f}",
    ):
        assert fact in card, (fact, card)


def test_export_of_a_study_without_a_complete_trial_says_so(
    server: ServeProcess, tmp_path: Path
) -> None:
    study = server.http.post("/v1/studies", json=tiny_spec("empty", epochs=50)).json()
    assert _cancel(server, study["id"]) == 200
    server.wait_for_study(study["id"])
    done = run_cli(
        "export", str(study["id"]), str(tmp_path / "x"), "--url", server.url,
        SWEEPDOC_API_TOKEN=TOKEN,
    )  # fmt: skip
    assert done.returncode == 1
    assert f"study {study['id']} has no complete trial yet" in done.stderr
    assert not (tmp_path / "x").exists()
