"""The study spec: defaults, search spaces, limits, and errors that name the field."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from studies.errors import SpecError
from studies.spec import (
    MAX_TRIALS,
    SEED_LR_GRID,
    StudySpec,
    default_grid_spec_path,
    example_spec_paths,
    load_spec_file,
    parse_spec,
)


def test_dataset_alone_is_a_study_over_the_seeds_five_learning_rates() -> None:
    spec = parse_spec({"dataset": "digits"})
    assert [p["lr"] for p in spec.grid_points()] == [1e-1, 1e-2, 1e-3, 1e-4, 1e-5]
    assert list(SEED_LR_GRID) == [1e-1, 1e-2, 1e-3, 1e-4, 1e-5]
    assert spec.search.lr_low == 1e-5 and spec.search.lr_high == 1e-1
    assert spec.objective.direction == "maximize"
    assert spec.trial_count() == 5


def test_a_dumped_spec_validates_again_unchanged() -> None:
    spec = parse_spec({"dataset": "mnist", "search": {"sampler": "tpe", "n_trials": 7}})
    again = parse_spec(json.loads(json.dumps(spec.model_dump(mode="json"))))
    assert again == spec
    assert again.trial_count() == 7


def test_points_per_decade_spans_the_range_log_evenly() -> None:
    spec = parse_spec(
        {"dataset": "digits", "search": {"lr_low": 1e-4, "lr_high": 1e-2, "points_per_decade": 2}}
    )
    assert spec.search.lr_grid() == [1e-2, 0.00316228, 1e-3, 0.000316228, 1e-4]


def test_explicit_grid_times_extra_dimensions_gives_every_combination() -> None:
    spec = parse_spec(
        {
            "dataset": "digits",
            "search": {"grid": [0.01, 0.1], "extra": {"weight_decay": [0.0, 5e-4], "width": [8]}},
        }
    )
    points = spec.grid_points()
    assert len(points) == spec.trial_count() == 4
    assert {"lr": 0.1, "weight_decay": 5e-4, "width": 8} in points
    assert len({json.dumps(p, sort_keys=True) for p in points}) == 4


def test_trial_params_reach_the_trainer_config(tmp_path: Path) -> None:
    spec = parse_spec(
        {
            "dataset": "digits",
            "train": {"epochs": 3, "init_from": "ckpt/base.pt"},
            "model": {"width": 8},
        }
    )
    config = spec.to_run_config(
        {"lr": 0.03, "weight_decay": 0.001, "dropout": 0.25, "batch_size": 16, "width": 12},
        data_dir=tmp_path,
        device="cpu",
    )
    assert config.optim.lr == 0.03 and config.optim.epochs == 3
    assert config.optim.weight_decay == 0.001 and config.optim.batch_size == 16
    assert config.model.width == 12 and config.model.dropout == 0.25
    assert config.data.data_dir == tmp_path
    assert config.optim.init_from == tmp_path / "ckpt" / "base.pt"
    assert config.optim.device == "cpu"


BAD_SPECS: list[tuple[str, dict[str, Any], str, str]] = [
    ("missing-dataset", {}, "dataset", "Field required"),
    ("unknown-field", {"dataset": "digits", "lr": 0.1}, "lr", "unknown field"),
    (
        "unknown-nested-field",
        {"dataset": "digits", "train": {"epoch": 3}},
        "train.epoch",
        "unknown",
    ),
    ("unknown-dataset", {"dataset": "imagenet"}, "dataset", "unknown dataset 'imagenet'"),
    ("folder-escape", {"dataset": "imagefolder:../../etc"}, "dataset", "without '..'"),
    ("folder-absolute", {"dataset": "imagefolder:/etc"}, "dataset", "relative"),
    ("unknown-arch", {"dataset": "digits", "model": {"arch": "vit"}}, "model.arch", "'simple'"),
    (
        "lr-not-positive",
        {"dataset": "digits", "search": {"lr_low": 0}},
        "search.lr_low",
        "greater than 0",
    ),
    (
        "low-above-high",
        {"dataset": "digits", "search": {"lr_low": 0.1, "lr_high": 0.01}},
        "search.lr_low",
        "must not exceed lr_high",
    ),
    ("epochs-huge", {"dataset": "digits", "train": {"epochs": 10**9}}, "train.epochs", "1000"),
    ("batch-zero", {"dataset": "digits", "train": {"batch_size": 0}}, "train.batch_size", "0"),
    ("wrong-type", {"dataset": "digits", "train": {"epochs": "many"}}, "train.epochs", "integer"),
    (
        "grid-of-10000",
        {"dataset": "digits", "search": {"grid": [i / 1e5 + 1e-6 for i in range(1, 10_001)]}},
        "search",
        f"limit of {MAX_TRIALS}",
    ),
    (
        "grid-and-points-per-decade",
        {"dataset": "digits", "search": {"grid": [0.1], "points_per_decade": 2}},
        "search.grid",
        "not both",
    ),
    (
        "n-trials-on-a-grid",
        {"dataset": "digits", "search": {"n_trials": 5}},
        "search.n_trials",
        "random or tpe",
    ),
    (
        "grid-with-random",
        {"dataset": "digits", "search": {"sampler": "random", "grid": [0.1]}},
        "search.sampler",
        "need sampler grid",
    ),
    (
        "duplicate-grid",
        {"dataset": "digits", "search": {"grid": [0.1, 0.1]}},
        "search.grid",
        "duplicate",
    ),
    (
        "extra-out-of-range",
        {"dataset": "digits", "search": {"extra": {"dropout": [1.5]}}},
        "search.extra.dropout",
        "less than 1",
    ),
    # The trainer's cross-field rules hold at submit time, not first at the worker.
    (
        "nesterov-without-sgd",
        {"dataset": "digits", "train": {"optimizer": "adam", "nesterov": True}},
        "train.nesterov",
        "needs optimizer=sgd",
    ),
    (
        "warmup-past-the-run",
        {"dataset": "digits", "train": {"epochs": 4, "warmup_epochs": 4}},
        "train.warmup_epochs",
        "smaller than epochs",
    ),
    (
        "storage-on-a-builtin-dataset",
        {"dataset": "digits", "data": {"storage": "stream"}},
        "data.storage",
        "imagefolder datasets only",
    ),
    (
        "bad-sampler",
        {"dataset": "digits", "search": {"sampler": "cmaes"}},
        "search.sampler",
        "grid",
    ),
    ("bad-pruner", {"dataset": "digits", "pruner": "asha"}, "pruner", "median"),
    (
        "checkpoint-escape",
        {"dataset": "digits", "train": {"init_from": "../x.pt"}},
        "train.init_from",
        "..",
    ),
    ("max-parallel-zero", {"dataset": "digits", "max_parallel": 0}, "max_parallel", "1"),
]


@pytest.mark.parametrize(
    ("data", "field", "reason"), [b[1:] for b in BAD_SPECS], ids=[b[0] for b in BAD_SPECS]
)
def test_bad_spec_error_names_the_field_and_the_reason(
    data: dict[str, Any], field: str, reason: str
) -> None:
    with pytest.raises(SpecError) as info:
        parse_spec(data)
    fields = {e.field: e.message for e in info.value.errors}
    assert field in fields, f"expected an error on {field}, got {fields}"
    assert reason in fields[field]


def test_a_spec_that_is_not_a_mapping_is_refused() -> None:
    with pytest.raises(SpecError, match="expected a mapping"):
        parse_spec(["digits"])


def test_spec_files_in_yaml_and_json_load_and_broken_ones_say_why(tmp_path: Path) -> None:
    (tmp_path / "a.json").write_text(json.dumps({"dataset": "digits", "priority": 3}))
    (tmp_path / "b.yaml").write_text("dataset: digits\nsearch: {sampler: random, n_trials: 4}\n")
    (tmp_path / "c.yaml").write_text("dataset: [unclosed\n")
    assert load_spec_file(tmp_path / "a.json").priority == 3
    assert load_spec_file(tmp_path / "b.yaml").trial_count() == 4
    with pytest.raises(SpecError, match="not valid YAML/JSON"):
        load_spec_file(tmp_path / "c.yaml")
    with pytest.raises(SpecError, match="cannot read"):
        load_spec_file(tmp_path / "missing.yaml")


def test_every_example_study_parses() -> None:
    paths = example_spec_paths()
    names = {p.name for p in paths}
    assert default_grid_spec_path() in paths
    assert len(paths) >= 5, names
    for path in paths:
        spec = load_spec_file(path)
        assert isinstance(spec, StudySpec)
        assert 1 <= spec.trial_count() <= MAX_TRIALS


def test_the_default_example_is_the_seeds_grid_on_digits() -> None:
    spec = load_spec_file(default_grid_spec_path())
    assert spec.dataset == "digits"
    assert [p["lr"] for p in spec.grid_points()] == list(SEED_LR_GRID)
