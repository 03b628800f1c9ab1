"""Rule changes of the fifth to seventh sessions, each pinned on the real run of the labeled
set whose verdict it changed (bench/diagnoser/runs; every case below was labeled otherwise
before)."""

import json
import random
from typing import Any

import pytest

from studies.diagnosis import Curves, Label, diagnose_run, live_check
from studies.diagnosis._stats import trend_p_value
from tests.diagnosis.bench_modules import BENCH_DIAGNOSER, load_bench_module

dataset = load_bench_module("dataset")


def _curves(run_id: str, epochs: int | None, *, plan: bool) -> Curves:
    run: dict[str, Any] = json.loads((BENCH_DIAGNOSER / "runs" / f"{run_id}.json").read_text())
    data = dict(run["curves"])
    if plan:
        data["plan"] = dataset.plan_of(run).model_dump()
    curves = Curves.model_validate(data)
    return curves if epochs is None else curves.prefix(epochs)


@pytest.mark.parametrize(
    ("run_id", "epochs", "plan", "label"),
    [
        # Fine-tuning at a learning rate far too low: the training accuracy sits near 0.43,
        # but the validation loss keeps falling at its pace — still learning, not a model
        # that cannot fit its training set.
        ("rot40-undertrained-finetune-lowlr-sgd-s1", None, True, Label.UNDERTRAINED),
        # The last step segment of a capacity-starved run: its train accuracy "rose" over a
        # 3-epoch window, an order noise makes one time in six — no steady rise.
        ("digits-underfitting-width2-dropout-step-s1", 70, True, Label.UNDERFITTING),
        # A cosine run annealed to ~0: its last epochs' rise was the annealing's.
        ("digits-underfitting-dropout-w4-s2", None, False, Label.UNDERFITTING),
        # Three epochs, the last one's validation loss a little above the second's: a rise
        # no later epoch has confirmed yet is not overfitting (its accuracy rose 32 points).
        ("digits-underfitting-dropout-w8-s3", 3, True, Label.UNDERTRAINED),
        # An even split of the bootstrap (32 of 64 replicates) is no evidence of a gain.
        ("mnist5-healthy-finetune-full-adam-s1", 8, True, Label.HEALTHY),
        # 100 images memorised by epoch 8 while validation accuracy is still forecast to climb
        # (it rose 14 points later): the gap is closing, not a verdict yet.
        ("digits-overfitting-tiny-vgg-adam-s1", 8, False, Label.UNDERTRAINED),
        # ... and the same run finished: memorised with a gap the accuracy no longer closes.
        ("digits-overfitting-tiny-vgg-adam-s1", None, False, Label.OVERFITTING),
        # Wave 3 (held out, first seen at its evaluation): VGG without normalization at
        # Nesterov 0.5 — a network the LR killed, its loss flat at 2.35 above log 10 = 2.303
        # with no descent. Never learned, however smooth ...
        ("digits-diverged-nonorm-vgg-nesterov-b16-s0", None, True, Label.DIVERGED),
        ("digits-diverged-nonorm-vgg-nesterov-b16-s0", 8, True, Label.DIVERGED),
        # ... and label noise memorised with batches of 16: one evaluation's validation loss
        # 17x up (epoch 33) while the training loss stays near 0, back the next epoch.
        ("digits7-overfitting-noise35-vgg-nomomentum-b16-s0", None, True, Label.OVERFITTING),
        # Wave 4 (held out, first seen at its single evaluation): a 1-channel net on 8 MNIST
        # classes, cosine over 150 epochs — its frozen, annealed tail has almost no noise, so
        # a half-point drift over 60 epochs cut the "plateau" short; flat means short of a
        # material gain.
        ("mnist8-underfitting-width1-adamw-cosine-b128-150-s1", None, True, Label.UNDERFITTING),
        # ... and an underfit by weight decay 0.1 whose last step segment's loss went
        # 1.40 → 1.40 → 1.39: a "speed-up" no pace could make material by the horizon.
        ("digits7-underfitting-strong-wd-step-s1", None, True, Label.UNDERFITTING),
        # Sixth session (training half, waves 1-4): a 1-channel net with dropout 0.4 on six
        # classes, cosine to ~0 — flat for the last 10 of 60 epochs, which a still-annealing
        # curve cannot be for a fifth of the run; annealed, the training curve's own
        # flatness decides.
        ("digits6-underfitting-width1-dropout04-adam-wd-cosine-s1", None, True,
         Label.UNDERFITTING),
        # ... and lr 5 on 40 classes: the validation loss 2234 at epoch 1 (600 x log 40)
        # while the training loss sits near log K — a blow-up, not a learning rate too low.
        ("rot40-diverged-neverlearned-resnet-sgd-s0", 6, True, Label.DIVERGED),
        # Wave 5 (held out, first seen at its single evaluation): a width-2 tanh net on five
        # odd digits, step decay to lr 0.0027 — its validation loss "forecast to fall" is the
        # run extended as it was going; annealed, no forecast keeps a weak model from its
        # verdict.
        ("digitsodd-underfitting-width2-tanh-momentum07-step-s1", None, True,
         Label.UNDERFITTING),
        # A plateau is anchored on where the run ends (the median of its last smoothed
        # values), not on the last one alone: these cuts' last smoothed epoch sat at the edge
        # of a flat, noisy band, and the plateau counted back from it ended too soon.
        ("noisy10-underfitting-width1-dropout02-b512-s1", 60, True, Label.UNDERFITTING),
        ("digits7-underfitting-strong-wd-step-s1", 60, True, Label.UNDERFITTING),
        # Seventh session (wave 6, first seen at its single evaluation): accuracy at chance
        # throughout (3 look-alike digits, lr far too high), a loss 3-10x log 3 that jumps
        # around — a run that never left chance is judged by its loss alone, and a jumpy one
        # never learned: not a weak model that plateaued ...
        ("digits358-diverged-nonorm-momentum075-high-w5-s1", None, True, Label.DIVERGED),
        # ... nor at four epochs, where the first epoch's loss (3e17, blown up within it)
        # stretched its own median above the recent epochs.
        ("digitseven-diverged-neverlearned-momentum06-w14-s1", 4, True, Label.DIVERGED),
        # ... while a warm-up still at chance with a smooth loss is a slow start, not an
        # overfit (40% label noise on 60 images, 6 epochs into the ramp).
        ("digits-overfitting-tiny60-noise40-warmup-resnet-adamw-s1", 6, True,
         Label.UNDERTRAINED),
        # Wave 7 (first seen at its single evaluation): a 1-channel tanh net at 0.53 training
        # accuracy on three classes with a validation gap of 0.06 — small next to what it
        # gets wrong on its own training set: a weak model, not a converged one ...
        ("digits147-underfitting-width1-tanh-plain-sgd-cosine-s1", None, True,
         Label.UNDERFITTING),
        # ... and a VGG cut at epoch 12 of a 120-epoch plan, settled at 0.99 (the rules read
        # healthy), whose validation loss later fell more than 20%: the arbiter weighs the
        # 108 planned epochs still to come with the rest.
        ("digits147-healthy-step01-every45-vgg-plain-sgd-120-s0", 12, True,
         Label.UNDERTRAINED),
        # Wave 11: a 1-channel net on 12 classes at SGD 0.1, training accuracy jittering
        # around 0.45 for 30 epochs while its small validation set's accuracy dipped 0.037
        # below a noisy peak: training did not keep fitting, so not overfitting.
        ("digits12r-underfitting-width1-sgd1e1-cosine-60-s0", None, False,
         Label.UNDERFITTING),
        # Wave 7: Adam warmed up over 20 epochs without normalization, cut at epoch 8: its
        # training loss has turned up as the LR rose, and the plan raises it 2.5x more (it
        # collapsed to chance at epoch 12) ...
        ("digits-diverged-warmup20-adam-collapse-nonorm-s1", 8, True, Label.DIVERGED),
        # ... while a low-LR warm-up whose loss keeps falling is only slow.
        ("digits-undertrained-lowlr-warmup15-130-s0", 10, True, Label.UNDERTRAINED),
        # Wave 15 (held out, first seen at its single evaluation): a 1-channel net on the five
        # even MNIST digits, validation accuracy 0.08 below an early peak while the training
        # loss crept 5% along its plateau over 38 epochs (was "overfitting" at 0.99): training
        # did not keep fitting by a material share, so not overfitting ...
        ("mnisteven-underfitting-width1-nesterov7e2-b65-step085-every12-48-s0", None, True,
         Label.UNDERFITTING),
        # ... while label noise memorised keeps the seed's sign: the training loss falls far.
        ("digits7-overfitting-noise35-vgg-nomomentum-b16-s0", None, False, Label.OVERFITTING),
        # Wave 16's 1-2 channel nets remade at four (twelve) times their epochs, their training
        # loss at its plateau: finished, they are underfitting though the validation loss's
        # asymptote lies far below (was "undertrained", 6728410 fixed s1) and the validation
        # accuracy on 180 images is never flat for a fifth of the run (was "undertrained" or
        # "healthy" before the plateau rule for finished runs) ...
        ("noisy12m-underfitting-width2-depth1-tanh-clip01-adam8e4-b68-420-s1", None, True,
         Label.UNDERFITTING),
        ("digits1279-underfitting-width1-gelu-adam1e3-constant-b76-160-s0", None, False,
         Label.UNDERFITTING),
        ("digits1279-underfitting-width1-gelu-adam1e3-constant-b76-160-s1", None, True,
         Label.UNDERFITTING),
        # ... while a learning rate far too low, its training loss still descending, is not.
        ("digits49-undertrained-lowlr-sgd15e6-b12-60-s0", None, False, Label.UNDERTRAINED),
        # Wave 15: momentum 0.96 at a constant 0.12, validation accuracy 0.82 at epoch 2, then
        # back at chance with the loss at log 10 for 30 epochs — but one of the last three
        # epochs flickered to 0.21, above the chance band (was "healthy: converged" at 0.97):
        # a net that had learned and sits at chance through most of its end window collapsed.
        ("digits-diverged-sgd-m096-lr12e2-nonorm-constant-collapse-40-s1", None, True,
         Label.DIVERGED),
    ],
)
def test_real_runs_get_the_label_their_rest_bears_out(
    run_id: str, epochs: int | None, plan: bool, label: Label
) -> None:
    diagnosis = diagnose_run(_curves(run_id, epochs, plan=plan))
    assert diagnosis.label is label, diagnosis.summary


