"""What the CLI shows of a follow-up chain: the spec diff the demo prints, the chain table."""

from __future__ import annotations

from rich.console import Console

from service.commands._chain import chain_table, spec_changes
from studies.db import StudyStatus
from studies.diagnosis import Label
from studies.schemas import Chain, ChainRound
from studies.spec import Objective


def test_the_spec_diff_lists_each_changed_setting_by_its_dotted_path() -> None:
    before = {
        "name": "grid",
        "train": {"epochs": 20, "weight_decay": 0.0},
        "search": {"grid": [0.1, 0.01], "extra": {}},
    }
    after = {
        "name": "grid-r2",
        "train": {"epochs": 10, "weight_decay": 0.0},
        "search": {"grid": [0.03, 0.01], "extra": {"weight_decay": [0.0, 0.005]}},
    }
    assert spec_changes(before, after) == [
        "search.extra.weight_decay: - → [0.0, 0.005]",
        "search.grid: [0.1, 0.01] → [0.03, 0.01]",
        "train.epochs: 20 → 10",
    ]


def test_the_chain_table_shows_every_round_and_why_the_loop_went_on_or_stopped() -> None:
    def round_(number: int, reason: str | None, status: StudyStatus) -> ChainRound:
        return ChainRound(
            id=10 + number,
            name=f"loop-r{number}",
            round=number,
            status=status,
            best_trial_id=100 + number,
            best_label=Label.OVERFITTING,
            objective=Objective.VAL_ACC,
            best_value=0.8 + number / 100,
            chain_reason=reason,
        )

    chain = Chain(
        rounds=[
            round_(1, "Round 2 submitted: regularize", StudyStatus.COMPLETED),
            round_(2, None, StudyStatus.COMPLETED),
        ]
    )
    console = Console(record=True, width=200)
    console.print(chain_table(chain))
    text = console.export_text()
    assert "loop-r1" in text and "loop-r2" in text
    assert "Round 2 submitted: regularize" in text
    assert "val_acc 0.8100" in text and "val_acc 0.8200" in text
    assert "deciding…" in text  # a finished round the server has not decided yet
    # On 80 columns a long reason stays out of the table: its head there, in full below.
    long = "Round 2 submitted: " + "regularize, search weight decay and dropout " * 6
    narrow = Console(record=True, width=80)
    narrow.print(chain_table(Chain(rounds=[round_(1, long, StudyStatus.COMPLETED)])))
    lines = narrow.export_text().splitlines()
    table_rows = [line for line in lines if line.startswith("│")]
    assert len(table_rows) <= 2 and "Round 2" in table_rows[0]  # was 30 rows, folded
    assert "round 1: Round 2 submitted: regularize" in "\n".join(lines)
