"""Leave-family-out cross-validation of the diagnoser (bench/diagnoser/crossval.py).

Methods are chosen by it, so it must really leave each fold's families out of the
calibration and the arbiter that score them, deal every family into exactly one fold, and
never read the held-out half.
"""

from types import ModuleType
from typing import Any

import pytest

from studies.diagnosis import Curves, Label, Stage
from studies.diagnosis._arbiter import LABELS, feature_names
from tests.diagnosis.bench_modules import bench_fixture, load_bench_module

crossval = bench_fixture("crossval")


calibrate = bench_fixture("calibrate")


def _judged(
    crossval: ModuleType, calibrate: ModuleType, family: str, right: bool, n: int = 6
) -> list[Any]:
    """*n* samples of *family*, each called undertrained at raw score 0.7, right or not."""
    curves = Curves.model_validate(
        {"train_loss": [1.0, 0.8, 0.6], "val_loss": [1.0, 0.85, 0.7], "num_classes": 10}
    )
    sample_type = crossval.Sample
    out = []
    for i in range(n):
        sample = sample_type(f"{family}-s{i}", "train", 3, True, Label.UNDERTRAINED, curves, family)
        outcome = calibrate.Outcome(Stage.UNKNOWN, Label.UNDERTRAINED, 0.7, right)
        out.append(crossval.Judged(sample, False, outcome, None))
    return out


def test_every_family_lands_in_exactly_one_fold(crossval: ModuleType) -> None:
    families = {f"fam{i}" for i in range(11)}
    folds = crossval.family_folds(families, 3)
    assert set(folds) == families
    assert sorted(set(folds.values())) == [0, 1, 2]
    assert folds == crossval.family_folds(set(sorted(families, reverse=True)), 3)  # stable


@pytest.mark.parametrize("k", [1, 12])
def test_an_impossible_fold_count_is_refused_naming_the_option(
    crossval: ModuleType, k: int
) -> None:
    with pytest.raises(ValueError, match="--cv-families"):
        crossval.family_folds({f"fam{i}" for i in range(11)}, k)


def test_a_fold_is_scored_by_a_calibration_fitted_without_it(
    crossval: ModuleType, calibrate: ModuleType
) -> None:
    # Two families, two folds: one always right, the other always wrong at the same score.
    # Calibrated on the OTHER fold, the right family gets a low confidence and the wrong
    # one a high one; a calibration that saw its own fold would do the opposite.
    judged = _judged(crossval, calibrate, "a-good", True) + _judged(
        crossval, calibrate, "b-bad", False
    )
    scored = crossval.cross_validate(judged, 2)
    assert len(scored) == len(judged)
    good = [s.confidence for s in scored if s.sample.family == "a-good"]
    bad = [s.confidence for s in scored if s.sample.family == "b-bad"]
    assert max(good) < 0.5 < min(bad)
    assert {s.fold for s in scored if s.sample.family == "a-good"} == {0}
    assert crossval.fold_false_alarms(scored) == {}  # no healthy sample, no alarm rate


def test_healthy_false_alarms_are_counted_per_fold_and_family(
    crossval: ModuleType, calibrate: ModuleType
) -> None:
    curves = Curves.model_validate({"val_acc": [0.5, 0.7, 0.8], "num_classes": 10})
    judged = []
    for family, label in (("a-calm", Label.HEALTHY), ("b-alarmed", Label.UNDERTRAINED)):
        for i in range(3):
            sample = crossval.Sample(
                f"{family}-s{i}", "train", 3, True, Label.HEALTHY, curves, family
            )
            outcome = calibrate.Outcome(Stage.UNKNOWN, label, 0.6, label is Label.HEALTHY)
            judged.append(crossval.Judged(sample, True, outcome, None))
    scored = crossval.cross_validate(judged, 2)
    assert crossval.fold_false_alarms(scored) == {0: (0, 3), 1: (3, 3)}
    assert crossval.family_false_alarms(scored) == [("b-alarmed", 3, 3)]


