"""The arbiter (studies/diagnosis/_arbiter.py): for a run in progress or open-ended, the label a
model of the labeled set's runs gives, weighing the measured pieces and the rules' verdict
together.

It must apply only where it was fitted (a run in progress, or an open-ended one — no plan, or a
plan finished — logging all four curves that has left chance; never a study-context
underfitting verdict, never to call a run diverged), pick the model of the run's kind, say why
it overrode the rules, and refuse a model file fitted on other features.
"""

import math
import re
from typing import Any

import pytest
from pydantic import ValidationError

from studies.diagnosis import Curves, Label, diagnose_run
from studies.diagnosis._arbiter import (
    LABELS,
    ArbiterKind,
    ArbiterModel,
    Arbiters,
    _models,
    applies,
    arbitrate,
    feature_names,
    features,
    kind_of,
)
from studies.diagnosis._measure import Measures, measure, measure_levels
from studies.diagnosis._rules import decide
from studies.diagnosis._verdict import Verdict
from tests.diagnosis import factory

PLAN_OF_60 = {"epochs": 60, "schedule": "cosine"}


def _model_favouring(label: Label, kind: ArbiterKind = ArbiterKind.IN_PROGRESS) -> ArbiterModel:
    """A hand-made model whose only preference is *label* (zero weights, one intercept)."""
    width = len(feature_names())
    return ArbiterModel(
        kind=kind,
        fitted_on="test",
        features=feature_names(),
        labels=list(LABELS),
        clip_low=[-1e9] * width,
        clip_high=[1e9] * width,
        mean=[0.0] * width,
        scale=[1.0] * width,
        coef=[[0.0] * width for _ in LABELS],
        intercept=[3.0 if lbl is label else 0.0 for lbl in LABELS],
    )


def _favouring(label: Label) -> Arbiters:
    """Both kinds' models, each preferring *label* only."""
    return Arbiters(models=[_model_favouring(label, kind) for kind in ArbiterKind])


def _measures(data: dict[str, Any], *, plan: dict[str, Any] | None = PLAN_OF_60) -> Measures:
    return measure(measure_levels(Curves.model_validate(data | {"plan": plan})))


def _in_progress() -> Measures:
    """Epoch 20 of a planned 60: settled curves, all four logged, well clear of chance."""
    return _measures(factory.healthy(20))


def test_the_shipped_models_match_the_features_this_diagnoser_computes() -> None:
    models = _models()
    assert models is not None
    assert {model.kind for model in models.models} == set(ArbiterKind)
    for model in models.models:
        assert model.features == feature_names()
        assert Label.DIVERGED not in model.labels  # diverged needs its own evidence
        shares = model.probabilities(features(_in_progress(), Label.HEALTHY) or [])
        assert math.isclose(sum(shares.values()), 1.0)
    with pytest.raises(ValidationError, match="one model per kind"):
        Arbiters(models=[_model_favouring(Label.HEALTHY)] * 2)


def test_a_model_fitted_on_other_features_is_refused_with_the_fix() -> None:
    good = _model_favouring(Label.HEALTHY).model_dump()
    with pytest.raises(ValidationError, match=re.escape("re-run bench/diagnoser/fit_arbiter.py")):
        ArbiterModel.model_validate(good | {"features": [*feature_names()[:-1], "other"]})
    with pytest.raises(ValidationError, match="one value per feature"):
        ArbiterModel.model_validate(good | {"mean": [0.0]})