def test_a_trend_counts_only_where_its_order_is_rare_by_chance() -> None:
    # Three points in order happen one time in six by chance: never significant.
    assert trend_p_value([0.30, 0.31, 0.33], rising=True) > 0.05
    assert trend_p_value([0.30, 0.31, 0.33, 0.34, 0.36, 0.37], rising=True) < 0.01
    # One-sided: a steady fall is no evidence of a rise.
    assert trend_p_value([0.37, 0.36, 0.34, 0.33, 0.31, 0.30], rising=True) > 0.99
    assert trend_p_value([0.37, 0.36, 0.34, 0.33, 0.31, 0.30], rising=False) < 0.01


def test_a_flat_loss_at_log_k_is_slow_not_dead() -> None:
    # A first-wave run at Adam 1e-5, logged to 4 digits: its loss reads 2.301 for 10 epochs,
    # AT log 10 (an untrained net's uniform guess), not above it — never stopped, undertrained.
    curves = _curves("digits-undertrained-lowlr-resnet-adam-s1", None, plan=False)
    assert all(live_check(curves.prefix(t)) is None for t in range(1, curves.epochs + 1))
    assert diagnose_run(curves).label is Label.UNDERTRAINED


def test_a_slow_start_at_chance_is_not_stopped_on_one_epochs_reading() -> None:
    # Wave 9 (found at its single evaluation): plain SGD on 7 classes at 7x7, at chance for
    # four epochs with its loss wobbling around log 7 (2.45, 1.93, 1.88, 1.91), then learning
    # (validation accuracy 0.43 at epoch 5). Read as never learned at epoch 4 alone, it is not
    # stopped; a never-learned run read so two epochs running is: this one, whose loss blew
    # up to 3e17 in its first epoch and jumps by orders of magnitude since, at epoch 4 (the
    # earliest a non-sudden stop may come). Until wave 10 its loss's own median stood in for
    # log(K) and a quiet recent epoch below that median read as "learning": it stopped at 7.
    slow = "mnist7c-overfitting-noise022-180-plainsgd-b28-size7-170-s0"
    curves = _curves(slow, None, plan=False)
    assert all(live_check(curves.prefix(t)) is None for t in range(1, curves.epochs + 1))
    dead = _curves("digitseven-diverged-neverlearned-momentum06-w14-s1", None, plan=False)
    stop = next(t for t in range(1, dead.epochs + 1) if live_check(dead.prefix(t)) is not None)
    assert stop == 4


