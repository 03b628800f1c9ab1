"""The verdict on a finite run of ≥ 3 epochs, read from its measures (docs/diagnoser.md).

In order, the first that fires wins: never left chance → judged by the loss alone, a smooth
one undertrained (LR far too low), a jumpy one diverged (never learned); validation got worse
while training kept fitting → overfitting; with a
plan (``_plan.py``) and epochs left: the forecast says those epochs buy a material gain by
the planned end → undertrained; the model cannot fit its own training set (or, with study
context, sits far below the study's best) → underfitting; a memorised training set with a
large gap → overfitting; the forecast says a material gain is more likely than not →
undertrained; a converged large gap → overfitting; the rest is healthy. The never-left-chance
rule lives in _never_learned.py, the overfitting rules in _overfit.py. Each rule returns a
raw score that _calibration.py turns into the probability that the label is right.

The few fitted values were chosen on the training half of the labeled set in bench/diagnoser
only; docs/diagnoser.md reports both halves and what leaked.

A plan's learning-rate fall still ahead is never a verdict by itself: a rule that called a
plateau "undertrained" whenever the plan still lowered the LR ≥ 10× (with the training loss
still falling) was right on the training half's recipes and alarmed on 14.8% of the held-out
recipes' healthy samples; the forecast's own evidence (its gain by the planned end) decides,
and the fall ahead is reported beside it (docs/diagnoser.md, "Plans").
"""

from studies.diagnosis._forecast import PACE_NOISE, CurveForecast, GainBy
from studies.diagnosis._measure import (
    MATERIAL_ACC_FLOOR,
    MATERIAL_LOSS_SHARE,
    Measures,
    material_acc_gain_at,
)
from studies.diagnosis._never_learned import never_learned
from studies.diagnosis._overfit import overfitting, overfitting_gap
from studies.diagnosis._result import Label
from studies.diagnosis._stats import grade, trend_p_value
from studies.diagnosis._verdict import Verdict
from studies.diagnosis._warmup import warmed_past_stable

# Undertrained: the forecast (studies/diagnosis/_forecast.py) says more epochs buy a material
# gain with high probability. Material: for validation accuracy, a tenth of the remaining
# error (at least one point: _measure.material_acc_gain_at); for validation loss, a fifth of
# its level (_measure.MATERIAL_LOSS_SHARE). The verdict goes to the likelier outcome:
# undertrained when the gain is more likely than not — strictly: an even split of the
# bootstrap is no evidence either way (the calibrated confidence then says how likely).
UNDERTRAINED_PROBABILITY = 0.5
# A plan's LR fall still ahead is named in the undertrained verdict from this many times.
NAMED_LR_FALL = 10.0
# The training set counts as memorised at this training accuracy, or at a training loss this
# share of its first epoch's.
MEMORISED_ACC = 0.99
MEMORISED_LOSS_SHARE = 0.01
# Underfitting without study context: the model cannot fit its own training set. Its
# training accuracy plateaued below this share of the way from chance to perfect, or its
# training loss fell less than this share of its start (or of log(num_classes)). Two
# thirds: between the training half's highest underfitting run (0.64, a 1-channel net on
# 5 classes) and its lowest healthy one (0.73, the 25%-label-noise ceiling).
UNDERFIT_TRAIN_LEVEL = 2 / 3
# "Not flat": the training curve's forecast gain over the horizon keeps at least this share
# of the pace it has had so far (gain per epoch ahead over gain per epoch behind).
STILL_IMPROVING_PACE = 0.5
# ... or its accuracy rose steadily over the end window: an order this rare by chance
# (one-sided Mann–Kendall p-value; three noisy epochs rise in order one time in six).
STEADY_TREND_P = 0.05
# A loss "accelerates" only over a segment this long (two halves of ≥ 4 epochs), by a
# second-half fall beyond the noise a pace must clear (_forecast.PACE_NOISE sigmas).
ACCELERATING_MIN_EPOCHS = 8
PLATEAU_MIN_EPOCHS = 3
PLATEAU_MIN_FRACTION = 0.2
UNDERFIT_GAP_MAX = 0.05
# ... or at most this share of the training error, when that is larger (a weak model).
UNDERFIT_GAP_SHARE = 0.5
# With study context: this run's val error at least this many times the study's best.
UNDERFIT_STUDY_ERROR_RATIO = 2.0
UNDERFIT_STUDY_ACC_MARGIN = 0.02