def test_a_fold_is_refereed_by_an_arbiter_fitted_without_it(
    crossval: ModuleType, calibrate: ModuleType
) -> None:
    # Four families in two folds (a, c | b, d). The arbiter's first feature says the label,
    # but the two folds disagree on what it means: fitted on the OTHER fold, each family's
    # verdict is the opposite of its own truth; an arbiter that saw its own fold would get
    # some right.
    arbiter = load_bench_module("fit_arbiter")
    width = len(feature_names())
    curves = Curves.model_validate({"val_acc": [0.5, 0.7, 0.8], "num_classes": 10})
    judged = []
    for family, sign, truth in (
        ("a", 1.0, Label.HEALTHY),
        ("b", 1.0, Label.UNDERTRAINED),
        ("c", -1.0, Label.UNDERTRAINED),
        ("d", -1.0, Label.HEALTHY),
    ):
        for i in range(4):
            sample = crossval.Sample(f"{family}-s{i}", "train", 3, False, truth, curves, family)
            outcome = calibrate.Outcome(Stage.IN_PROGRESS, truth, 0.9, True)  # the shipped one
            x = [sign + 0.01 * i] + [0.0] * (width - 1)
            row = arbiter.Row(x, LABELS.index(truth), 0, 0, family)
            judged.append(crossval.Judged(sample, True, outcome, row))
    scored = crossval.cross_validate(judged, 2)
    assert len(scored) == len(judged)
    assert all(not s.outcome.right for s in scored)
    assert {s.outcome.label for s in scored if s.sample.family == "a"} == {Label.UNDERTRAINED}


def _two_waves_that_disagree(calibrate: ModuleType) -> tuple[list[Any], dict[str, int]]:
    """Samples of waves 3 and 4 the arbiter applies to, whose first feature says the label
    but means the opposite in the two waves (so an arbiter fitted on one wave gets every
    sample of the other wrong); and each sample's wave."""
    arbiter = load_bench_module("fit_arbiter")
    width = len(feature_names())
    curves = Curves.model_validate({"val_acc": [0.5, 0.7, 0.8], "num_classes": 10})
    judged, wave_of = [], {}
    for wave, sign in ((3, 1.0), (4, -1.0)):
        for truth, side in ((Label.HEALTHY, sign), (Label.UNDERTRAINED, -sign)):
            for i in range(4):
                name = f"w{wave}-{truth}-s{i}"
                wave_of[name] = wave
                sample = calibrate.Sample(name, "train", 3, False, truth, curves, name)
                outcome = calibrate.Outcome(Stage.IN_PROGRESS, truth, 0.9, True)  # as shipped
                row = arbiter.Row([side + 0.01 * i] + [0.0] * (width - 1),
                                  LABELS.index(truth), 0, wave, name)
                judged.append(calibrate.Judged(sample, True, outcome, row))
    return judged, wave_of


def test_the_calibration_sees_the_arbiter_cross_fitted_by_wave(calibrate: ModuleType) -> None:
    # calibrate.py fits the confidence maps on verdicts of an arbiter fitted WITHOUT each
    # sample's wave (what a user's new recipe meets), so here every cross-fitted verdict is
    # wrong; the shipped outcomes (all right, as an arbiter fitted on its own rows could
    # claim) are replaced.
    judged, _ = _two_waves_that_disagree(calibrate)
    outcomes = calibrate.cross_fitted(judged)
    assert len(outcomes) == len(judged)
    assert not any(o.right for o in outcomes)
    assert all(o.label is not j.sample.truth for o, j in zip(outcomes, judged, strict=True))
    # A sample the arbiter does not apply to keeps the rules' outcome.
    lone = calibrate.Judged(judged[0].sample, True, judged[0].outcome, None)
    assert calibrate.cross_fitted([lone]) == [judged[0].outcome]


def test_leave_one_wave_out_scores_each_wave_without_it(
    crossval: ModuleType, calibrate: ModuleType
) -> None:
    judged, wave_of = _two_waves_that_disagree(calibrate)
    scored = crossval.leave_one_wave_out(judged, wave_of)
    assert len(scored) == len(judged)
    assert all(s.fold == wave_of[s.sample.run_id] for s in scored)
    assert not any(s.outcome.right for s in scored)
