"""The labeled set's recipes are data: ``waves/waveN.toml`` holds wave N's families (recipes),
``waves/checkpoints.toml`` the checkpoints its fine-tuning families start from; this module
turns a file into its ``recipe.Run`` list (``load_wave``, ``load_waves``, ``load_checkpoints``).

A wave file has a ``[wave]`` table (``number``, and for an MNIST task's image size
``image_size``, default ``family.MNIST_SIZE``, and ``task_sizes``, a size per task) and its
families in one of two shapes:

- ``[[family]]`` (waves 2 on): one recipe — ``label``, ``task`` (tasks.py, or ``digits``),
  ``name``, ``how``, and optionally ``size`` (its MNIST task's image size, over the wave's),
  ``pretrained`` (a checkpoint's name), ``formerly_heldout`` (wave 2 only: its side of the
  split before wave 3) and ``data``/``model``/``optim`` tables — trained with seeds 0 and 1 as
  family.py makes every such family;
- ``[[block]]`` (wave 1, as it was made): a ``dataset`` (digits | mnist), its ``seeds``, a
  ``data`` table put before each family's own, and ``[[block.family]]`` tables (``label``,
  ``name``, ``how``, optionally ``seeds``, a subset of the block's, and ``data``/``model``/
  ``optim``). A block makes its runs seed by seed, each family in file order, ids
  ``<dataset>-<label>-<name>-s<seed>``, the seed the last entry of ``optim``, nothing added.

The seed is never written in a wave's ``optim``: the loader sets it. Comments in the files say
why each label is true and what each changed recipe first was; the files are the record.
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
)

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))  # run from anywhere: import the repo's packages
sys.path.insert(0, str(HERE))  # and family.py, recipe.py and tasks.py beside this file

from family import BUILTIN_DIGITS, MNIST_SIZE, family_runs  # noqa: E402
from recipe import Run  # noqa: E402
from tasks import TASKS  # noqa: E402

from studies.diagnosis import Label  # noqa: E402

WAVES_DIR = HERE / "waves"
CHECKPOINTS_FILE = "checkpoints.toml"
WAVE_FILE = re.compile(r"wave(\d+)\.toml")
SEED = "seed"  # the optim key the loader sets from the seeds
CHECKPOINT_LABEL = "healthy"  # a checkpoint is a sensible recipe's best-validation weights


class WaveFileError(ValueError):
    """A wave or checkpoints file that does not describe runs: names the file, field and why."""


Table = dict[str, Any]  # a data/model/optim table: trainer config fields, checked when trained


class _Entry(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    label: Annotated[Label, Field(strict=False)]
    name: str
    how: str
    data: Table = Field(default_factory=dict)
    model: Table = Field(default_factory=dict)
    optim: Table = Field(default_factory=dict)

    @field_validator("label")
    @classmethod
    def _a_true_label(cls, label: Label) -> Label:
        if label is Label.INCONCLUSIVE:
            raise ValueError("a run's label is what its construction makes true, not inconclusive")
        return label

    @field_validator("optim")
    @classmethod
    def _no_seed(cls, optim: Table) -> Table:
        if SEED in optim:
            raise ValueError(f"'{SEED}' is set by the loader from the seeds, not written here")
        return optim


def _known_task(task: str) -> str:
    if task != BUILTIN_DIGITS and task not in TASKS:
        raise ValueError(f"unknown task {task!r}: {BUILTIN_DIGITS!r} or one of tasks.py's")
    return task


TaskName = Annotated[str, AfterValidator(_known_task)]


class FamilyEntry(_Entry):
    """One recipe of a wave from the second on (``[[family]]``)."""

    task: TaskName
    size: int | None = None
    pretrained: str | None = None
    formerly_heldout: bool | None = None


class BlockFamily(_Entry):
    """One recipe of the first wave (``[[block.family]]``): *seeds*, where given, its own."""

    seeds: list[int] | None = None


class SeedBlock(BaseModel):
    """The first wave's families of one dataset, made seed by seed (``[[block]]``)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    dataset: Literal["digits", "mnist"]
    seeds: list[int]
    data: Table = Field(default_factory=dict)
    family: list[BlockFamily]


