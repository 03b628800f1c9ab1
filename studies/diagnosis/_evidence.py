"""The Evidence and Forecast of a diagnosis, read off the measurements (nothing recomputed)."""

from studies.diagnosis._forecast import CurveForecast, GainBy
from studies.diagnosis._measure import Levels, Measures
from studies.diagnosis._plan import stage_of
from studies.diagnosis._result import Forecast
from studies.diagnosis._rules import material_acc_gain, material_loss_fall
from studies.diagnosis._stats import argmax, argmin


def _round(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(value, digits)


def basic_evidence(levels: Levels, study_best_val_acc: float | None) -> dict[str, object]:
    """Evidence any run has, diverged or not: finals, bests, chance levels, what is missing."""
    curves = levels.curves
    notes = []
    if curves.train_acc is None and curves.val_acc is None:
        notes.append("no accuracies given: judged from the losses only")
    if curves.train_loss is None and curves.val_loss is None:
        notes.append("no losses given: judged from the accuracies only")
    if curves.val_acc is None and curves.val_loss is None:
        notes.append("no validation curves: overfitting cannot be seen")
    if curves.train_acc is None and curves.train_loss is None:
        notes.append("no training curves: the train/val gap cannot be measured")
    if curves.num_classes is None:
        notes.append("num_classes not given: chance level unknown")
    elif levels.chance_loss is None and (levels.train_loss or levels.val_loss):
        notes.append(
            "the loss never came near log(num_classes): not a per-sample cross-entropy "
            "(sum-reduced, or another loss), so it is judged against its own start and range"
        )

    def last(values: list[float | None] | None) -> float | None:
        return None if values is None else values[-1]

    chance_acc = levels.chance_acc
    facts: dict[str, object] = {
        "epochs": curves.epochs,
        "metrics": curves.metrics,
        "notes": notes,
        "num_classes": curves.num_classes,
        "chance_acc": _round(chance_acc),
        "chance_loss": _round(levels.chance_loss),
        "final_train_loss": _round(last(curves.train_loss)),
        "final_val_loss": _round(last(curves.val_loss)),
        "final_train_acc": _round(last(curves.train_acc)),
        "final_val_acc": _round(last(curves.val_acc)),
        "study_best_val_acc": study_best_val_acc,
        "stage": stage_of(curves.plan, curves.epochs),
        "planned_epochs": None if curves.plan is None else curves.plan.epochs,
    }
    if levels.val_acc is not None:
        best = argmax(levels.val_acc)
        facts |= {"best_val_acc": _round(levels.val_acc[best]), "best_val_acc_epoch": best + 1}
    if curves.val_loss is not None and any(v is not None for v in curves.val_loss):
        losses = [v if v is not None else float("inf") for v in curves.val_loss]
        best = argmin(losses)
        facts |= {"min_val_loss": _round(losses[best]), "min_val_loss_epoch": best + 1}
    return facts


def measured_evidence(m: Measures) -> dict[str, object]:
    """The numbers the rules read, as Evidence fields."""
    val = m.val_metric
    loss = m.forecasts.val_loss
    return {
        "window": m.window,
        "implied_epochs": m.implied_epochs,
        "stage": m.stage,
        "gap_final": _round(None if m.gap is None else m.gap[-1]),
        "gap_at_best": _round(None if m.gap is None else m.gap[m.best_index]),
        "gap_trend": _round(m.gap_trend, 5),
        "val_loss_rise": _round(m.val_loss_rise),
        "val_loss_rise_rel": _round(m.val_loss_rise_rel),
        "val_acc_drop": _round(m.val_acc_drop),
        "val_acc_slope": _round(None if m.val_acc is None else m.val_acc.slope, 5),
        "val_loss_slope": _round(None if m.val_loss is None else m.val_loss.slope, 5),
        "train_loss_slope": _round(None if m.train_loss is None else m.train_loss.slope, 5),
        "val_acc_trend": _round(None if m.val_acc is None else m.val_acc.tau, 3),
        "val_loss_trend": _round(None if m.val_loss is None else m.val_loss.tau, 3),
        "plateau_epochs": m.plateau_epochs,
        "val_noise": _round(None if val is None else val.noise, 5),
        "segment_start_epoch": m.start + 1,
        "lr_change_epochs": [point + 1 for point in m.schedule.change_points],
        "planned_lr_fall": None
        if m.ahead is None or m.ahead.lr_fall is None
        else round(min(m.ahead.lr_fall, 1e6), 3),
        "val_loss_forecast": _round(None if loss is None else loss.at_horizon),
        "val_loss_fall_probability": _round(
            None if loss is None else loss.probability_of_gain(material_loss_fall(loss)), 3
        ),
    }


def _forecast(metric: str, forecast: CurveForecast, margin: float) -> Forecast:
    return Forecast(
        metric=metric,
        now=round(forecast.now, 4),
        horizon_epochs=forecast.horizon,
        at_horizon=round(forecast.at_horizon, 4),
        low=round(forecast.low, 4),
        high=round(forecast.high, 4),
        asymptote=round(forecast.asymptote, 4),
        material_gain=round(margin, 4),
        best_so_far=round(forecast.best, 4),
        gain_probability=round(forecast.probability_of_gain(margin), 3),
        eventual_gain_probability=round(
            forecast.probability_of_gain(margin, by=GainBy.EVENTUALLY), 3
        ),
        shown_gain_probability=round(forecast.probability_of_gain(margin, by=GainBy.SHOWN), 3),
        family=forecast.family.value,
    )


def forecast_of(m: Measures) -> Forecast | None:
    """The validation metric's forecast as reported: val accuracy, else val loss."""
    if m.forecasts.val_acc is not None:
        acc = m.forecasts.val_acc
        return _forecast("val_acc", acc, material_acc_gain(acc))
    if m.forecasts.val_loss is not None:
        loss = m.forecasts.val_loss
        return _forecast("val_loss", loss, material_loss_fall(loss))
    return None
