"""A pack continued from its members' epoch states (``train_packed(resume_from=...)``).

Each member's state is put back into an unpacked network and torch optimizer with
``trainer._resume.restore_state`` (the one way any run is restored), then packed. The
members must continue from the same point of one pack: the same epoch and step and the
same random streams (what the pack wrote for them after one epoch); anything else would
give some member another data order than its own run, so it is refused with the reason
(those members can still continue alone with ``train(resume_from=...)``).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch

from trainer._errors import ConfigError
from trainer._loop import _make_optimizer
from trainer._models import Network
from trainer._packed_epoch import Member
from trainer._resume import ResumeState, restore_state


def check_resume_states(
    members: Sequence[Member], states: Sequence[ResumeState | None], device: torch.device
) -> list[ResumeState]:
    """*states* when every member has one and they continue one pack, else ConfigError."""
    if len(states) != len(members):
        raise ConfigError(
            f"resume_from: needs one entry per config ({len(members)}), got {len(states)}"
        )
    given = [s for s in states if s is not None]
    if not given:
        return []
    if len(given) != len(states):
        raise ConfigError("resume_from: give every member's epoch state or none")
    for member, state in zip(members, given, strict=True):
        if why := state.mismatch(member.config, device=str(device)):
            raise ConfigError(f"resume_from[{member.index}]: {why}")
    first = given[0]
    for member, state in zip(members, given, strict=True):
        same_point = (
            state.epoch == first.epoch
            and state.step == first.step
            and torch.equal(state.generator_state, first.generator_state)
            and torch.equal(state.cpu_rng, first.cpu_rng)
        )
        if not same_point:
            raise ConfigError(
                f"resume_from[{member.index}]: epoch {state.epoch} (step {state.step}) does "
                f"not continue the same pack as resume_from[{members[0].index}] (epoch "
                f"{first.epoch}, step {first.step}); resume it alone with train(resume_from=...)"
            )
    return given


def restore_members(
    template: Network,
    members: Sequence[Member],
    states: Sequence[ResumeState],
    device: torch.device,
) -> tuple[list[Network], list[torch.optim.Optimizer]]:
    """Each member's network and torch optimizer as its state left them; its history's
    records and best epoch, and the default random streams, restored too."""
    networks: list[Network] = []
    optimizers: list[torch.optim.Optimizer] = []
    scratch = torch.Generator(device=device)  # the pack's own generator is set afterwards
    for member, state in zip(members, states, strict=True):
        assert member.history is not None
        network = copy.deepcopy(template)
        optimizer = _make_optimizer(
            [p for p in network.parameters() if p.requires_grad], member.config
        )
        restore_state(
            state,
            model=network,
            optimizer=optimizer,
            generator=scratch,
            device=device,
            history=member.history,
        )
        networks.append(network)
        optimizers.append(optimizer)
    return networks, optimizers