def material_acc_gain(forecast: CurveForecast) -> float:
    """The accuracy gain worth more epochs: a share of the error left at the best so far."""
    return material_acc_gain_at(forecast.best)


def material_loss_fall(forecast: CurveForecast) -> float:
    """The loss fall worth more epochs: a share of the best level so far (sign-aware: of
    its size)."""
    return MATERIAL_LOSS_SHARE * abs(forecast.best)


def gain_probabilities(m: Measures) -> tuple[float | None, float | None]:
    """The probability of a material gain on the best the run has shown so far, for the
    validation accuracy and the validation loss (None: curve not forecast).

    Against the best so far (3-epoch running median), not the fitted last epoch: a
    practitioner keeps the best checkpoint, so only a better one is worth the epochs.
    """
    acc, loss = m.forecasts.val_acc, m.forecasts.val_loss
    by = _judged_by(m)
    p_acc = None if acc is None else acc.probability_of_gain(material_acc_gain(acc), by=by)
    p_loss = None if loss is None else loss.probability_of_gain(material_loss_fall(loss), by=by)
    return p_acc, p_loss


def _judged_by(m: Measures, *, open_ended: GainBy = GainBy.EVENTUALLY) -> GainBy:
    """What "more epochs pay" is read from.

    A run in progress (epochs left in its plan, given or implied by its LR decay): what the
    epochs up to the planned end will SHOW, noise included, as the rest of the run will. A
    finished run, or one without a plan (*open_ended*): by default the eventual gain of the
    mean curve (its asymptote), noise left out. Those runs have no known end, and over an
    open-ended future a noisy but settled curve would always show a better epoch somewhere by
    chance alone.
    """
    return GainBy.SHOWN if m.ahead is not None else open_ended


def _undertrained(m: Measures, *, accuracy_only: bool = False) -> Verdict | None:
    """More epochs will pay: the validation accuracy or loss is forecast to gain materially
    (*accuracy_only*: the accuracy, where a falling loss is no evidence)."""
    horizon = m.forecasts.horizon
    acc, loss = m.forecasts.val_acc, m.forecasts.val_loss
    # The horizon is the planned end of a run with epochs left (do THOSE epochs pay?), else
    # the default 2 × epochs or the caller's horizon_epochs.
    p_acc, p_loss = gain_probabilities(m)
    if accuracy_only:
        if acc is None:
            return None
        loss = p_loss = None
    if p_acc is not None and acc is not None:
        # Either metric paying counts, as in the definition a user checks a run against
        # (issue 11: validation accuracy up ≥ 3 points, or validation loss down ≥ 20%).
        probability = p_acc if p_loss is None else max(p_acc, p_loss)
        if p_loss is not None and loss is not None and p_loss > p_acc:
            reason = _loss_reason(loss, horizon)
        else:
            reason = (
                f"validation accuracy is forecast to rise from {acc.now:.3f} to "
                f"{acc.at_horizon:.3f} (90% interval {acc.low:.3f}–{acc.high:.3f}) by epoch "
                f"{horizon}, levelling off near {acc.asymptote:.3f}"
            )
    elif p_loss is not None and loss is not None:
        probability = p_loss
        reason = _loss_reason(loss, horizon)
    else:
        return None
    paying = probability > UNDERTRAINED_PROBABILITY
    if not paying and loss is not None and _accelerating(m) and m.val_loss is not None:
        # Falling faster than it did: a run speeding up, which no saturating family can
        # forecast (a learning rate far too low finding its way off a plateau).
        paying, probability = True, max(probability, UNDERTRAINED_PROBABILITY)
        smooth, half = m.val_loss.smooth, m.epochs // 2
        reason = (
            f"validation loss is falling faster than before ({smooth[half]:.3g} → "
            f"{smooth[-1]:.3g} over the last {m.epochs - half} epochs, {smooth[0]:.3g} → "
            f"{smooth[half]:.3g} over the {half} before): the run is speeding up, not settling"
        )
    elif not paying and loss is not None and _keeps_pace(m, loss):
        # A loss falling at an undiminished pace (a learning rate far too low) is still
        # paying, even where the accuracy forecast, fitted to few noisy points, bends early.
        paying, probability = True, max(probability, UNDERTRAINED_PROBABILITY)
        reason = (
            f"validation loss keeps falling at {loss.pace:.0%} of its pace so far (forecast "
            f"{loss.now:.3g} → {loss.at_horizon:.3g} by epoch {horizon})"
        )
    if not paying:
        return None
    if m.schedule.annealed:
        # The forecast extends the run as it was going, but its learning rate is spent: the
        # last epochs' gains were the annealing's, and more epochs at ~0 LR buy nothing.
        return None
    return Verdict(
        Label.UNDERTRAINED, probability, reason + _fall_ahead(m) + ": more epochs will pay"
    )