class WaveHeader(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    number: int
    image_size: int = MNIST_SIZE
    task_sizes: dict[str, int] = Field(default_factory=dict)


class WaveFile(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    wave: WaveHeader
    family: list[FamilyEntry] = Field(default_factory=list)
    block: list[SeedBlock] = Field(default_factory=list)


class CheckpointEntry(BaseModel):
    """A checkpoint's recipe (``[[checkpoint]]``): its run is ``pretrain-<name>``."""

    model_config = ConfigDict(extra="forbid", strict=True)

    name: str
    task: TaskName
    how: str
    data: Table = Field(default_factory=dict)
    model: Table = Field(default_factory=dict)
    optim: Table


class CheckpointsFile(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    checkpoint: list[CheckpointEntry]


Schema = TypeVar("Schema", bound=BaseModel)


def _read(path: Path, schema: type[Schema]) -> Schema:
    try:
        with path.open("rb") as file:
            content = tomllib.load(file)
        return schema.model_validate(content)
    except tomllib.TOMLDecodeError as error:
        raise WaveFileError(f"{path}: not TOML: {error}") from error
    except ValidationError as error:
        reasons = "; ".join(
            f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors()
        )
        raise WaveFileError(f"{path}: {reasons}") from error


def load_checkpoints(directory: Path = WAVES_DIR) -> dict[str, Run]:
    """The checkpoints the fine-tuning families start from, by name (checkpoints.toml)."""
    entries = _read(directory / CHECKPOINTS_FILE, CheckpointsFile).checkpoint
    return {
        entry.name: Run(
            f"pretrain-{entry.name}", CHECKPOINT_LABEL, TASKS[entry.task].source, entry.how,
            data=entry.data, model=entry.model, optim=entry.optim, task=entry.task,
        )
        for entry in entries
    }


def wave_numbers(directory: Path = WAVES_DIR) -> list[int]:
    """The waves that have a file, in order."""
    found = (WAVE_FILE.fullmatch(path.name) for path in directory.glob("wave*.toml"))
    return sorted(int(match[1]) for match in found if match)


def load_wave(number: int, directory: Path = WAVES_DIR) -> list[Run]:
    """Wave *number*'s runs, in the order they were made."""
    path = directory / f"wave{number}.toml"
    if not path.is_file():
        raise WaveFileError(f"{path}: no such wave file (waves: {wave_numbers(directory)})")
    wave = _read(path, WaveFile)
    if wave.wave.number != number:
        raise WaveFileError(f"{path}: wave.number is {wave.wave.number}, its name says {number}")
    if bool(wave.family) == bool(wave.block):
        raise WaveFileError(f"{path}: a wave has [[family]] tables or (wave 1) [[block]] ones")
    if wave.block:
        return [run for index, block in enumerate(wave.block)
                for run in _block_runs(path, number, index, block)]
    checkpoints = load_checkpoints(directory)
    for index, entry in enumerate(wave.family):
        if entry.pretrained is not None and entry.pretrained not in checkpoints:
            raise WaveFileError(f"{path}: family.{index}.pretrained: unknown checkpoint "
                                f"{entry.pretrained!r} (checkpoints.toml: {sorted(checkpoints)})")
    return [run for entry in wave.family for run in _family_runs(wave.wave, entry)]


def load_waves(directory: Path = WAVES_DIR) -> list[Run]:
    """Every wave's runs, wave by wave: the whole labeled set."""
    return [run for number in wave_numbers(directory) for run in load_wave(number, directory)]


def _family_runs(wave: WaveHeader, entry: FamilyEntry) -> list[Run]:
    size = entry.size if entry.size is not None else wave.task_sizes.get(entry.task,
                                                                         wave.image_size)
    return family_runs(
        wave.number, entry.label.value, entry.task, entry.name, entry.how,
        optim=entry.optim, data=entry.data, model=entry.model, image_size=size,
        pretrained=entry.pretrained, formerly_heldout=entry.formerly_heldout,
    )


def _block_runs(path: Path, wave: int, index: int, block: SeedBlock) -> list[Run]:
    """A first-wave block's runs: seed by seed, each family (with that seed) in file order."""
    for number, family in enumerate(block.family):
        if family.seeds is not None and not set(family.seeds) <= set(block.seeds):
            raise WaveFileError(f"{path}: block.{index}.family.{number}.seeds: "
                                f"{family.seeds} is not a subset of the block's {block.seeds}")
    return [
        Run(f"{block.dataset}-{family.label.value}-{family.name}-s{seed}", family.label.value,
            block.dataset, family.how, data={**block.data, **family.data}, model=family.model,
            optim={**family.optim, SEED: seed}, wave=wave)
        for seed in block.seeds
        for family in block.family
        if family.seeds is None or seed in family.seeds
    ]