def test_one_exploded_validation_epoch_is_a_transient_two_are_divergence() -> None:
    curves = _curves("digits7-overfitting-noise35-vgg-nomomentum-b16-s0", None, plan=False)
    assert live_check(curves.prefix(33)) is None  # the spike epoch: not yet
    data = curves.prefix(34).model_dump()
    data["val_loss"][-1] = data["val_loss"][-2]  # the spike lasts a second epoch
    verdict = live_check(Curves.model_validate(data))
    assert verdict is not None and verdict.evidence.exploded_epoch == 33


def test_an_exploded_validation_epoch_stops_a_run_whose_training_loss_lost_its_progress() -> None:
    # Wave 19's single look (twelfth session): an SGD warm-up towards 0.45 on digits 0 vs 9
    # whose validation loss went 0.17 -> 94 in epoch 2 while its training loss went 0.56 ->
    # 4.8, above where it started. Not the transient of an over-confident model (whose training
    # loss stays near 0): stopped in that epoch, not at its collapse two epochs later.
    curves = _curves("digits09-diverged-nesterov-warmup52-lr045-collapse-nonorm-b11-16-s1", None,
                     plan=False)
    assert live_check(curves.prefix(1)) is None
    verdict = live_check(curves.prefix(2))
    assert verdict is not None and verdict.evidence.exploded_epoch == 2
    # The same spike with the training loss still below its start: the transient, no stop.
    data = curves.prefix(2).model_dump()
    data["train_loss"][-1] = data["train_loss"][0] * 0.9
    assert live_check(Curves.model_validate(data)) is None


