"""The labeled set of REAL training runs, and the diagnoser on its held-out half.

bench/diagnoser holds ≥ 1145 real runs in twenty-one waves whose label is true by construction,
plus cuts of them labeled by what the rest of each run shows (bench/diagnoser/dataset.py says
how). Waves 1–20 are the training (development) half, wave 21 the held-out half (recipe.py):
recipes nothing was tuned on. The tests named ``heldout`` run the diagnoser on the held-out
half and guard its numbers in docs/diagnoser.md against regressions; a session developing
the method deselects them (``-k "not heldout"``) so that the held-out half is evaluated once,
at the end. They are accuracy tests, not timing ones.
"""

import math
import shutil
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from studies.diagnosis import Curves, live_check
from tests.diagnosis.bench_modules import bench_fixture

LABELS = {"healthy", "overfitting", "underfitting", "undertrained", "diverged"}
HELDOUT_WAVE = 21
WHOLE_WAVES_HELDOUT_FROM = 3  # from wave 3 on, each wave was held out whole until the next

# The worker passes each run's plan (epochs, schedule); a CSV's user has none: both are judged.
with_and_without_plans = pytest.mark.parametrize(
    "plans", [True, False], ids=["with-plans", "without-plans"]
)


evaluate = bench_fixture("evaluate")


dataset = bench_fixture("dataset")


wavefile = bench_fixture("wavefile")