def _loss_reason(loss: CurveForecast, horizon: int) -> str:
    return (
        f"validation loss is forecast to fall from {loss.now:.3g} to "
        f"{loss.at_horizon:.3g} ({loss.low:.3g}–{loss.high:.3g}) by epoch {horizon}, "
        f"levelling off near {loss.asymptote:.3g} (best so far {loss.best:.3g})"
    )


def _fall_ahead(m: Measures) -> str:
    """The plan's LR fall still ahead, named beside the forecast (which alone decides: the
    fall's own payoff cannot be read off the epochs so far)."""
    ahead = m.ahead
    if ahead is None or ahead.lr_fall is None or ahead.lr_fall < NAMED_LR_FALL:
        return ""
    return (
        f", and the plan still lowers the learning rate {min(ahead.lr_fall, 1e3):.0f}× over its "
        f"{ahead.epochs_left} remaining epochs (of {ahead.planned_epochs})"
    )


def _accelerating(m: Measures) -> bool:
    """The validation loss falls faster in the second half of the segment than in the first,
    beyond its noise, and steadily (an order rare by chance): a run escaping a plateau — a
    learning rate far too low, speeding up as it finds its way. Every saturating family
    bends the other way, so their forecast cannot be trusted here."""
    loss, forecast = m.val_loss, m.forecasts.val_loss
    if loss is None or forecast is None or m.epochs < ACCELERATING_MIN_EPOCHS:
        return False
    smooth, half = loss.smooth, m.epochs // 2
    early, late = smooth[0] - smooth[half], smooth[half] - smooth[-1]
    # Material even at today's pace, with no further speed-up: the second half's rate carried
    # on to the horizon clears the margin a forecast gain must.
    ahead = late / (m.epochs - half) * (m.forecasts.horizon - m.levels.epochs)
    return (
        late > early > 0.0
        and late > PACE_NOISE * loss.noise
        and ahead >= material_loss_fall(forecast)
        and trend_p_value(loss.raw[half:], rising=False) <= STEADY_TREND_P
    )


def _keeps_pace(m: Measures, forecast: CurveForecast) -> bool:
    """The curve's forecast keeps at least STILL_IMPROVING_PACE of its pace so far."""
    horizon_share = (m.forecasts.horizon - m.levels.epochs) / max(1, m.epochs - 1)
    return forecast.pace >= STILL_IMPROVING_PACE * horizon_share