@pytest.mark.parametrize("plan", [True, False])
def test_a_run_that_unlearned_for_two_epochs_is_diverged_before_it_settles_at_chance(
    plan: bool,
) -> None:
    # Wave 20's single look (thirteenth session): Adam warmed up to 0.3 on eight digit
    # classes, validation accuracy 0.83 -> 0.85 -> 0.44 -> 0.17 -> 0.13 as the training loss
    # went 1.63 -> 0.73 -> 1.05 -> 2.42 -> 2.38. In epoch 4 alone it is one bad epoch (a
    # spike a run can recover from); in epoch 5, two epochs running with the training loss
    # above its start and the accuracy near chance: it unlearned. The collapse rule needs it
    # at chance for three epochs (epoch 6).
    run = "digits1to8-diverged-adam-warmup41-lr03-collapse-nonorm-w22-14-s0"
    assert diagnose_run(_curves(run, 4, plan=plan)).label is not Label.DIVERGED
    diagnosis = diagnose_run(_curves(run, 5, plan=plan))
    assert diagnosis.label is Label.DIVERGED
    assert "unlearned" in diagnosis.summary
    # The same epochs with the training loss back below where it began: still learning, no
    # verdict of divergence from this rule.
    data = _curves(run, 5, plan=plan).model_dump()
    data["train_loss"][3:] = [data["train_loss"][0] * 0.9] * 2
    assert "unlearned" not in diagnose_run(Curves.model_validate(data)).summary


@pytest.mark.parametrize("seed", range(3))
def test_a_loss_speeding_up_is_undertrained_whatever_the_saturating_forecast(seed: int) -> None:
    # A learning rate far too low finding its way off log(10): the loss falls 0.1 over the
    # first 15 epochs and 0.24 over the next 15. Every saturating family bends it into a
    # plateau (its forecast gain is nil); the speed-up itself says more epochs pay.
    rng = random.Random(seed)
    losses = [2.30 - 0.0004 * e * e + rng.gauss(0, 0.002) for e in range(1, 31)]
    curves = Curves.model_validate({"train_loss": [x + 0.01 for x in losses], "val_loss": losses})
    diagnosis = diagnose_run(curves)
    assert diagnosis.label is Label.UNDERTRAINED
    assert "falling faster than before" in diagnosis.summary


def test_the_demo_runs_slowest_rate_is_undertrained_even_against_the_study_best() -> None:
    # `make demo`'s lr 1e-5 trial (digits, simple CNN, 20 epochs), rounded to 4 digits: its
    # validation accuracy climbs 0.30 → 0.50 over the last 8 epochs. A plateau tolerance of a
    # whole material gain (5 points at 50%) once read its last 4 epochs as flat, and the study
    # context then called it underfitting "well below the study's best".
    curves = Curves.model_validate(
        {
            "train_loss": [2.314, 2.302, 2.291, 2.281, 2.271, 2.263, 2.254, 2.245, 2.237, 2.229,
                           2.221, 2.213, 2.206, 2.198, 2.19, 2.182, 2.175, 2.167, 2.159, 2.152],
            "val_loss": [2.316, 2.304, 2.293, 2.283, 2.273, 2.264, 2.254, 2.245, 2.237, 2.228,
                         2.219, 2.211, 2.202, 2.194, 2.185, 2.177, 2.168, 2.16, 2.151, 2.143],
            "train_acc": [0.0833, 0.0883, 0.0917, 0.1067, 0.1267, 0.145, 0.1633, 0.1733, 0.1833,
                          0.205, 0.24, 0.265, 0.3, 0.3217, 0.3583, 0.395, 0.415, 0.4383, 0.4617,
                          0.4733],
            "val_acc": [0.1028, 0.1, 0.1083, 0.1361, 0.1528, 0.1694, 0.2, 0.2028, 0.2083, 0.2333,
                        0.25, 0.2722, 0.3028, 0.3472, 0.3694, 0.4111, 0.4306, 0.45, 0.475, 0.5],
            "num_classes": 10,
        }
    )
    diagnosis = diagnose_run(curves, study_best_val_acc=0.931)
    assert diagnosis.label is Label.UNDERTRAINED, diagnosis.summary
