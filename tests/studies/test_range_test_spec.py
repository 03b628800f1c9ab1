"""`search.sampler: range_test`: one trial, its own default span, errors that name the field."""

from __future__ import annotations

from typing import Any

import pytest

from studies.errors import SpecError
from studies.spec import Sampler, StudySpec, parse_spec
from studies.spec._search import RANGE_TEST_LR_HIGH, RANGE_TEST_LR_LOW


def test_a_range_test_is_one_trial_over_its_own_default_span() -> None:
    spec = parse_spec({"dataset": "digits", "search": {"sampler": "range_test"}})
    assert spec.search.sampler is Sampler.RANGE_TEST
    assert (spec.search.lr_low, spec.search.lr_high) == (RANGE_TEST_LR_LOW, RANGE_TEST_LR_HIGH)
    assert spec.trial_count() == 1
    assert spec.search.range_steps is None
    # The span given wins; the stored spec (dumped) keeps both ends, so it reads back alike.
    search = {"sampler": "range_test", "lr_high": 0.5, "range_steps": 50}
    given = parse_spec({"dataset": "digits", "search": search})
    assert (given.search.lr_low, given.search.lr_high) == (RANGE_TEST_LR_LOW, 0.5)
    assert StudySpec.model_validate(given.model_dump(mode="json")) == given
    # Other samplers keep the grid's defaults.
    assert parse_spec({"dataset": "digits"}).search.lr_high == 1e-1


@pytest.mark.parametrize(
    ("search", "field", "reason"),
    [
        ({"lr_low": 1e-2, "lr_high": 1e-2}, "search.lr_high", "above lr_low"),
        ({"lr_low": 1e-1, "lr_high": 1e-3}, "search.lr_low", "must not exceed lr_high"),
        ({"n_trials": 3}, "search.n_trials", "one trial"),
        ({"grid": [0.1]}, "search.grid", "one trial"),
        ({"points_per_decade": 2}, "search.points_per_decade", "one trial"),
        ({"extra": {"dropout": [0.1, 0.2]}}, "search.extra", "follow-up"),
        ({"range_steps": 5}, "search.range_steps", "greater than or equal to 20"),
        ({"range_steps": 100_000}, "search.range_steps", "less than or equal to"),
    ],
)
def test_bad_range_test_specs_name_the_field(
    search: dict[str, Any], field: str, reason: str
) -> None:
    with pytest.raises(SpecError) as caught:
        parse_spec({"dataset": "digits", "search": {"sampler": "range_test", **search}})
    (error,) = caught.value.errors
    assert error.field == field
    assert reason in error.message


def test_range_steps_needs_the_range_test_sampler() -> None:
    with pytest.raises(SpecError) as caught:
        parse_spec({"dataset": "digits", "search": {"sampler": "grid", "range_steps": 50}})
    (error,) = caught.value.errors
    assert error.field == "search.range_steps" and "only for sampler range_test" in error.message