def _training_still_improving(m: Measures) -> bool:
    """The training curve is not flat: its forecast keeps at least half its pace so far.

    Pace, not size: a learning rate far too low moves the training loss slowly but at an
    undiminished pace, while a model that cannot fit the task saturates however long it runs.
    """
    if m.schedule.annealed:
        # The learning rate is spent: the last epochs' rise was the annealing's, and more
        # epochs at ~0 LR cannot keep it up.
        return False
    acc = m.train_acc
    # Rising epoch after epoch over the end window, well beyond its noise: the saturating
    # families cannot bend upwards, so a slow start's acceleration is read off the trend.
    if (
        acc is not None
        and trend_p_value(acc.raw[-m.window :], rising=True) <= STEADY_TREND_P
        and acc.slope * m.window >= max(MATERIAL_ACC_FLOOR, 2 * acc.noise)
    ):
        return True
    train = m.forecasts.train_loss or m.forecasts.train_acc
    return train is not None and _keeps_pace(m, train)


def _validation_still_improving(m: Measures) -> bool:
    """The validation loss keeps its pace, or is forecast to fall materially more likely
    than not: a model still learning the task, however slowly (a learning rate far too
    low), not one that cannot fit it — that model's validation loss saturates with its
    training curve. The loss, not the accuracy: it averages every example's confidence and
    is the steadier witness of a weak model's slow progress.

    A finished run's fall is read by the horizon (the next doubling of the run), not at the
    asymptote _undertrained asks for: a weak model's validation loss may creep on towards a
    level far off while its training curve sits flat and low, and for that model a bigger one
    buys more than any number of epochs (waves 15-16's 1-2 channel nets, remade at four
    times their epochs: training flat at 0.47-0.64, the validation loss's asymptote a third
    or more below where it ends).
    """
    loss = m.forecasts.val_loss
    if loss is None or m.schedule.annealed:
        # Annealed: the forecast extends the run as it was going, but its learning rate is
        # spent (as for the training curve above, and for _undertrained).
        return False
    by = _judged_by(m, open_ended=GainBy.HORIZON)
    p_loss = loss.probability_of_gain(material_loss_fall(loss), by=by)
    return p_loss > UNDERTRAINED_PROBABILITY or _keeps_pace(m, loss) or _accelerating(m)


def train_level(m: Measures) -> tuple[float, str] | None:
    """How far the model fits its own training set (0 = chance or start, 1 = perfect)."""
    if m.train_acc is not None:
        chance = m.chance_acc or 0.0
        final = m.train_acc.smooth[-1]
        return (final - chance) / (1.0 - chance), f"training accuracy {final:.3f}"
    losses = m.levels.train_loss
    if losses is not None and m.train_loss is not None and losses[0] > 0:
        start = max(losses[0], m.chance_loss or 0.0)
        final = m.train_loss.smooth[-1]
        return 1.0 - final / start, f"training loss {final:.3g} ({final / start:.0%} of its start)"
    return None


def _plateau_needed(m: Measures, *, judged_by_training: bool) -> float:
    """How long the validation curve must have been flat before a weak model is the verdict.

    A share of the run: flat for a while, not a pause. But once the schedule has annealed
    the learning rate away, its last epochs cannot move the curve whatever the model, and a
    plateau as long as a share of the run would be asked of a curve that was still being
    annealed down to its level: then PLATEAU_MIN_EPOCHS, and the training curve's own
    flatness (_training_still_improving) decides.

    So too for a run with no epochs known to lie ahead (finished, or without a plan) judged
    on its own training set (*judged_by_training*): there the training curve's flatness and
    what the next doubling of the run would buy (_validation_still_improving) are the
    evidence, and a weak model's validation accuracy, read on a small validation set,
    wobbles or creeps a point at a time for far longer than a fifth of a long run (waves 8,
    15, 16: 1-2 channel nets over 40-200 epochs, their training accuracy flat at 0.4-0.6,
    their validation curve never flat that long). Against the study's best the validation
    plateau is the only evidence that the run has stopped gaining, and keeps its share (the
    demo's 1e-5 trial climbing 0.30 -> 0.50 is not flat).
    """
    if m.schedule.annealed or (judged_by_training and m.ahead is None):
        return PLATEAU_MIN_EPOCHS
    return max(PLATEAU_MIN_EPOCHS, PLATEAU_MIN_FRACTION * m.epochs)


