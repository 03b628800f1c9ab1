"""Each packed member keeps its own life: its callback and Stop, its best checkpoint and
epoch state in the unpacked formats; and which runs may pack, and how much memory."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest
import torch

from tests.trainer.test_packed_equivalence import assert_same_curves, tiny_digits_config
from trainer import (
    ConfigError,
    EpochRecord,
    History,
    MemberEpoch,
    RunConfig,
    RunStatus,
    Stop,
    can_pack,
    estimate_pack_bytes,
    load_checkpoint,
    load_resume_state,
    train,
    train_packed,
)
from trainer._models import build_model


def test_a_stopped_member_leaves_and_the_others_go_on_as_alone() -> None:
    configs = [tiny_digits_config(lr=lr, epochs=3) for lr in (0.05, 0.02, 0.1)]
    calls: list[tuple[int, int]] = []

    def on_epoch(index: int, record: EpochRecord, history: History) -> Stop | None:
        calls.append((index, record.epoch))
        assert history.records[-1] == record
        return Stop(reason="pruned at epoch 1") if index == 1 else None

    packed = train_packed(configs, on_epoch=on_epoch)
    # Members in index order each epoch; the stopped one is never asked again.
    assert calls == [(0, 1), (1, 1), (2, 1), (0, 2), (2, 2), (0, 3), (2, 3)]
    assert packed[1].status is RunStatus.STOPPED
    assert packed[1].stop_reason == "pruned at epoch 1"
    assert len(packed[1].records) == 1
    stopped_alone = train(configs[1], on_epoch=lambda r, h: Stop(reason="pruned at epoch 1"))
    assert_same_curves(packed[1], stopped_alone)
    # The pack was rebuilt without member 1 after epoch 1: the others are still exact.
    for index in (0, 2):
        assert packed[index].status is RunStatus.COMPLETED
        assert_same_curves(packed[index], train(configs[index]))


def test_on_pack_epoch_sees_every_member_at_once_and_answers_for_each() -> None:
    configs = [tiny_digits_config(lr=lr, epochs=3) for lr in (0.05, 0.02, 0.1)]
    seen: list[list[tuple[int, int]]] = []

    def on_pack_epoch(epochs: Sequence[MemberEpoch]) -> list[Stop | None]:
        seen.append([(e.index, e.record.epoch) for e in epochs])
        # Every member's record is in its history before the caller answers for any.
        assert all(e.history.records[-1] == e.record for e in epochs)
        return [Stop(reason="pruned at epoch 1") if e.index == 1 else None for e in epochs]

    packed = train_packed(configs, on_pack_epoch=on_pack_epoch)
    assert seen == [[(0, 1), (1, 1), (2, 1)], [(0, 2), (2, 2)], [(0, 3), (2, 3)]]
    # The same runs as with the per-member callback: member 1 stopped after epoch 1.
    per_member = train_packed(
        configs, on_epoch=lambda i, r, h: Stop(reason="pruned at epoch 1") if i == 1 else None
    )
    for with_pack_epoch, with_member_epoch in zip(packed, per_member, strict=True):
        assert with_pack_epoch.status is with_member_epoch.status
        assert_same_curves(with_pack_epoch, with_member_epoch)


def test_on_pack_epoch_must_answer_once_per_member_and_not_beside_on_epoch() -> None:
    configs = [tiny_digits_config(lr=lr, epochs=1) for lr in (0.05, 0.02)]
    with pytest.raises(ConfigError, match="on_epoch, on_pack_epoch"):
        train_packed(configs, on_epoch=lambda i, r, h: None, on_pack_epoch=lambda e: [None] * 2)
    with pytest.raises(ConfigError, match="answered 1 stops for the pack's 2 members"):
        train_packed(configs, on_pack_epoch=lambda e: [None])


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_best_checkpoints_are_the_unpacked_runs(tmp_path: Path, optimizer: str) -> None:
    lrs = (0.05, 0.01) if optimizer == "sgd" else (3e-3, 1e-3)
    configs = [tiny_digits_config(optimizer=optimizer, lr=lr, epochs=3) for lr in lrs]
    paths: list[Path | None] = [tmp_path / f"packed-{i}.pt" for i in range(len(configs))]
    train_packed(configs, checkpoint_paths=paths)
    for index, config in enumerate(configs):
        alone_path = tmp_path / f"alone-{index}.pt"
        train(config, checkpoint_path=alone_path)
        packed_path = paths[index]
        assert packed_path is not None
        got, want = load_checkpoint(packed_path), load_checkpoint(alone_path)
        assert (got.epoch, got.config, got.class_names) == (
            want.epoch,
            want.config,
            want.class_names,
        )
        assert got.metric == pytest.approx(want.metric, rel=1e-5)
        assert got.model_state.keys() == want.model_state.keys()
        for key, tensor in want.model_state.items():
            torch.testing.assert_close(got.model_state[key], tensor, rtol=1e-4, atol=1e-6)
        got_state, want_state = got.optimizer_state["state"], want.optimizer_state["state"]
        assert got_state.keys() == want_state.keys()
        for param, slots in want_state.items():
            assert got_state[param].keys() == slots.keys()
            for name, tensor in slots.items():
                torch.testing.assert_close(got_state[param][name], tensor, rtol=1e-4, atol=1e-6)
        # A packed member's checkpoint loads into the unpacked network as it is.
        network = build_model(
            config.model, in_channels=1, image_size=8, num_classes=got.num_classes
        )
        network.load_state_dict(got.model_state)


def test_a_members_epoch_state_continues_alone_exactly(tmp_path: Path) -> None:
    configs = [tiny_digits_config({"dropout": 0.2}, lr=lr, epochs=3) for lr in (0.05, 0.02)]
    states: list[Path | None] = [tmp_path / "m0.state", tmp_path / "m1.state"]

    def stop_after_two(index: int, record: EpochRecord, history: History) -> Stop | None:
        return Stop(reason="worker stopped") if record.epoch == 2 else None

    train_packed(configs, on_epoch=stop_after_two, epoch_state_paths=states)
    path = states[1]
    assert path is not None
    resumed = train(configs[1], resume_from=load_resume_state(path))
    assert_same_curves(resumed, train(configs[1]))


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_a_pack_continues_from_its_members_epoch_states_exactly(
    tmp_path: Path, optimizer: str
) -> None:
    lrs = (0.05, 0.01) if optimizer == "sgd" else (3e-3, 1e-3)
    configs = [
        tiny_digits_config({"dropout": 0.2}, optimizer=optimizer, lr=lr, epochs=3, momentum=m)
        for lr, m in zip(lrs, (0.9, 0.0), strict=True)
    ]
    paths: list[Path | None] = [tmp_path / "m0.state", tmp_path / "m1.state"]

    def stop_after_one(index: int, record: EpochRecord, history: History) -> Stop | None:
        return Stop(reason="worker stopped") if record.epoch == 1 else None

    train_packed(configs, on_epoch=stop_after_one, epoch_state_paths=paths)
    seen: list[tuple[int, int]] = []
    resumed = train_packed(
        configs,
        resume_from=[load_resume_state(p) for p in paths if p is not None],
        on_epoch=lambda i, r, h: seen.append((i, r.epoch)),
    )
    assert seen == [(0, 2), (1, 2), (0, 3), (1, 3)]  # only the epochs still to train
    for config, history in zip(configs, resumed, strict=True):
        assert_same_curves(history, train(config))


def test_a_pack_refuses_states_from_different_points(tmp_path: Path) -> None:
    configs = [tiny_digits_config(lr=lr, epochs=3) for lr in (0.05, 0.01)]
    early, late = tmp_path / "early.state", tmp_path / "late.state"
    train_packed(configs[:1], epoch_state_paths=[early], on_epoch=lambda i, r, h: Stop())
    train(configs[1], epoch_state_path=late, on_epoch=lambda r, h: Stop() if r.epoch == 2 else None)
    states = [load_resume_state(early), load_resume_state(late)]
    with pytest.raises(ConfigError, match=r"resume_from\[1\]: epoch 2 \(step \d+\) does not"):
        train_packed(configs, resume_from=states)
    with pytest.raises(ConfigError, match="give every member's epoch state or none"):
        train_packed(configs, resume_from=[states[0], None])


def test_can_pack_allows_optimizer_settings_to_differ() -> None:
    configs = [
        tiny_digits_config(lr=0.1, weight_decay=0.0, momentum=0.9),
        tiny_digits_config(lr=0.001, weight_decay=1e-3, momentum=0.0, grad_clip=1.0),
    ]
    assert can_pack(configs) is None


@pytest.mark.parametrize(
    ("other", "named"),
    [
        (tiny_digits_config(seed=1), "optim.seed (the seed sets the initial weights"),
        (tiny_digits_config({"arch": "vgg"}), "model.arch"),
        (tiny_digits_config({"width": 8}), "model.width"),
        (tiny_digits_config(batch_size=16), "optim.batch_size"),
        (tiny_digits_config(data={"train_subset": 200}), "data.train_subset"),
        (tiny_digits_config(optimizer="adam"), "optim.optimizer"),
    ],
    ids=["seed", "arch", "width", "batch_size", "data", "optimizer"],
)
def test_can_pack_names_what_differs(other: RunConfig, named: str) -> None:
    why = can_pack([tiny_digits_config(), other])
    assert why is not None
    assert f"run 1 differs from run 0 in {named}" in why
    with pytest.raises(ConfigError, match="cannot train these runs packed"):
        train_packed([tiny_digits_config(), other])


def test_can_pack_refuses_fine_tuning_and_nothing(tmp_path: Path) -> None:
    assert can_pack([]) == "no runs to pack"
    why = can_pack([tiny_digits_config(init_from=tmp_path / "x.pt")])
    assert why is not None and why.startswith("optim.init_from:")


def test_one_path_per_member_or_an_error_naming_the_field(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="checkpoint_paths: needs one entry per config"):
        train_packed([tiny_digits_config(), tiny_digits_config()], checkpoint_paths=[None])


def test_the_memory_estimate_grows_with_members_width_and_optimizer_state() -> None:
    base = tiny_digits_config({"width": 16})
    one = estimate_pack_bytes(base, 1)
    assert estimate_pack_bytes(base, 5) == 5 * one
    assert estimate_pack_bytes(tiny_digits_config({"width": 32}), 1) > one
    assert estimate_pack_bytes(tiny_digits_config({"width": 16}, optimizer="adam"), 1) > one
    cifar = tiny_digits_config({"width": 16}, data={"dataset": "cifar10", "train_subset": None})
    assert estimate_pack_bytes(cifar, 1) > one  # 32×32 RGB images, not 8×8 grey


def test_the_memory_estimate_needs_an_image_folders_shape() -> None:
    folder = tiny_digits_config(data={"dataset": "imagefolder:pets", "train_subset": None})
    with pytest.raises(ConfigError, match="input_shape, num_classes"):
        estimate_pack_bytes(folder, 2)
    assert estimate_pack_bytes(folder, 2, input_shape=(3, 64, 64), num_classes=37) > 0
    with pytest.raises(ConfigError, match="k: must be at least 1"):
        estimate_pack_bytes(folder, 0, input_shape=(3, 64, 64), num_classes=37)


def test_members_that_leave_stop_costing_compute() -> None:
    """A stopped member is sliced out of the fused network and its optimizer: the members
    left train in a smaller network (fewer channels, fewer weights), not beside a frozen one."""
    from trainer._models import first_layer
    from trainer._packed_epoch import Member, PackRun
    from trainer._packed_models import Pack

    configs = [tiny_digits_config(lr=lr) for lr in (0.05, 0.02, 0.1)]
    members = [Member(i, config, None, None) for i, config in enumerate(configs)]
    network = build_model(configs[0].model, in_channels=1, image_size=8, num_classes=10)
    run = PackRun.start(members, Pack.of([network] * 3), torch.device("cpu"))
    weights = sum(p.numel() for p in run.pack.model.parameters())

    run.without({1})

    assert run.pack.k == 2 and run.optimizer.k == 2
    assert [m.index for m in run.members] == [0, 2]
    conv = first_layer(run.pack.model)
    assert isinstance(conv, torch.nn.Conv2d) and conv.out_channels == 2 * 4  # width 4
    assert sum(p.numel() for p in run.pack.model.parameters()) * 3 == weights * 2
    assert run.optimizer.params == list(run.pack.model.parameters())
    assert run.max_norm.shape == (2,)


def test_a_member_that_leaves_is_handed_back_at_once_with_its_final_history() -> None:
    configs = [tiny_digits_config(lr=lr, epochs=3) for lr in (0.05, 0.02, 0.1)]
    events: list[tuple[str, int, int, RunStatus]] = []

    def on_epoch(index: int, record: EpochRecord, history: History) -> Stop | None:
        events.append(("epoch", index, record.epoch, history.status))
        return Stop(reason="pruned at epoch 2") if (index, record.epoch) == (2, 2) else None

    def on_leave(index: int, history: History) -> None:
        events.append(("left", index, len(history.records), history.status))

    packed = train_packed(configs, on_epoch=on_epoch, on_leave=on_leave)

    running, stopped = RunStatus.RUNNING, RunStatus.STOPPED
    assert events == [
        ("epoch", 0, 1, running), ("epoch", 1, 1, running), ("epoch", 2, 1, running),
        ("epoch", 0, 2, running), ("epoch", 1, 2, running), ("epoch", 2, 2, running),
        ("left", 2, 2, stopped),  # before the others' next epoch; they finish in the pack
        ("epoch", 0, 3, running), ("epoch", 1, 3, running),
    ]  # fmt: skip
    assert packed[2].stop_reason == "pruned at epoch 2"
    assert [h.status for h in packed] == [RunStatus.COMPLETED, RunStatus.COMPLETED, stopped]


def test_a_packed_network_on_a_cpu_keeps_channels_last_maps_and_plain_members() -> None:
    """On a CPU the packed feature maps are channels-last from the first convolution on
    (the fast layout there), a smaller pack too; the members' weights stay plain tensors
    that load into the unpacked network."""
    from trainer._packed_models import Pack

    config = tiny_digits_config(model={"arch": "vgg"})
    network = build_model(config.model, in_channels=1, image_size=8, num_classes=10)
    pack = Pack.of([network] * 3)
    maps: list[torch.Tensor] = []
    for packed in (pack, pack.keep([0, 2])):
        maps.clear()
        hooks = [
            m.register_forward_hook(lambda _m, _i, out: maps.append(out))
            for m in packed.model.features.modules()
            if isinstance(m, torch.nn.BatchNorm2d | torch.nn.MaxPool2d)
        ]
        logits = packed.model(torch.randn(5, 1, 8, 8))
        for hook in hooks:
            hook.remove()
        assert logits.shape == (packed.k, 5, 10)
        assert maps and all(m.is_contiguous(memory_format=torch.channels_last) for m in maps)
        assert all(p.is_contiguous() for p in packed.model.parameters())
    build_model(config.model, in_channels=1, image_size=8, num_classes=10).load_state_dict(
        pack.member_state(1)
    )


def _discard_at_two(record: EpochRecord) -> Stop | None:
    # What a worker answers once its slot was taken away (studies.recorder): this epoch's
    # files belong to the attempt that owns the trial now.
    if record.epoch == 2:
        return Stop(reason="the slot was taken away", discard_epoch=True)
    return None


def test_a_discarded_epoch_writes_no_files_alone_or_packed(tmp_path: Path) -> None:
    # A learning rate that improves every epoch, so epoch 2 would be the best checkpoint.
    configs = [tiny_digits_config(lr=lr, epochs=3) for lr in (0.05, 0.02)]
    alone_state, alone_best = tmp_path / "alone.state", tmp_path / "alone.pt"
    history = train(
        configs[0],
        on_epoch=lambda r, h: _discard_at_two(r),
        epoch_state_path=alone_state,
        checkpoint_path=alone_best,
    )
    assert [r.epoch for r in history.records] == [1, 2]
    assert history.status is RunStatus.STOPPED
    assert load_resume_state(alone_state).epoch == 1
    assert load_checkpoint(alone_best).epoch == 1

    states: list[Path | None] = [tmp_path / "m0.state", tmp_path / "m1.state"]
    bests: list[Path | None] = [tmp_path / "m0.pt", tmp_path / "m1.pt"]
    packed = train_packed(
        configs,
        on_epoch=lambda i, r, h: _discard_at_two(r) if i == 1 else None,
        epoch_state_paths=states,
        checkpoint_paths=bests,
    )
    assert [r.epoch for r in packed[1].records] == [1, 2]
    assert load_resume_state(tmp_path / "m1.state").epoch == 1
    assert load_checkpoint(tmp_path / "m1.pt").epoch == 1
    # The member that kept its slot went on and wrote every epoch.
    assert load_resume_state(tmp_path / "m0.state").epoch == 3