def test_absurd_inputs_are_clipped_to_what_the_model_was_fitted_on() -> None:
    models = _models()
    assert models is not None
    x = [1e300, -1e300] * (len(feature_names()) // 2) + [1e300] * (len(feature_names()) % 2)
    for model in models.models:
        shares = model.probabilities(x)
        assert all(0.0 <= p <= 1.0 and not math.isnan(p) for p in shares.values())


def test_on_a_run_in_progress_the_arbiter_decides_and_says_why() -> None:
    m = _in_progress()
    rules = decide(m, None)
    other = Label.HEALTHY if rules.label is not Label.HEALTHY else Label.UNDERTRAINED
    verdict = arbitrate(m, rules, study_context=False, models=_favouring(other))
    assert verdict.label is other
    assert "40 of 60 planned epochs still to come" in verdict.reason
    assert f"the rules alone read {rules.label.value}" in verdict.reason
    agreeing = arbitrate(m, rules, study_context=False, models=_favouring(rules.label))
    assert agreeing.label is rules.label and agreeing.reason == rules.reason
    assert agreeing.confidence > 0.5  # the model's probability, calibrated afterwards


@pytest.mark.parametrize(
    ("case", "data", "plan"),
    [
        ("no training accuracy", {**factory.healthy(20), "train_acc": None}, PLAN_OF_60),
        ("no plan, no training accuracy", {**factory.healthy(20), "train_acc": None}, None),
    ],
)
def test_where_it_was_not_fitted_the_rules_stand(
    case: str, data: dict[str, Any], plan: dict[str, Any] | None
) -> None:
    m = _measures(data, plan=plan)
    assert not applies(m), case
    rules = decide(m, None)
    verdict = arbitrate(m, rules, study_context=False, models=_favouring(Label.OVERFITTING))
    assert verdict == rules, case


def test_a_run_without_a_plan_or_with_its_plan_finished_is_judged_open_ended() -> None:
    m = _measures(factory.healthy(20), plan=None)
    assert kind_of(m) is ArbiterKind.OPEN_ENDED and applies(m)
    rules = decide(m, None)
    other = Label.UNDERTRAINED if rules.label is not Label.UNDERTRAINED else Label.HEALTHY
    models = Arbiters(
        models=[
            _model_favouring(rules.label, ArbiterKind.IN_PROGRESS),
            _model_favouring(other, ArbiterKind.OPEN_ENDED),
        ]
    )
    verdict = arbitrate(m, rules, study_context=False, models=models)
    assert verdict.label is other
    assert "20 epochs recorded, no plan given" in verdict.reason
    # Only the in-progress model fitted: a run without a plan keeps the rules' verdict.
    only = Arbiters(models=[_model_favouring(other, ArbiterKind.IN_PROGRESS)])
    assert arbitrate(m, rules, study_context=False, models=only) == rules
    assert kind_of(_in_progress()) is ArbiterKind.IN_PROGRESS
    # A run that finished its plan asks the same question: would more epochs pay.
    finished = _measures(factory.healthy(60))
    assert kind_of(finished) is ArbiterKind.OPEN_ENDED and applies(finished)
    rules = decide(finished, None)
    other = Label.UNDERTRAINED if rules.label is not Label.UNDERTRAINED else Label.HEALTHY
    verdict = arbitrate(finished, rules, study_context=False, models=_favouring(other))
    assert verdict.label is other and "60 epochs recorded, its plan finished" in verdict.reason


def test_open_ended_the_rules_undertrained_is_never_turned_into_underfitting() -> None:
    # The rules' undertrained says the curves have not settled; underfitting needs a model
    # that stopped learning. A model preferring underfitting, then healthy, gives healthy on
    # an open-ended run the rules call undertrained, and underfitting on one in progress.
    x = [0.0] * len(feature_names())
    x[feature_names().index("rule_undertrained")] = 1.0
    x[feature_names().index("train_fit")] = 0.3
    prefers = {Label.UNDERFITTING: 3.0, Label.HEALTHY: 2.0}
    intercept = [prefers.get(lbl, 0.0) for lbl in LABELS]
    for kind, expected in (
        (ArbiterKind.OPEN_ENDED, Label.HEALTHY),
        (ArbiterKind.IN_PROGRESS, Label.UNDERFITTING),
    ):
        model = _model_favouring(Label.HEALTHY, kind).model_copy(update={"intercept": intercept})
        assert model.choose(x)[0] is expected, kind
    x[feature_names().index("rule_undertrained")] = 0.0
    x[feature_names().index("rule_healthy")] = 1.0
    open_ended = _model_favouring(Label.HEALTHY, ArbiterKind.OPEN_ENDED)
    assert open_ended.model_copy(update={"intercept": intercept}).choose(x)[0] is (
        Label.UNDERFITTING
    )


def test_an_underfitting_verdict_from_the_study_best_stands() -> None:
    m = _in_progress()
    rules = Verdict(Label.UNDERFITTING, 0.8, "well below the study's best")
    models = _favouring(Label.HEALTHY)
    assert arbitrate(m, rules, study_context=True, models=models) == rules
    assert arbitrate(m, rules, study_context=False, models=models).label is Label.HEALTHY


def test_a_diverged_verdict_is_never_the_arbiters_to_change() -> None:
    m = _in_progress()
    rules = Verdict(Label.DIVERGED, 0.9, "never learned")
    assert arbitrate(m, rules, study_context=False, models=_favouring(Label.HEALTHY)) == rules


def test_a_diagnosis_in_progress_carries_the_arbiters_label_end_to_end() -> None:
    # Through the public entry point: the label is one the arbiter can give, and the JSON
    # shape is unchanged (no new required field).
    diagnosis = diagnose_run(Curves.model_validate(factory.healthy(20) | {"plan": PLAN_OF_60}))
    assert diagnosis.label in LABELS
    assert 0.0 <= diagnosis.confidence <= 1.0


def test_a_piece_that_is_not_finite_leaves_the_rules_verdict(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Hostile curves can make a pace or a p-value NaN; the model never saw one, so the
    # rules' verdict stands rather than a label drawn from NaN probabilities.
    import studies.diagnosis._arbiter as arbiter

    m = _in_progress()
    rules = decide(m, None)
    real = arbiter.features

    def with_nan(measures: Measures, rule: Label) -> list[float] | None:
        x = real(measures, rule)
        return None if x is None else [math.nan, *x[1:]]

    monkeypatch.setattr(arbiter, "features", with_nan)
    models = _favouring(Label.OVERFITTING)
    assert arbitrate(m, rules, study_context=False, models=models) == rules


def test_a_memorised_training_set_is_never_called_underfitting() -> None:
    # A model that prefers underfitting above all, then healthy: on a run whose training
    # accuracy is 1.000 the definition (cannot fit its own training set) rules it out.
    model = _model_favouring(Label.UNDERFITTING).model_copy(
        update={
            "intercept": [
                {Label.UNDERFITTING: 3.0, Label.HEALTHY: 2.0}.get(lbl, 0.0) for lbl in LABELS
            ]
        }
    )
    models = Arbiters(models=[model])
    fitted = {**factory.healthy(20), "train_acc": [1.0] * 20}
    m = _measures(fitted)
    verdict = arbitrate(m, decide(m, None), study_context=False, models=models)
    assert verdict.label is Label.HEALTHY, verdict.reason
    weak = _measures({**factory.healthy(20), "train_acc": [0.6] * 20, "val_acc": [0.58] * 20})
    assert arbitrate(weak, decide(weak, None), study_context=False, models=models).label is (
        Label.UNDERFITTING
    )
