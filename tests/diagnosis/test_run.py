"""diagnose_run and live_check on hand-written curves of known shape.

Real training runs are judged in test_labeled_set.py; these pin each rule's behaviour.
"""

import json
import random
import subprocess
import sys
from typing import Any

import pytest

from studies.diagnosis import Curves, Diagnosis, FindingKind, Label, diagnose_run, live_check
from tests.diagnosis import factory


def _diagnose(data: dict[str, Any], **kwargs: Any) -> Diagnosis:
    return diagnose_run(Curves.model_validate(data), **kwargs)


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize(
    ("make", "label"),
    [
        (factory.healthy, Label.HEALTHY),
        (factory.overfitting, Label.OVERFITTING),
        (factory.underfitting, Label.UNDERFITTING),
        (factory.undertrained, Label.UNDERTRAINED),
        (factory.collapsed, Label.DIVERGED),
    ],
    ids=lambda v: getattr(v, "__name__", str(v)),
)
def test_each_shape_gets_its_label(make: Any, label: Label, seed: int) -> None:
    diagnosis = _diagnose(make(seed=seed))
    assert diagnosis.label is label, diagnosis.summary
    assert 0.0 < diagnosis.confidence < 1.0  # a calibrated probability, never certainty


def test_the_diagnoser_does_not_import_torch() -> None:
    # The API and CLI diagnose curves from any framework without paying for torch.
    code = "import studies.diagnosis, sys; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_a_null_loss_is_divergence_not_missing_data() -> None:
    diagnosis = _diagnose({"train_loss": [2.3, 1.9, None], "num_classes": 10})
    assert diagnosis.label is Label.DIVERGED
    assert diagnosis.evidence.nonfinite_epochs == [3]
    assert any(f.kind is FindingKind.LR_TOO_HIGH for f in diagnosis.findings)
    assert {"model.norm": "batch"} in [r.spec_change for r in diagnosis.recommendations]


def test_fewer_than_three_epochs_is_inconclusive_unless_diverged() -> None:
    assert _diagnose({"val_acc": [0.3, 0.5]}).label is Label.INCONCLUSIVE
    assert _diagnose({"train_loss": [None]}).label is Label.DIVERGED


def test_an_exploded_finite_loss_is_divergence() -> None:
    diagnosis = _diagnose({"train_loss": [2.4, 1.5, 900.0], "num_classes": 10})
    assert diagnosis.label is Label.DIVERGED
    assert diagnosis.evidence.exploded_epoch == 3


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(
            factory.curves(
                12, lambda e: (2.5 - 0.01 * e, 2.5 - 0.01 * e, 0.1 + 0.004 * e, 0.1 + 0.005 * e)
            ),
            id="from above log K",
        ),
        pytest.param(
            factory.curves(
                15,
                lambda e: (2.30 - 0.004 * e, 2.30 - 0.004 * e, 0.1 + 0.001 * e, 0.1 + 0.001 * e),
            ),
            id="a smooth slow descent from log K itself (issue 11)",
        ),
    ],
)
def test_slow_steady_progress_near_chance_is_undertrained_not_diverged(
    data: dict[str, Any],
) -> None:
    # A learning rate far too low also starts at chance with loss ≈ log(10), but falls steadily.
    diagnosis = _diagnose(data)
    assert diagnosis.label is Label.UNDERTRAINED, diagnosis.summary
    assert any(f.kind is FindingKind.LR_TOO_LOW for f in diagnosis.findings)


def test_overfitting_says_where_to_stop() -> None:
    diagnosis = _diagnose(factory.overfitting())
    assert diagnosis.best_epoch is not None and diagnosis.best_epoch < 20
    changes = [r.spec_change for r in diagnosis.recommendations]
    assert {"train.epochs": diagnosis.best_epoch} in changes
    assert {"train.weight_decay": 0.0005} in changes
    assert diagnosis.evidence.val_loss_rise_rel is not None
    assert diagnosis.evidence.val_loss_rise_rel > 0.2


def test_late_overconfidence_of_a_healthy_run_is_not_overfitting() -> None:
    # Val loss creeping from 0.06 to 0.09 after falling from 2.3 (the published tools' false
    # alarm) while accuracy holds.
    data = factory.curves(
        40,
        lambda e: (
            2.3 * factory.decay(e) + 0.01,
            2.3 * factory.decay(e) + 0.06 + 0.001 * e,
            0.999 - 0.9 * factory.decay(e),
            0.98 - 0.88 * factory.decay(e),
        ),
        noise=0.003,
    )
    assert _diagnose(data).label is Label.HEALTHY


def test_study_context_turns_a_mediocre_plateau_into_underfitting() -> None:
    data = factory.curves(
        20,
        lambda e: (0.4 + factory.decay(e), 0.42 + factory.decay(e), 0.91, 0.9),
        noise=0.002,
    )
    assert _diagnose(data).label is Label.HEALTHY
    assert _diagnose(data, study_best_val_acc=0.99).label is Label.UNDERFITTING


@pytest.mark.parametrize("keep", ["train_loss", "val_loss", "train_acc", "val_acc"])
def test_any_single_curve_is_enough_and_the_evidence_says_what_was_missing(keep: str) -> None:
    data = {keep: factory.undertrained()[keep], "num_classes": 10}
    diagnosis = _diagnose(data)
    assert diagnosis.evidence.metrics == [keep]
    assert diagnosis.evidence.notes
    if keep.startswith("val"):
        assert diagnosis.label is Label.UNDERTRAINED


