"""A warm-up past the learning rate the network tolerates: diverged before it collapses.

The LR range test's reading (the seed's step one: raise the LR until the loss turns up)
applied to a run in progress. A warm-up raises the learning rate epoch after epoch; once it
passes the largest rate the network tolerates, the training loss stops falling and turns
up, and a plan that raises the rate further drives the run into divergence: the
learn-then-collapse runs of the labeled set all did, while no run whose loss kept falling
through its warm-up did. Judged only with a plan that still raises the LR (the epochs left
are known); the collapse itself, once it happens, is _diverge.py's.
"""

from statistics import median

from studies.diagnosis._measure import Measures
from studies.diagnosis._overfit import SUSTAINED_EPOCHS, smoothed_noise
from studies.diagnosis._result import Label
from studies.diagnosis._stats import noise_sigma
from studies.diagnosis._verdict import Verdict


def warmed_past_stable(m: Measures) -> Verdict | None:
    """Diverged: the plan still raises the LR, and the training loss has already turned up
    (beyond its own noise, for at least SUSTAINED_EPOCHS epochs) as the LR rose."""
    ahead, losses, smooth = m.ahead, m.levels.train_loss, m.levels.smoothed_train_loss
    if ahead is None or losses is None or smooth is None or len(losses) < 3:
        return None
    rise_ahead = ahead.lr_rise
    if rise_ahead is None or rise_ahead <= 1.0:
        return None
    lowest = m.levels.lowest_train_loss_epoch
    if lowest is None or lowest > len(smooth) - 1 - SUSTAINED_EPOCHS:
        return None
    # The noise of the whole run so far: a warm-up's curve has no settled half to read it on.
    turned_up = smooth[-1] - smooth[lowest]
    if turned_up <= smoothed_noise(m, noise_sigma(losses)):
        return None
    rates = m.levels.curves.lr
    at = ""
    if rates is not None and rates[lowest] is not None and rates[-1] is not None:
        at = f" (learning rate {rates[lowest]:.3g} there, {rates[-1]:.3g} now)"
    share = turned_up / max(abs(median(losses)), 1e-12)
    return Verdict(
        Label.DIVERGED,
        0.55 + 0.4 * min(1.0, share),
        f"the training loss turned up after epoch {lowest + 1}{at} as the warm-up raised the "
        f"learning rate, and the plan raises it {rise_ahead:.3g}× more: past the largest rate "
        "this network tolerates, the run is heading for divergence (warm up to about the rate "
        "where the loss was lowest)",
    )