@pytest.fixture(scope="module")
def runs(evaluate: ModuleType) -> list[dict[str, Any]]:
    return evaluate.load_runs()  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def heldout(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The runs the thresholds were never tuned on: the only ones an accuracy test may read."""
    return [r for r in runs if r["split"] == "heldout"]


def _misjudged(report: Any) -> list[str]:
    """The report's errors, one readable line each, for an assertion's message."""
    return [f"{s.name}: {s.truth} -> {p}" for s, p, _ in report.errors]


def _settings(run: dict[str, Any]) -> set[tuple[str, str, str]]:
    """What a run's recipe sets, as (section, key, value): its task, checkpoint and config
    (the seed and the learning rate's exact value left out: neither makes a recipe new)."""
    config = run["config"]
    out = {("task", "task", str(run.get("task"))), ("pretrained", "pretrained",
                                                str(config.get("pretrained")))}
    for section in ("data", "model", "optim"):
        out |= {(section, key, repr(value)) for key, value in config[section].items()
                if key not in ("seed", "lr")}
    return out


def test_every_stored_run_is_made_by_its_wave_files_recipe(
    runs: list[dict[str, Any]], wavefile: ModuleType
) -> None:
    # The recipes (bench/diagnoser/waves/*.toml) and the runs/ they made are one set: every
    # recipe has its run and every run records exactly what its recipe says (generate.py's
    # fields). Only the recipes are compared here: no run is diagnosed.
    recipes = {recipe.id: recipe for recipe in wavefile.load_waves()}
    assert sorted(recipes) == [r["id"] for r in runs]
    for run in runs:
        recipe = recipes[run["id"]]
        made = {
            "family": recipe.family, "wave": recipe.wave, "label": recipe.label,
            "split": recipe.split.value, "heldout_until_wave": recipe.heldout_until_wave,
            "dataset": recipe.dataset, "task": recipe.task, "how": recipe.how,
            "config": {"data": recipe.data, "model": recipe.model, "optim": recipe.optim,
                       "pretrained": recipe.pretrained},
            "sum_view": recipe.sum_view,
        }
        recorded = {key: run.get(key) for key in made}
        # The first wave's records predate "family", "task" and config.pretrained.
        recorded["family"] = run.get("family") or run["id"].rsplit("-s", 1)[0]
        recorded["config"] = {"pretrained": None, **run["config"]}
        recorded["sum_view"] = "sum_reduced_scale" in run
        assert recorded == made, run["id"]


def test_the_checkpoints_are_what_the_fine_tuned_recipes_name(wavefile: ModuleType) -> None:
    checkpoints = wavefile.load_checkpoints()
    assert {r.pretrained for r in wavefile.load_waves()} - {None} == set(checkpoints)
    for name, checkpoint in checkpoints.items():
        assert checkpoint.id == f"pretrain-{name}"
        assert checkpoint.task == f"pre-{name}"  # tasks.py's images the waves never train on


_GOOD_WAVE = """
[wave]
number = 8

[[family]]
label = "healthy"
task = "digits"
name = "sgd"
how = "simple w8, SGD"
optim = { lr = 0.05 }
"""


@pytest.mark.parametrize(
    ("line", "changed", "field", "reason"),
    [
        ("optim = {", "optim = { seed = 3,", "family.0.optim", "set by the loader"),
        ("optim =", "optm = {}\noptim =", "family.0.optm", "Extra inputs are not permitted"),
        ('label = "healthy"', 'label = "inconclusive"', "family.0.label", "not inconclusive"),
        ('task = "digits"', 'task = "mnist99"', "family.0.task", "unknown task 'mnist99'"),
        ("optim =", 'pretrained = "imagenet"\noptim =', "family.0.pretrained",
         "unknown checkpoint 'imagenet'"),
        ("optim =", "size = 12.5\noptim =", "family.0.size", "valid integer"),
        ("number = 8", "number = 9", "wave.number", "its name says 8"),
    ],
    ids=["seed", "unknown-key", "label", "task", "checkpoint", "size", "number"],
)
def test_a_bad_wave_file_is_refused_naming_the_field_and_why(
    wavefile: ModuleType, tmp_path: Path, line: str, changed: str, field: str, reason: str
) -> None:
    shutil.copy(wavefile.WAVES_DIR / wavefile.CHECKPOINTS_FILE, tmp_path)
    path = tmp_path / "wave8.toml"
    path.write_text(_GOOD_WAVE)
    made = wavefile.load_wave(8, tmp_path)
    assert [r.id for r in made] == ["digits-healthy-sgd-s0", "digits-healthy-sgd-s1"]
    assert [r.optim for r in made] == [{"lr": 0.05, "seed": 0}, {"lr": 0.05, "seed": 1}]

    path.write_text(_GOOD_WAVE.replace(line, changed, 1))
    with pytest.raises(wavefile.WaveFileError, match=reason) as refused:
        wavefile.load_wave(8, tmp_path)
    assert f"wave8.toml: {field}" in str(refused.value)


def test_healthy_and_underfitting_runs_reached_their_plateau(
    runs: list[dict[str, Any]], dataset: ModuleType
) -> None:
    # Their construction says "trained to convergence" / "cannot fit its own training set": a
    # training loss still descending steadily at the end (a quarter of its fall in the last
    # quarter) is neither, but a slow descent more epochs would carry on (issue 11), and such
    # a run must be remade longer. Waves 14-16 each had one or two (found in the eleventh
    # session, remade at four to twelve times their epochs). An annealed run is settled by its
    # schedule.
    def run(loss: list[float], lr: float = 0.01) -> dict[str, Any]:
        return {"curves": {"train_loss": loss, "lr": [lr] * len(loss)}}

    steady = [2.3 - 0.01 * epoch for epoch in range(40)]
    plateau = [0.5 + 1.8 * 0.8**epoch for epoch in range(40)]
    assert dataset.training_settled(run(steady)) is False
    assert dataset.training_settled(run(plateau)) is True
    annealed = {"curves": {"train_loss": steady, "lr": [0.1] * 39 + [0.001]}}
    assert dataset.training_settled(annealed) is None

    judged = [r for r in runs if r["label"] in ("healthy", "underfitting")]
    verdicts = {r["id"]: dataset.training_settled(r) for r in judged}
    assert sum(v is not None for v in verdicts.values()) >= 90  # most are judged, not skipped
    still_falling = sorted(run_id for run_id, settled in verdicts.items() if settled is False)
    assert not still_falling


def test_the_set_is_big_and_varied(runs: list[dict[str, Any]]) -> None:
    assert len(runs) >= 1145
    assert {r["dataset"] for r in runs} == {"digits", "mnist"}
    assert {r["label"] for r in runs} == LABELS
    assert {r["wave"] for r in runs} == set(range(1, HELDOUT_WAVE + 1))
    second = [r for r in runs if r["wave"] == 2]
    assert len(second) >= 70
    optims = [r["config"]["optim"] for r in runs]

    # Schedules, warm-up and fine-tuning, with the labels each kind can really produce.
    assert {o.get("schedule", "none") for o in optims} == {"none", "cosine", "step"}
    step = {r["label"] for r in runs if r["config"]["optim"].get("schedule") == "step"}
    assert {"healthy", "overfitting", "underfitting"} <= step
    assert sum(o.get("warmup_epochs", 0) > 0 for o in optims) >= 8
    finetuned = [r for r in runs if r["wave"] > 1 and r["config"]["pretrained"]]
    assert {r["label"] for r in finetuned} == LABELS - {"underfitting"}
    assert {r["config"]["optim"]["finetune"] for r in finetuned} == {
        "full", "linear-probe", "auto"
    }

    # 2- to 10-, 12- and 40-class tasks, and tasks whose labels are noisy in validation.
    assert {r["curves"]["num_classes"] for r in runs} == {2, 3, 4, 5, 6, 7, 8, 9, 10, 12, 40}
    for classes in (2, 3, 4, 5, 6, 7, 8, 9, 12, 40):
        assert len({r["label"] for r in runs if r["curves"]["num_classes"] == classes}) >= 4
    for ceiling in ("noisy25", "noisy15m", "noisy10"):
        assert {r["label"] for r in runs if r.get("task") == ceiling} == LABELS

    # Long runs: 100-300 epochs, of several labels and schedules.
    long_runs = [r for r in runs if len(r["curves"]["val_acc"]) >= 100]
    assert len(long_runs) >= 20
    assert max(len(r["curves"]["val_acc"]) for r in runs) >= 250
    assert {r["label"] for r in long_runs} >= LABELS - {"diverged"}

    # Sum-reduced views: a real multiple of the mean losses, for every label, in both halves.
    summed = [r for r in runs if r.get("sum_reduced_scale")]
    assert len(summed) >= 60
    for side in ("train", "heldout"):
        assert {r["label"] for r in summed if r["split"] == side} == LABELS
    assert all(r["sum_reduced_scale"] == r["config"]["optim"].get("batch_size", 64)
               for r in summed)


def test_the_split_is_by_wave(runs: list[dict[str, Any]], heldout: list[dict[str, Any]]) -> None:
    # Waves 1-20 are the training half; wave 21, which nobody diagnosed while developing, is
    # the held-out half. Each earlier held-out side is one recorded fact, the wave that replaced
    # it: some runs of waves 1-2 (the first wave's hash, the second's families) until wave 3;
    # from wave 3 on, each whole wave until the next (wave 20 until wave 21).
    assert all(r["split_by"] == "wave" for r in runs)
    assert heldout == [r for r in runs if r["wave"] == HELDOUT_WAVE]
    earlier = [r for r in runs if r["wave"] < HELDOUT_WAVE]
    assert all(r["split"] == "train" for r in earlier)
    for wave in (1, 2):
        sides = {r.get("heldout_until_wave") for r in earlier if r["wave"] == wave}
        assert sides == {WHOLE_WAVES_HELDOUT_FROM, None}, wave
    for wave in range(WHOLE_WAVES_HELDOUT_FROM, HELDOUT_WAVE):
        members = [r for r in earlier if r["wave"] == wave]
        assert len(members) >= 50
        assert all(r["heldout_until_wave"] == wave + 1 for r in members), wave
    assert all("heldout_until_wave" not in r for r in heldout)
    assert not any(key.startswith("split_before") for r in runs for key in r)

    # The held-out half: ≥ 25 families, each with seeds 0 and 1, ≥ 4 families of every label.
    families: dict[str, list[dict[str, Any]]] = {}
    for run in heldout:
        families.setdefault(run["family"], []).append(run)
    assert len(families) >= 25
    assert all(sorted(r["config"]["optim"]["seed"] for r in members) == [0, 1]
               for members in families.values())
    for label in LABELS:
        assert sum(members[0]["label"] == label for members in families.values()) >= 4, label

    # Every held-out family sets something (a task, an image size, a batch size, a momentum,
    # a schedule step, an epoch count, a layer) that no training run sets, waves 3-20
    # included: new recipes, not new seeds.
    seen = set().union(*(_settings(r) for r in earlier))
    old_families = {r.get("family") or r["id"].rsplit("-s", 1)[0] for r in earlier}
    for family, members in families.items():
        assert family not in old_families
        assert _settings(members[0]) - seen, f"{family} sets nothing new"


def test_the_twenty_first_wave_is_a_practitioners_mix(
    runs: list[dict[str, Any]], heldout: list[dict[str, Any]], dataset: ModuleType
) -> None:
    # What wave 21 varies, leaning to what practitioners run and waves 1-20 lack, neither
    # easier than a real mix nor a trap set: five new tasks (a 14 % noise ceiling on the digits
    # 3-9 among them, the first ceiling on a 7-class task); exactly one healthy family at a
    # label-noise ceiling; an exponential decay (x0.92 every epoch, on a full fine-tune of the
    # MNIST 0-4 checkpoint onto MNIST 3-7) and a long step schedule (x0.4 every 37 of 148
    # epochs); cosines with warm-ups, and two under memorisers of noisy labels;
    # learn-then-collapse runs under SGD and AdamW warm-ups; batch sizes, warm-ups, clean and
    # noisy subsets, a dropout, a label smoothing, a clipping threshold, momentums, weight
    # decays and widths no earlier wave used; runs of 7-17 epochs and of 103-148; an
    # overfitting family WITHOUT label noise; both kinds of undertrained run; weak 1-2-channel
    # nets at their plateau. Only curves, the cut truths of dataset.py and its plateau check are
    # read: nothing here diagnoses a run.
    earlier = [r for r in runs if r["wave"] < HELDOUT_WAVE]
    optims = [r["config"]["optim"] for r in heldout]
    models = [r["config"]["model"] for r in heldout]
    datas = [r["config"]["data"] for r in heldout]
    earlier_optims = [r["config"]["optim"] for r in earlier]
    earlier_datas = [r["config"]["data"] for r in earlier]
    earlier_models = [r["config"]["model"] for r in earlier]

    def new_values(
        key: str, mine: list[dict[str, Any]], theirs: list[dict[str, Any]], wanted: set[Any]
    ) -> None:
        assert {m.get(key) for m in mine} >= wanted, key
        assert wanted.isdisjoint({t.get(key) for t in theirs}), key

    new_batches = {105, 107, 114, 116, 122, 124, 126, 130, 131, 132, 133}
    new_values("batch_size", optims, earlier_optims, new_batches)
    new_values("warmup_epochs", optims, earlier_optims, {0.3, 0.55, 1.7, 4.3, 4.6})
    new_values("label_smoothing", optims, earlier_optims, {0.13})
    new_values("momentum", optims, earlier_optims, {0.71, 0.72, 0.73, 0.74})
    new_values("grad_clip", optims, earlier_optims, {0.45})
    new_values("weight_decay", optims, earlier_optims, {6e-4, 8e-4, 2.5e-3, 9e-3, 0.018, 0.045})
    new_epochs = {17, 37, 43, 46, 59, 71, 79, 83, 92, 94, 97, 103, 109, 113, 117, 118, 126, 148}
    new_values("epochs", optims, earlier_optims, new_epochs)
    new_lrs = {9e-6, 1.1e-4, 1.1e-3, 1.8e-3, 2.4e-3, 3.8e-3, 6.5e-3, 0.013, 0.026, 0.032}
    new_lrs |= {0.042, 0.048, 0.052, 0.062, 0.072, 0.078, 0.105, 0.32, 0.48}
    new_values("lr", optims, earlier_optims, new_lrs | {17.0, 19.0, 24.0})
    new_values("train_subset", datas, earlier_datas, {11, 105, 145, 185, 265})
    new_values("dropout", models, earlier_models, {0.23})
    new_values("width", models, earlier_models, {50, 51, 53})
    assert {o.get("optimizer", "sgd") for o in optims} == {"sgd", "adam", "adamw"}
    assert {o.get("schedule", "none") for o in optims} == {"none", "cosine", "step"}
    assert {m.get("arch") for m in models} == {"simple", "vgg", "resnet"}
    assert {m.get("norm", "batch") for m in models} == {"batch", "none"}
    # an exponential decay, and a long step schedule
    new_steps = {(1, 0.92), (37, 0.4)}
    steps = {
        (o["step_size"], o.get("step_gamma", 0.1)) for o in optims if o.get("schedule") == "step"
    }
    assert steps == new_steps
    assert new_steps.isdisjoint(
        {
            (o.get("step_size", 10), o.get("step_gamma", 0.1))
            for o in earlier_optims
            if o.get("schedule") == "step"
        }
    )
    exponential = {
        r["label"] for r, o in zip(heldout, optims, strict=True) if o.get("step_size") == 1
    }
    assert exponential == {"healthy"}
    # cosines with a warm-up, and cosines under memorisers of noisy labels
    cosine = {
        (r["label"], bool(o.get("warmup_epochs")))
        for r, o in zip(heldout, optims, strict=True)
        if o.get("schedule") == "cosine"
    }
    assert cosine == {("healthy", True), ("overfitting", False)}

    new_tasks = {r.get("task") for r in heldout} - {r.get("task") for r in earlier}
    assert len(new_tasks) >= 5
    assert {r["label"] for r in heldout if r.get("task") in new_tasks} == LABELS
    ceiling_families = {
        r["family"] for r in heldout if r["label"] == "healthy" and "noisy" in str(r.get("task"))
    }
    assert len(ceiling_families) == 1
    noisy = [r for r in heldout if "noisy" in str(r.get("task"))]
    assert {r.get("task") for r in noisy} <= new_tasks
    # seven classes: every earlier noise ceiling had three, four, five, six or ten
    assert {(r["dataset"], r["curves"]["num_classes"]) for r in noisy} == {("digits", 7)}
    earlier_noisy = {r["curves"]["num_classes"] for r in earlier if "noisy" in str(r.get("task"))}
    assert earlier_noisy == {3, 4, 5, 6, 10}

    finetuned = [r for r in heldout if r["config"]["pretrained"]]
    assert {
        (
            r["config"]["pretrained"],
            r.get("task"),
            r["config"]["data"].get("image_size"),
            r["config"]["optim"]["finetune"],
            r["config"]["optim"].get("optimizer", "sgd"),
            r["label"],
        )
        for r in finetuned
    } == {("mnist5", "mnist3to7", 14, "full", "sgd", "healthy")}

    # A run the trainer stopped when its loss went non-finite is shorter than its recipe.
    lengths = {r["id"]: len(r["curves"]["val_acc"]) for r in heldout}
    completed = {r["id"] for r in heldout if r["status"] == "completed"}
    assert max(lengths.values()) == 148
    assert min(lengths[i] for i in completed) == 7
    assert {r["label"] for r in heldout if r["id"] not in completed} == {"diverged"}
    assert {r["label"] for r in heldout if lengths[r["id"]] <= 12} >= {"undertrained", "diverged"}
    assert {r["label"] for r in heldout if lengths[r["id"]] >= 100} >= {
        "healthy",
        "overfitting",
        "underfitting",
    }

    # Healthy: settled, validation accuracy within 1.5 points over the last quarter.
    for run in heldout:
        if run["label"] == "healthy":
            acc = run["curves"]["val_acc"]
            last_quarter = acc[-max(1, len(acc) // 4) :]
            assert max(last_quarter) - min(last_quarter) <= 0.015, run["id"]

    # Still paying though settled-looking: a cut at epoch ≥ 20 of an undertrained run whose
    # last three epochs gained under 1.5 points of validation accuracy, which the rest of its
    # run labels undertrained (the slow descents, whose accuracy creeps while the loss keeps
    # falling), in two families or more.
    paying_yet_flat = set()
    for run in heldout:
        acc = run["curves"]["val_acc"]
        for t in dataset.cut_points(len(acc)):
            flat = t >= 20 and max(acc[t - 3 : t]) - min(acc[t - 3 : t]) < 0.015
            if (
                flat
                and run["label"] == "undertrained"
                and dataset.cut_truth(run, t) == "undertrained"
            ):
                paying_yet_flat.add(run["family"])
    assert len(paying_yet_flat) >= 2, paying_yet_flat

    # Overfitting: the validation loss ends ≥ 50 % above its minimum, the training set fitted.
    for run in heldout:
        if run["label"] == "overfitting":
            loss, train_acc = run["curves"]["val_loss"], run["curves"]["train_acc"]
            assert loss[-1] >= 1.5 * min(loss), run["id"]
            assert max(train_acc[-max(1, len(train_acc) // 4) :]) >= 0.98, run["id"]
    clean_overfitting = [
        r
        for r in heldout
        if r["label"] == "overfitting"
        and not r["config"]["data"].get("label_noise")
        and "noisy" not in str(r.get("task"))
    ]
    assert {r["config"]["data"]["train_subset"] for r in clean_overfitting} == {11}
    for run in clean_overfitting:  # its validation loss really rises after its minimum: ≥ 20 %
        loss = run["curves"]["val_loss"]  # above it at the end, ≥ a tenth of the drop before
        best = loss.index(min(loss))
        assert loss[-1] >= 1.2 * loss[best], run["id"]
        assert loss[-1] - loss[best] >= 0.1 * (max(loss[: best + 1]) - loss[best]), run["id"]
    undertrained = [r for r in heldout if r["label"] == "undertrained"]
    cut_short = {  # at most 12 epochs, its validation loss still falling or accuracy climbing
        r["family"]
        for r in undertrained
        if len(r["curves"]["val_loss"]) <= 12
        and (
            r["curves"]["val_loss"][-1] <= 0.9 * r["curves"]["val_loss"][-3]
            or r["curves"]["val_acc"][-1] - r["curves"]["val_acc"][-3] >= 0.03
        )
    }
    slow = {  # a slow descent: ≥ 40 epochs from within 5 % of log K
        r["family"]
        for r in undertrained
        if len(r["curves"]["val_loss"]) >= 40
        and abs(r["curves"]["val_loss"][0] / math.log(r["curves"]["num_classes"]) - 1) <= 0.05
    }
    assert (len(cut_short), len(slow)) == (3, 2)
    # Weak nets (one or two channels in one stage) that cannot fit their training set: the
    # training accuracy low over the last quarter and the training loss at its plateau (every
    # one judged: none had its LR annealed away).
    weak = [
        r
        for r in heldout
        if r["label"] == "underfitting" and r["config"]["model"].get("width", 32) <= 2
    ]
    assert len({r["family"] for r in weak}) == 5
    for run in weak:
        train_acc = run["curves"]["train_acc"]
        last_quarter = train_acc[-max(1, len(train_acc) // 4) :]
        assert max(last_quarter) <= 0.75, run["id"]
        assert dataset.training_settled(run) is True, run["id"]

    # Learned first (half-way from chance to 1), then collapsed to chance as a warm-up raised
    # the LR (under SGD on two classes and under AdamW); never learned at all at an LR far too
    # high, each stopped by the trainer when the loss went non-finite, or (one seed on MNIST 2
    # vs 9) run to its end at chance, its loss blown up past 1e20 yet finite.
    def learned_then_collapsed(run: dict[str, Any]) -> bool:
        acc: list[float] = run["curves"]["val_acc"]
        chance: float = 1 / run["curves"]["num_classes"]
        return max(acc) >= (1 + chance) / 2 and acc[-1] <= 1.1 * chance

    diverged = [r for r in heldout if r["label"] == "diverged"]
    collapsed = {r["family"] for r in diverged if learned_then_collapsed(r)}
    assert len(collapsed) == 2
    collapsed_runs = [r for r in diverged if r["family"] in collapsed]
    assert all(learned_then_collapsed(r) for r in collapsed_runs)  # both seeds
    assert all(r["config"]["optim"].get("warmup_epochs") for r in collapsed_runs)
    assert {r["config"]["optim"].get("optimizer", "sgd") for r in collapsed_runs} == {
        "sgd",
        "adamw",
    }
    assert 2 in {r["curves"]["num_classes"] for r in collapsed_runs}
    never_learned = [r for r in diverged if r["family"] not in collapsed]
    assert len({r["family"] for r in never_learned}) == 3
    for run in never_learned:
        acc = [a for a in run["curves"]["val_acc"] if a is not None]
        chance = 1 / run["curves"]["num_classes"]
        assert max(acc, default=chance) < chance + 0.1 * (1 - chance), run["id"]
        losses = [x for x in run["curves"]["train_loss"] if x is not None]
        assert run["status"] != "completed" or max(losses) >= 1e20, run["id"]
    assert sum(r["status"] != "completed" for r in never_learned) == 5


# Regression floors, NOT issue 11's targets (docs/diagnoser.md, Results): wave 21 measured at its
# single evaluation, with the method frozen at b9095a8 (the thirteenth session's method, arbiter
# and calibration fitted on waves 1-20): whole runs 100% right (75 of 75), ECE 0.029 / 0.078
# with / without plans; whole runs + cuts 91.3% / 90.3% balanced, no healthy false alarm, ECE
# 0.043 / 0.041. The floors sit just under those figures so that a change which makes the
# held-out half worse fails here; one wave is one look, and earlier waves scored as low as 74%.
HELDOUT_WHOLE_ACCURACY_FLOOR = 0.98
HELDOUT_WHOLE_FALSE_ALARM_CEILING = 0.03
HELDOUT_WHOLE_ECE_CEILING = 0.085
HELDOUT_BALANCED_FLOOR = {True: 0.91, False: 0.90}
HELDOUT_FALSE_ALARM_CEILING = {True: 0.03, False: 0.03}
HELDOUT_ECE_CEILING = 0.045


@with_and_without_plans
def test_heldout_whole_runs_do_not_regress(
    evaluate: ModuleType, heldout: list[dict[str, Any]], plans: bool
) -> None:
    whole, _ = evaluate.samples(heldout, cuts=False, plans=plans)
    report = evaluate.evaluate(whole)
    wrong = _misjudged(report)
    assert report.accuracy >= HELDOUT_WHOLE_ACCURACY_FLOOR, wrong
    assert report.healthy_false_alarms <= HELDOUT_WHOLE_FALSE_ALARM_CEILING, wrong
    assert report.ece <= HELDOUT_WHOLE_ECE_CEILING


@with_and_without_plans
def test_heldout_whole_runs_and_cuts_do_not_regress(
    evaluate: ModuleType, heldout: list[dict[str, Any]], plans: bool
) -> None:
    everything, _ = evaluate.samples(heldout, cuts=True, plans=plans)
    assert sum(not s.whole for s in everything) >= 30  # the cuts are really there
    report = evaluate.evaluate(everything)
    wrong = _misjudged(report)
    assert report.balanced_accuracy >= HELDOUT_BALANCED_FLOOR[plans], wrong[:40]
    assert report.healthy_false_alarms <= HELDOUT_FALSE_ALARM_CEILING[plans], wrong[:40]
    assert report.ece <= HELDOUT_ECE_CEILING


def _first_live_stop(curves: Curves) -> int | None:
    return next(
        (t for t in range(1, curves.epochs + 1) if live_check(curves.prefix(t)) is not None),
        None,
    )


def _blown_up(losses: list[float | None]) -> int | None:
    """The first epoch whose loss is non-finite or ten times its start's scale above it.

    Relative (issue 11): a sum-reduced loss starts at batch × log K, and the first epoch has
    no start to explode from.
    """
    first = losses[0]
    lowest = first
    for epoch, loss in enumerate(losses, start=1):
        if loss is None:
            return epoch
        if first is None:
            continue
        lowest = min(lowest, loss) if lowest is not None else loss
        scale = max(abs(first), first - (lowest if lowest is not None else first))
        if epoch > 1 and loss - first >= 9 * scale > 0:
            return epoch
    return None


# The live check is part of the diagnoser: on the held-out half it runs with the other
# held-out tests (deselected with them while developing).
@pytest.mark.parametrize("half", ["train", "heldout"])
def test_live_check_on_every_prefix_of_every_real_run(
    runs: list[dict[str, Any]], half: str
) -> None:
    # The worker asks after every epoch: runs that did not diverge must never be stopped, and
    # a diverged run must be stopped in the epoch its loss blows up (non-finite, or risen ten
    # times its own scale above its start), or at the latest once it sits at chance level.
    selected = [r for r in runs if r["split"] == half]
    assert selected
    for run in selected:
        curves = Curves.model_validate(run["curves"])
        stop = _first_live_stop(curves)
        if run["label"] != "diverged":
            assert stop is None, f"{run['id']} stopped at epoch {stop}"
            continue
        assert stop is not None, f"{run['id']} never stopped"
        blown = _blown_up(curves.train_loss or [])
        if blown is not None:
            assert stop <= blown, f"{run['id']}: blew up at {blown}, stopped at {stop}"