def _underfitting(m: Measures, study_best_val_acc: float | None) -> Verdict | None:
    against_study = study_best_val_acc is not None and m.val_acc is not None
    if (m.plateau_epochs or 0) < _plateau_needed(m, judged_by_training=not against_study):
        return None
    if m.train_acc is not None and m.val_acc is not None:
        # Bias, not variance: the gap is small next to what the model gets wrong on its own
        # training set (a 1-channel net at 0.53 training accuracy on three classes with a
        # gap of 0.06 is a weak model, not an overfit one).
        train_error = 1.0 - m.train_acc.smooth[-1]
        allowed = max(UNDERFIT_GAP_MAX, UNDERFIT_GAP_SHARE * train_error)
    else:
        allowed = 0.1
    small_gap = m.gap is None or m.gap[-1] <= allowed
    if not small_gap:
        return None
    if study_best_val_acc is not None and m.val_acc is not None:
        final = m.val_acc.smooth[-1]
        error, best_error = 1.0 - final, 1.0 - study_best_val_acc
        if (
            final <= study_best_val_acc - UNDERFIT_STUDY_ACC_MARGIN
            and error >= UNDERFIT_STUDY_ERROR_RATIO * best_error
        ):
            ratio = error / best_error if best_error > 0 else 10.0
            return Verdict(
                Label.UNDERFITTING,
                0.55 + 0.4 * grade(ratio, UNDERFIT_STUDY_ERROR_RATIO, 5.0),
                f"validation accuracy plateaued at {final:.3f}, well below the study's best "
                f"{study_best_val_acc:.3f}, with little train/val gap",
            )
        return None
    level = train_level(m)
    if level is None or _training_still_improving(m) or _validation_still_improving(m):
        return None
    fitted, described = level
    if fitted >= UNDERFIT_TRAIN_LEVEL:
        return None
    return Verdict(
        Label.UNDERFITTING,
        0.55 + 0.4 * grade(UNDERFIT_TRAIN_LEVEL - fitted, 0.0, UNDERFIT_TRAIN_LEVEL),
        f"{described} plateaued for {m.plateau_epochs} epochs: the model cannot fit its own "
        "training set",
    )


def _memorised(m: Measures) -> bool:
    """The training set is fitted: training accuracy ~1, or training loss ~0 of its start."""
    if m.train_acc is not None:
        return m.train_acc.smooth[-1] >= MEMORISED_ACC
    losses = m.levels.train_loss
    if losses is not None and m.train_loss is not None and losses[0] > 0:
        return m.train_loss.smooth[-1] <= MEMORISED_LOSS_SHARE * losses[0]
    return False


def _healthy(m: Measures) -> Verdict:
    """Converged: the score is how surely more epochs would not pay."""
    chances = [p for p in gain_probabilities(m) if p is not None]
    return Verdict(
        Label.HEALTHY,
        1.0 - max(chances, default=0.25),
        "converged with a small gap: the forecast gains little from more epochs",
    )


def decide(m: Measures, study_best_val_acc: float | None) -> Verdict:
    """The label of a finite run with at least 3 epochs."""
    verdict = never_learned(m) or warmed_past_stable(m) or overfitting(m)
    if verdict is None and m.ahead is not None:
        # With epochs left in the plan, whether THOSE epochs pay comes first: the level a
        # run in progress fits its training set to, and its gap, are not final yet.
        verdict = _undertrained(m)
    verdict = verdict or _underfitting(m, study_best_val_acc)
    if verdict is None and _memorised(m):
        # A training set fitted to the last example: a gap is the verdict unless the
        # validation ACCURACY is still forecast to close it. Its validation loss is no
        # evidence here: once every training example is fitted, that loss keeps falling as
        # the model grows confident on the validation examples it already gets right.
        verdict = _undertrained(m, accuracy_only=True) or overfitting_gap(m)
    verdict = verdict or _undertrained(m) or overfitting_gap(m)
    return verdict or _healthy(m)
