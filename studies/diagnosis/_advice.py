"""Next steps from the seed's recipe, each with the study-spec change it implies.

Spec paths are the dotted names of docs/architecture.md ("train.weight_decay", ...). The
diagnoser sees curves, not the spec that produced them, so a change names a concrete value
that is a sensible next try rather than a multiple of an unknown one. The weight decay is the
trainer's own default (trainer._config, which imports without torch), so it is defined once.
"""

from typing import Final

from studies.diagnosis._result import Finding, FindingKind, Forecast, Label, Recommendation
from studies.followup import FIRST_DROPOUT
from trainer._config import ModelConfig, OptimConfig

DEFAULT_WEIGHT_DECAY: Final = float(OptimConfig.model_fields["weight_decay"].default)
# Twice the trainer's default width: a clearly bigger model, still cheap on a CPU.
BIGGER_WIDTH: Final = 2 * int(ModelConfig.model_fields["width"].default)


def round_lr(lr: float) -> float:
    """A learning rate rounded to 2 significant digits (how the advice and summaries show it)."""
    return float(f"{lr:.2g}")


def _twice_as_long(epochs: int, reason: str) -> Recommendation:
    """Train longer where nothing says how much longer: twice the epochs."""
    return Recommendation(
        action=f"Train longer ({2 * epochs} epochs)",
        reason=reason,
        spec_change={"train.epochs": 2 * epochs},
    )


def _train_longer(epochs: int, forecast: Forecast | None) -> Recommendation:
    """Train longer: to the forecast's horizon, saying what those epochs should buy."""
    if forecast is None:
        return _twice_as_long(epochs, "validation was still improving steadily at the last epoch")
    target = max(forecast.horizon_epochs, epochs + 1)
    name = "validation accuracy" if forecast.metric == "val_acc" else "validation loss"
    spread = (forecast.high - forecast.low) / 2
    return Recommendation(
        action=f"Train {target - epochs} more epochs ({target} in all)",
        reason=(
            f"the forecast puts {name} at {forecast.at_horizon:.3f} ± {spread:.3f} by epoch "
            f"{target} (now {forecast.now:.3f}, levelling off near {forecast.asymptote:.3f})"
        ),
        spec_change={"train.epochs": target},
    )


def recommend(
    label: Label,
    *,
    epochs: int,
    best_epoch: int | None,
    lr: float | None,
    findings: list[Finding],
    forecast: Forecast | None = None,
    stable_lr: float | None = None,
) -> list[Recommendation]:
    """Concrete next steps for a run with this *label*; *stable_lr*: the learning rate of the
    epoch whose training loss was lowest, where the run later raised it (a warm-up)."""
    advice: list[Recommendation] = []
    kinds = {f.kind for f in findings}
    if label is Label.OVERFITTING:
        if best_epoch is not None and best_epoch < epochs:
            advice.append(
                Recommendation(
                    action=f"Stop at the best epoch ({best_epoch}) or keep its checkpoint",
                    reason="validation was best there; later epochs only fit the training set",
                    spec_change={"train.epochs": best_epoch},
                )
            )
        advice += [
            Recommendation(
                action=f"Add weight decay ({DEFAULT_WEIGHT_DECAY:g}, or ×10 if already set)",
                reason="an L2 penalty limits how far the model can bend to the training set",
                spec_change={"train.weight_decay": DEFAULT_WEIGHT_DECAY},
            ),
            Recommendation(
                action=f"Add dropout ({FIRST_DROPOUT})",
                reason="dropping units at random keeps the network from memorising samples",
                spec_change={"model.dropout": FIRST_DROPOUT},
            ),
            Recommendation(
                action="Turn on data augmentation",
                reason="random crops (and flips where they make sense) enlarge the training set",
                spec_change={"data.augment": "auto"},
            ),
            Recommendation(
                action="Train on more data (drop the training subset)",
                reason="more samples are the most reliable cure for overfitting",
                spec_change={"data.train_subset": None},
            ),
        ]
    elif label is Label.UNDERFITTING:
        advice += [
            Recommendation(
                action=f"Use a bigger model (width {BIGGER_WIDTH}, one more layer per stage)",
                reason="no train/val gap at a low level: the model cannot represent the task",
                spec_change={"model.width": BIGGER_WIDTH, "model.depth": 2},
            ),
            Recommendation(
                action="Reduce regularization",
                reason="heavy weight decay or dropout holds the training accuracy down",
                spec_change={"train.weight_decay": 0.0, "model.dropout": 0.0},
            ),
            _twice_as_long(epochs, "the seed: underfitting → train a little longer"),
        ]
    elif label is Label.UNDERTRAINED:
        advice.append(_train_longer(epochs, forecast))
        if lr is not None:
            low, high = round_lr(lr), round_lr(10 * lr)
            advice.append(
                Recommendation(
                    action=f"Search higher learning rates ({low:g} to {high:g})",
                    reason="a higher LR reaches the same point in fewer epochs",
                    spec_change={"search.lr_low": low, "search.lr_high": high},
                )
            )
        elif FindingKind.LR_TOO_LOW in kinds:
            advice.append(
                Recommendation(
                    action="Search higher learning rates (×10)",
                    reason="the loss falls too slowly for this LR",
                )
            )
    elif label is Label.DIVERGED:
        if stable_lr is not None:
            # The run measured its own largest stable rate, as an LR range test does.
            advice.append(
                Recommendation(
                    action=f"Raise the learning rate no higher than {round_lr(stable_lr):g}",
                    reason="the training loss was lowest at that rate and turned up as the "
                    "schedule raised it further",
                    spec_change={"search.lr_high": round_lr(stable_lr)},
                )
            )
        else:
            advice.append(
                Recommendation(
                    action="Divide the learning rate by 10",
                    reason="the loss blew up: the LR is far too high",
                    spec_change={} if lr is None else {"search.lr_high": round_lr(lr / 10)},
                )
            )
        advice += [
            Recommendation(
                action="Add batch normalization",
                reason="normalized activations tolerate larger learning rates",
                spec_change={"model.norm": "batch"},
            ),
            Recommendation(
                action="Clip gradients (norm 1.0)",
                reason="clipping caps the step a single bad batch can take",
                spec_change={"train.grad_clip": 1.0},
            ),
        ]
    elif label is Label.INCONCLUSIVE:
        advice.append(
            Recommendation(
                action="Train at least 3 epochs",
                reason="fewer than 3 epochs show no trend to read",
                spec_change={"train.epochs": max(3, 2 * epochs)},
            )
        )
    else:
        advice.append(
            Recommendation(
                action="Keep this recipe; refine the learning rate around it",
                reason="the run converged with a small gap",
            )
        )
    if FindingKind.VANISHING_GRADIENTS in kinds and label is not Label.DIVERGED:
        advice.append(
            Recommendation(
                action="Use ReLU with batch normalization (or residual blocks)",
                reason="gradients vanish before they reach the first layers",
                spec_change={"model.activation": "relu", "model.norm": "batch"},
            )
        )
    return advice