def test_the_machine_form_is_plain_json() -> None:
    diagnosis = _diagnose(factory.healthy())
    data = diagnosis.model_dump(mode="json")
    assert set(data) >= {"label", "confidence", "evidence", "findings", "recommendations"}
    assert data["label"] == "healthy"


def test_health_statistics_give_findings() -> None:
    data = factory.healthy(epochs=10)
    data |= {
        "grad_norm": [1.0] * 9 + [500.0],
        "grad_norm_first": [1e-5] * 10,
        "grad_norm_last": [1.0] * 10,
        "dead_relu_fraction": [0.7] * 10,
    }
    kinds = {f.kind for f in _diagnose(data).findings}
    assert kinds >= {
        FindingKind.VANISHING_GRADIENTS,
        FindingKind.EXPLODING_GRADIENTS,
        FindingKind.DYING_RELU,
    }


def test_live_check_stops_within_the_epoch_of_a_non_finite_loss() -> None:
    epochs = factory.healthy(epochs=6)
    losses = epochs["train_loss"]
    for stop_at in range(1, 6):
        data = {"train_loss": [*losses[:stop_at], None], "num_classes": 10}
        verdict = live_check(Curves.model_validate(data))
        assert verdict is not None and verdict.label is Label.DIVERGED


def test_live_check_stops_an_exploded_loss_in_the_same_epoch() -> None:
    data = {"train_loss": [2.4, 1.1, 0.8, 60.0], "num_classes": 10}
    assert live_check(Curves.model_validate(data)) is not None
    assert live_check(Curves.model_validate(data).prefix(3)) is None


@pytest.mark.parametrize("seed", range(20))
def test_live_check_never_stops_a_noisy_healthy_run(seed: int) -> None:
    data = factory.healthy(epochs=30, noise=0.08, seed=seed)
    curves = Curves.model_validate(data)
    assert all(live_check(curves.prefix(t)) is None for t in range(1, 31))


def _learned_then_at_chance(at_chance: list[bool]) -> Curves:
    """20 epochs learned to 0.9, then one epoch per flag: at chance (loss at log 10) or not."""
    accs = [0.9] * 20 + [0.1 if flag else 0.9 for flag in at_chance]
    losses = [0.3 if acc > 0.5 else 2.35 for acc in accs]
    return Curves.model_validate(
        {
            "train_loss": losses,
            "val_loss": losses,
            "train_acc": accs,
            "val_acc": accs,
            "num_classes": 10,
        }
    )


def test_a_collapse_that_flickers_off_chance_is_still_a_collapse() -> None:
    # Ten epochs back at chance, one of the last three landing on a class (0.9 here stands in
    # for any flicker above the chance band): diverged, not a run that learned ...
    flicker = [True] * 8 + [False, True]
    assert diagnose_run(_learned_then_at_chance(flicker)).label is Label.DIVERGED
    # ... and the live check stops it once two epochs in a row say so (a stop is final).
    assert live_check(_learned_then_at_chance(flicker)) is None
    assert live_check(_learned_then_at_chance([*flicker, True])) is not None


@pytest.mark.parametrize("dip", [[True, True], [True, True, False, True]])
def test_a_short_dip_to_chance_after_learning_is_not_stopped(dip: list[bool]) -> None:
    # Two or three epochs at chance with the run above it between: not (yet) a collapse.
    assert live_check(_learned_then_at_chance([False] * 4 + dip)) is None


@pytest.mark.parametrize("seed", range(40))
def test_extreme_but_valid_curves_never_raise(seed: int) -> None:
    # The HTTP endpoint is fuzzed: any input the model accepts must diagnose to valid JSON.
    rng = random.Random(seed)
    extremes = [0.0, 1e-300, 1e300, -1e300, -1.0, 2.3, None]
    epochs = rng.choice([1, 2, 3, 5, 40])
    data: dict[str, Any] = {"num_classes": rng.choice([None, 2, 10, 1_000_000])}
    for name in ("train_loss", "val_loss"):
        if rng.random() < 0.7:
            data[name] = [rng.choice(extremes) for _ in range(epochs)]
    for name in ("train_acc", "val_acc"):
        if rng.random() < 0.7 or not data.keys() - {"num_classes"}:
            data[name] = [rng.choice([0.0, 1.0, 0.5, None]) for _ in range(epochs)]
    for name in ("lr", "grad_norm", "grad_norm_first", "grad_norm_last"):
        if rng.random() < 0.3:
            data[name] = [rng.choice([0.0, 1e-300, 1e300, None]) for _ in range(epochs)]
    diagnosis = _diagnose(data)
    assert 0.0 <= diagnosis.confidence <= 1.0
    json.loads(diagnosis.model_dump_json())
    live_check(Curves.model_validate(data))


def test_oscillation_is_a_finding_but_the_noise_of_a_flat_loss_is_not() -> None:
    swinging = {"train_loss": [2.3, 1.0, 1.6, 0.7, 1.4, 0.6, 1.3, 0.5], "num_classes": 10}
    kinds = {f.kind for f in _diagnose(swinging).findings}
    assert FindingKind.OSCILLATING_LOSS in kinds and FindingKind.LR_TOO_HIGH in kinds
    flat = {"train_loss": [2.303, 2.301, 2.302, 2.300, 2.301, 2.299, 2.300], "num_classes": 10}
    assert not _diagnose(flat).findings
