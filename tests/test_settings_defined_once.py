"""Each training setting is defined once, in the trainer's configs (trainer/_config.py).

These tests walk the trainer's config fields and check that the study spec, the `sweepdoc
train` options and the follow-up planner accept exactly the same names, bounds and
defaults: by comparing declarations, and by probing every bound through each of them (a
value at the bound is accepted, one just past it refused, by all three alike).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

import pytest
import typer
from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo
from typer.core import TyperOption

from service.commands import train as train_command
from studies import followup
from studies.errors import SpecError
from studies.followup import Anchor
from studies.spec import (
    DataSpec,
    ModelSpec,
    SpecLimits,
    StudySpec,
    TrainSpec,
    check_limits,
    field_bounds,
    parse_spec,
)
from trainer import DataConfig, ModelConfig, OptimConfig

# What a study does not set per section, and why: the rest of each trainer config is the
# spec's section, field for field.
NOT_IN_THE_SPEC = {
    ("data", "dataset"): "the spec's top-level `dataset` (required there)",
    ("data", "data_dir"): "the server's SWEEPDOC_DATA_DIR",
    ("optim", "lr"): "what the study searches (search.lr_low, lr_high, grid)",
    ("optim", "device"): "the worker's",
}
# Declared again by the spec on purpose: a checkpoint is a path under the data root.
RETYPED_BY_THE_SPEC = {("optim", "init_from")}
# What the CLI fills itself rather than taking as an option.
NOT_ON_THE_CLI = {("data", "data_dir")}

SECTIONS: dict[str, tuple[type[BaseModel], type[BaseModel], str]] = {
    # trainer section: (trainer config, spec section, the spec's name for it)
    "data": (DataConfig, DataSpec, "data"),
    "model": (ModelConfig, ModelSpec, "model"),
    "optim": (OptimConfig, TrainSpec, "train"),
}
# Image-folder options need an image-folder dataset; no other rule depends on the dataset.
DATASET = "imagefolder:cats"


def trainer_fields() -> Iterator[tuple[str, str, FieldInfo]]:
    for section, (config, _, _) in SECTIONS.items():
        for name, info in config.model_fields.items():
            yield section, name, info


@dataclass(frozen=True)
class Probe:
    """One value of a bounded numeric field, and whether the trainer accepts it."""

    section: str
    field: str
    value: float
    valid: bool

    @property
    def id(self) -> str:
        return f"{self.section}.{self.field}={self.value!r}"


def _probes() -> list[Probe]:
    """Each bound of each numeric trainer field: the value at it and the one just past it."""
    probes = []
    for section, name, info in trainer_fields():
        config = SECTIONS[section][0]
        bounds = field_bounds(config, name)
        step: float = 1 if "int" in str(info.annotation) else 1e-6
        for edge, inside, outside in (
            (bounds.ge, 0.0, -step),
            (bounds.gt, step, 0.0),
            (bounds.le, 0.0, step),
            (bounds.lt, -step, 0.0),
        ):
            if edge is None:
                continue
            kind = int if step == 1 else float
            probes.append(Probe(section, name, kind(edge + inside), True))
            probes.append(Probe(section, name, kind(edge + outside), False))
    return probes


PROBES = _probes()


def _trainer_accepts(probe: Probe) -> bool:
    config = SECTIONS[probe.section][0]
    extra = {"dataset": DATASET} if config is DataConfig else {}
    try:
        config.model_validate({probe.field: probe.value, **extra})
    except ValidationError:
        return False
    return True


def _spec_data(section: str, field: str, value: Any) -> dict[str, Any]:
    return {"dataset": DATASET, SECTIONS[section][2]: {field: value}}


# -- the spec ---------------------------------------------------------------------------


@pytest.mark.parametrize("section", list(SECTIONS))
def test_the_spec_section_has_the_trainers_fields_and_no_others(section: str) -> None:
    config, spec_section, _ = SECTIONS[section]
    expected = {n for n in config.model_fields if (section, n) not in NOT_IN_THE_SPEC}
    assert set(spec_section.model_fields) == expected


@pytest.mark.parametrize(
    ("section", "name"),
    [
        (s, n)
        for s, n, _ in trainer_fields()
        if (s, n) not in NOT_IN_THE_SPEC and (s, n) not in RETYPED_BY_THE_SPEC
    ],
)
def test_the_spec_declares_each_field_as_the_trainer_does(section: str, name: str) -> None:
    config, spec_section, _ = SECTIONS[section]
    ours, theirs = config.model_fields[name], spec_section.model_fields[name]
    assert theirs.annotation == ours.annotation
    assert theirs.default == ours.default
    assert theirs.description == ours.description and ours.description
    assert theirs.metadata == ours.metadata  # the bounds


def test_the_spec_dataset_is_the_trainers_with_its_help_text() -> None:
    assert StudySpec.model_fields["dataset"].description == (
        DataConfig.model_fields["dataset"].description
    )
    for dataset in ("digits", "cifar100", "imagefolder:a/b"):
        DataConfig(dataset=dataset)
        parse_spec({"dataset": dataset})


@pytest.mark.parametrize("probe", PROBES, ids=[p.id for p in PROBES])
def test_the_spec_accepts_a_bound_exactly_when_the_trainer_does(probe: Probe) -> None:
    assert _trainer_accepts(probe) is probe.valid
    if (probe.section, probe.field) in NOT_IN_THE_SPEC:
        return
    try:
        parse_spec(_spec_data(probe.section, probe.field, probe.value))
    except SpecError:
        accepted = False
    else:
        accepted = True
    assert accepted is probe.valid


def test_a_spec_becomes_the_run_config_it_describes(tmp_path: Path) -> None:
    """Every section field reaches the trainer's config unchanged (nothing dropped on the
    way), with the trial's learning rate and the worker's device added."""
    spec = parse_spec(
        {
            "dataset": DATASET,
            "data": {"val_fraction": 0.3, "storage": "stream", "image_size": 16},
            "model": {"arch": "resnet", "zero_init_residual": False},
            "train": {"epochs": 7, "precision": "fp32", "schedule": "cosine"},
        }
    )
    config = spec.to_run_config({"lr": 0.02}, data_dir=tmp_path, device="cpu")
    for section, (_, _, spec_name) in SECTIONS.items():
        stated = getattr(spec, spec_name).model_dump(exclude={"init_from"})
        assert getattr(config, section).model_dump(include=set(stated)) == stated
    assert (config.optim.lr, config.optim.device) == (0.02, "cpu")


# -- the CLI ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def train_options() -> dict[str, TyperOption]:
    app = typer.Typer(add_completion=False)
    app.command()(train_command.train)
    command = typer.main.get_command(app)
    return {p.name: p for p in command.params if isinstance(p, TyperOption) and p.name}


@pytest.mark.parametrize(
    ("section", "name"),
    [(s, n) for s, n, _ in trainer_fields() if (s, n) not in NOT_ON_THE_CLI],
)
def test_every_training_setting_is_an_option_with_the_trainers_default_and_help(
    train_options: dict[str, TyperOption], section: str, name: str
) -> None:
    info = SECTIONS[section][0].model_fields[name]
    option = train_options[name]
    assert train_command.OPTION_FOR_FIELD[(section, name)] in option.opts
    default = info.default.value if isinstance(info.default, Enum) else info.default
    if isinstance(default, bool):
        assert option.default is default
    else:
        assert option.default == (None if default is None else str(default))
    assert option.help == info.description


def test_the_cli_has_no_training_option_the_trainer_lacks(
    train_options: dict[str, TyperOption],
) -> None:
    fields = {n for s, n, _ in trainer_fields() if (s, n) not in NOT_ON_THE_CLI}
    assert set(train_options) - fields == {"checkpoint", "out", "threads"}


@pytest.mark.parametrize("probe", PROBES, ids=[p.id for p in PROBES])
def test_the_cli_accepts_a_bound_exactly_when_the_trainer_does(
    probe: Probe, tmp_path: Path
) -> None:
    if (probe.section, probe.field) in NOT_ON_THE_CLI:
        return
    values = {probe.field: str(probe.value), "dataset": DATASET}
    try:
        train_command.run_config(values, data_dir=tmp_path)
    except ValueError as e:
        assert not probe.valid, str(e)
        assert train_command.OPTION_FOR_FIELD[(probe.section, probe.field)] in str(e)
    else:
        assert probe.valid


# -- the follow-up planner --------------------------------------------------------------

MOVES: dict[str, Callable[[StudySpec, SpecLimits], followup.Followup]] = {
    "refine": lambda s, lim: followup.refine(s, Anchor(lr=0.01), lim),
    "train_longer": lambda s, lim: followup.train_longer(s, Anchor(lr=0.01), lim),
    "regularize": lambda s, lim: followup.regularize(s, Anchor(lr=0.01, best_epoch=1), lim),
    "grow": lambda s, lim: followup.grow(s, Anchor(lr=0.01), lim),
    "rerun_longer": lambda s, lim: followup.rerun_longer(s, Anchor(lr=0.01), lim),
    "search_lower": lambda s, lim: followup.search_lower(s, 0.01, lim),
    "rerun": followup.rerun,
    "wait": followup.wait,
}
VALID_PROBES = [
    p for p in PROBES if p.valid and (p.section, p.field) not in NOT_IN_THE_SPEC
]


@pytest.mark.parametrize("probe", VALID_PROBES, ids=[p.id for p in VALID_PROBES])
def test_the_planner_keeps_every_setting_at_its_bound_within_the_trainers_bounds(
    probe: Probe,
) -> None:
    """A study with any setting at the edge of what the trainer accepts gets a follow-up
    from every move, and that follow-up is a spec the trainer and the server accept."""
    spec = parse_spec(_spec_data(probe.section, probe.field, probe.value))
    limits = SpecLimits()
    for name, move in MOVES.items():
        plan = move(spec, limits)
        assert plan.spec is not None, (name, plan.next_step)
        assert check_limits(plan.spec, limits) == [], name
        plan.spec.to_run_config({"lr": 0.01}, data_dir=Path("/data"))  # the trainer accepts it


@pytest.mark.parametrize(
    ("move", "section", "name"),
    [
        ("grow", "model", "width"),
        ("grow", "optim", "epochs"),
        ("train_longer", "optim", "epochs"),
    ],
)
def test_the_planner_grows_a_setting_up_to_the_trainers_largest_value(
    move: str, section: str, name: str
) -> None:
    largest = field_bounds(SECTIONS[section][0], name).le
    assert largest is not None
    spec = parse_spec(_spec_data(section, name, math.ceil(largest * 0.75)))
    plan = MOVES[move](spec, SpecLimits())
    assert plan.spec is not None
    assert getattr(getattr(plan.spec, SECTIONS[section][2]), name) == largest


def test_the_planners_weight_decays_start_from_the_trainers_default_and_stop_at_its_bound(
) -> None:
    default = OptimConfig.model_fields["weight_decay"].default
    strongest = field_bounds(OptimConfig, "weight_decay").le
    cases = {0.0: [0.0, default, 10 * default], default: [default, 10 * default, 100 * default]}
    cases[strongest] = [strongest]
    for decay, expected in cases.items():
        spec = parse_spec({"dataset": "digits", "train": {"weight_decay": decay}})
        plan = MOVES["regularize"](spec, SpecLimits())
        assert plan.spec is not None
        assert plan.spec.search.extra.weight_decay == pytest.approx(expected), decay
