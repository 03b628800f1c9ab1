"""The arbiter (studies/diagnosis/_arbiter.py): for a run in progress, the label a model of the
labeled set's runs gives, weighing the measured pieces and the rules' verdict together.

It must apply only where it was fitted (a run in progress logging all four curves that has
left chance, never a study-context underfitting verdict, never to call a run diverged), say
why it overrode the rules, and refuse a model file fitted on other features.
"""

import math
import re
from typing import Any

import pytest
from pydantic import ValidationError

from studies.diagnosis import Curves, Label, diagnose_run
from studies.diagnosis._arbiter import (
    LABELS,
    ArbiterModel,
    _model,
    applies,
    arbitrate,
    feature_names,
    features,
)
from studies.diagnosis._measure import Measures, measure, measure_levels
from studies.diagnosis._rules import decide
from studies.diagnosis._verdict import Verdict
from tests.diagnosis import factory

PLAN_OF_60 = {"epochs": 60, "schedule": "cosine"}


def _model_favouring(label: Label) -> ArbiterModel:
    """A hand-made model whose only preference is *label* (zero weights, one intercept)."""
    width = len(feature_names())
    return ArbiterModel(
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


def _measures(data: dict[str, Any], *, plan: dict[str, Any] | None = PLAN_OF_60) -> Measures:
    return measure(measure_levels(Curves.model_validate(data | {"plan": plan})))


def _in_progress() -> Measures:
    """Epoch 20 of a planned 60: settled curves, all four logged, well clear of chance."""
    return _measures(factory.healthy(20))


def test_the_shipped_model_matches_the_features_this_diagnoser_computes() -> None:
    model = _model()
    assert model is not None
    assert model.features == feature_names()
    assert Label.DIVERGED not in model.labels  # diverged needs its own evidence
    shares = model.probabilities(features(_in_progress(), Label.HEALTHY) or [])
    assert math.isclose(sum(shares.values()), 1.0)


def test_a_model_fitted_on_other_features_is_refused_with_the_fix() -> None:
    good = _model_favouring(Label.HEALTHY).model_dump()
    with pytest.raises(ValidationError, match=re.escape("re-run bench/diagnoser/fit_arbiter.py")):
        ArbiterModel.model_validate(good | {"features": [*feature_names()[:-1], "other"]})
    with pytest.raises(ValidationError, match="one value per feature"):
        ArbiterModel.model_validate(good | {"mean": [0.0]})


def test_absurd_inputs_are_clipped_to_what_the_model_was_fitted_on() -> None:
    model = _model()
    assert model is not None
    x = [1e300, -1e300] * (len(feature_names()) // 2) + [1e300] * (len(feature_names()) % 2)
    shares = model.probabilities(x)
    assert all(0.0 <= p <= 1.0 and not math.isnan(p) for p in shares.values())


def test_on_a_run_in_progress_the_arbiter_decides_and_says_why() -> None:
    m = _in_progress()
    rules = decide(m, None)
    other = Label.HEALTHY if rules.label is not Label.HEALTHY else Label.UNDERTRAINED
    verdict = arbitrate(m, rules, study_context=False, model=_model_favouring(other))
    assert verdict.label is other
    assert "40 of 60 planned epochs still to come" in verdict.reason
    assert f"the rules alone read {rules.label.value}" in verdict.reason
    agreeing = arbitrate(m, rules, study_context=False, model=_model_favouring(rules.label))
    assert agreeing.label is rules.label and agreeing.reason == rules.reason
    assert agreeing.confidence > 0.5  # the model's probability, calibrated afterwards


@pytest.mark.parametrize(
    ("case", "data", "plan"),
    [
        ("finished: the plan's epochs are all done", factory.healthy(60), PLAN_OF_60),
        ("no plan and no LR curve", factory.healthy(20), None),
        ("no training accuracy", {**factory.healthy(20), "train_acc": None}, PLAN_OF_60),
    ],
)
def test_where_it_was_not_fitted_the_rules_stand(
    case: str, data: dict[str, Any], plan: dict[str, Any] | None
) -> None:
    m = _measures(data, plan=plan)
    assert not applies(m), case
    rules = decide(m, None)
    verdict = arbitrate(m, rules, study_context=False, model=_model_favouring(Label.OVERFITTING))
    assert verdict == rules, case


def test_an_underfitting_verdict_from_the_study_best_stands() -> None:
    m = _in_progress()
    rules = Verdict(Label.UNDERFITTING, 0.8, "well below the study's best")
    model = _model_favouring(Label.HEALTHY)
    assert arbitrate(m, rules, study_context=True, model=model) == rules
    assert arbitrate(m, rules, study_context=False, model=model).label is Label.HEALTHY


def test_a_diverged_verdict_is_never_the_arbiters_to_change() -> None:
    m = _in_progress()
    rules = Verdict(Label.DIVERGED, 0.9, "never learned")
    assert arbitrate(m, rules, study_context=False, model=_model_favouring(Label.HEALTHY)) == rules


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
    model = _model_favouring(Label.OVERFITTING)
    assert arbitrate(m, rules, study_context=False, model=model) == rules


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
    fitted = {**factory.healthy(20), "train_acc": [1.0] * 20}
    m = _measures(fitted)
    verdict = arbitrate(m, decide(m, None), study_context=False, model=model)
    assert verdict.label is Label.HEALTHY, verdict.reason
    weak = _measures({**factory.healthy(20), "train_acc": [0.6] * 20, "val_acc": [0.58] * 20})
    assert arbitrate(weak, decide(weak, None), study_context=False, model=model).label is (
        Label.UNDERFITTING
    )
