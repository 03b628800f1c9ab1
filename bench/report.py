"""Write the tables of docs/benchmarks.md from the result files in bench/results/.

Each table sits between `<!-- bench:NAME -->` and `<!-- /bench:NAME -->` in the page and is
rewritten from bench/results/NAME.json, with the machine, date, command and commit it was
measured with; the prose around the markers is left alone. A result file that is missing
leaves a line saying how to produce it.

    .venv/bin/python bench/report.py [--check]

--check rewrites nothing and exits 1 if the page is out of date with the result files.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench._common import RESULTS  # noqa: E402

PAGE = ROOT / "docs" / "benchmarks.md"
Result = dict[str, Any]


def table(header: list[str], rows: list[list[Any]]) -> str:
    def cell(value: Any) -> str:
        if value is None:
            return "–"
        if isinstance(value, float):
            return f"{value:,.3g}" if abs(value) < 10 else f"{value:,.1f}"
        return str(value)

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def provenance(result: Result) -> str:
    m = result.get("machine", {})
    if isinstance(m, str):  # a file from before bench/_common's envelope
        m = {"cpu": m}
    where = f"{m.get('cpu', '?')}, {m.get('cores', '?')} cores, {m.get('memory_gib', '?')} GiB"
    if "gpu" in m:
        where = f"{m['gpu']} ({where})"
    return (
        f"_Measured {result.get('date', '?')[:16].replace('T', ' ')} UTC on {where}, "
        f"torch {m.get('torch', '?')}, commit {result.get('commit', '?')}:_ "
        f"`{result.get('command', '?')}`"
    )


def ratio(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}×"


def service_overhead(r: Result) -> str:
    s, setup = r["summary"], r["setup"]
    ms = s["epoch_ms"]
    rows = [
        ["per epoch (ms, epochs 2…N)", ms["service"], ms["minimal"], ratio(s["epoch_ratio"])],
        ["… of which the trainer itself", ms["trainer_in_service"], ms["minimal"],
         ratio(s["trainer_ratio"])],
        ["… of which the service's bookkeeping", s["bookkeeping_ms"], None, ""],
        ["whole trial (s): claim → finished vs data + model + all epochs",
         s["trial_s"]["service_claim_to_finish"], s["trial_s"]["minimal"],
         ratio(s["trial_ratio"])],
        ["submit → finished (s), incl. the worker's poll wait", s["submit_to_finish_s"],
         s["trial_s"]["minimal"], ratio(s["submit_ratio"])],
    ]
    head = (
        f"**{setup['dataset']}**, {setup['arch']} width {setup['width']}, {setup['epochs']} "
        f"epochs, batch {setup['batch_size']}, {setup['threads']} torch threads, median of "
        f"{setup['repeats']} trials each, SQLite, shipped worker settings."
    )
    return head + "\n\n" + table(["", "sweepdoc (serve + 1 worker)", "minimal loop", "ratio"], rows)


def scale_workers(r: Result) -> str:
    parts = []
    if "cpu" in r:
        c = r["cpu"]
        rows = [
            [x["workers"], x["torch_threads"], x["trials_per_minute"], x["images_per_s"],
             ratio(x["speedup"])]
            for x in c["runs"]
        ]
        parts.append(
            f"**Processes vs threads** — {c['trials']} digits trials × {c['epochs']} epochs "
            f"(simple CNN, width 32), SQLite; the machine's cores split between the workers.\n\n"
            + table(["workers", "torch threads each", "trials/min", "images/s",
                     "vs 1 worker"], rows)
        )
    if "queue" in r:
        q = r["queue"]
        rows = [
            [x["workers"], x["trials_per_minute"], ratio(x["speedup"]), x["active_s"],
             x["peak_connections"], x["peak_connections_per_worker"]]
            for x in q["runs"]
        ]
        parts.append(
            f"**Queue overhead** — {q['trials']} tiny one-epoch trials on PostgreSQL, one "
            f"torch thread per worker, {q['device']}.\n\n"
            + table(["workers", "trials/min", "vs 1 worker", "active s", "peak connections",
                     "per worker"], rows)
        )
    return "\n\n".join(parts)


def diagnose_speed(r: Result) -> str:
    rows = [
        [x["epochs"], x["validate_ms"], x["diagnose_ms"], x["per_run_ms"], x["live_ms"],
         x["label"]]
        for x in r["runs"]
    ]
    return table(
        ["epochs", "parse curves (ms)", "diagnose (ms)", "per run (ms)",
         "live check after the last epoch (ms)", "label"],
        rows,
    )


def optuna_compare(r: Result) -> str:
    def stops(stopped: dict[str, int]) -> str:
        return ", ".join(f"{n} {why}" for why, n in stopped.items()) or "none"

    rows = []
    for c in r["configurations"]:
        q = c["ratios"]
        for system, name in (("sweepdoc", "sweepdoc"), ("optuna", "Optuna example")):
            x = c[system]
            own = system == "sweepdoc"
            rows.append([
                f"{c['dataset']} {c['search']}" if own else "",
                name, x["wall_s"], x["epochs_total"], x["mean_epoch_s"], x["best_val_acc"],
                None if x["best_lr"] is None else f"{x['best_lr']:.2g}", stops(x["stopped_early"]),
                ratio(q["wall_sweepdoc_over_optuna"]) if own else "",
                ratio(q["epochs_sweepdoc_over_optuna"]) if own else "",
            ])
    return table(
        ["configuration", "system", "wall s", "epochs trained", "s / epoch", "best val acc",
         "at lr", "stopped early", "wall ratio", "epochs ratio"],
        rows,
    )


def pack(r: Result) -> str:
    """bench/pack.py's table; with a --before side (results since af0ac07) also its rows, the
    ratio over it and the seconds outside the epochs per trial."""
    before = r.get("before")
    sides = (["unpacked_before"] if before else []) + ["unpacked", "packed"]
    shown = {"unpacked_before": f"unpacked at {before['rev']}" if before else "",
             "unpacked": "unpacked", "packed": "packed"}
    outside = "outside_per_trial_s" in r["configurations"][0]
    rows = []
    for c in r["configurations"]:
        for side in sides:
            x, last = c["runs"][side], side == "packed"
            row = [
                f"{c['dataset']} w{c['width']} {c['search']}" if side == sides[0] else "",
                shown[side], x["wall_s"], x["trials_per_min"], x["epochs_total"],
            ]
            row += [c["outside_per_trial_s"].get(side)] if outside else []
            row += [x["best_val_acc"], _pack_ratio(c, "unpacked") if last else ""]
            row += [_pack_ratio(c, "unpacked_before") if last else ""] if before else []
            rows.append(row)
    header = ["configuration", "worker", "wall s", "trials / min", "epochs trained"]
    header += ["s / trial outside epochs"] if outside else []
    header += ["best val acc", "packed / unpacked" + (" now" if before else "")]
    header += [f"packed / unpacked at {before['rev']}"] if before else []
    notes = []
    if before:
        notes.append(
            f"Unpacked at {before['rev']}: every trial alone on that commit's tree, served "
            "beside today's in the same run (bench/_before.py says why that commit)."
        )
    if any(c.get("repeats", 1) > 1 and "trials_per_min" in c for c in r["configurations"]):
        notes.append(
            "A ratio cell: the ratio of the median runs, in brackets the range of each "
            "repeat's own ratio."
        )
    text = table(header, rows) + ("\n\n" + " ".join(notes) if notes else "")
    versus = r.get("versus_optuna")
    if versus:
        walls = ", ".join(
            f"{shown[side]} {ratio(versus[f'{side}_over_optuna_wall'])}"
            for side in sides if f"{side}_over_optuna_wall" in versus
        )
        text += (
            f"\n\nThe digits w32 random search against Optuna's example (same learning rates, "
            f"{versus['optuna_wall_s']:.1f} s), wall time over the example's: {walls} "
            f"(target ≤ {versus['target']})."
        )
    return text


def _pack_ratio(c: Result, under: str) -> str:
    """Packed over *under* for the median runs, and over the repeats one by one."""
    median = c["ratio_trials_per_min"] if under == "unpacked" else c["ratio_over_before"]
    rates = c.get("trials_per_min", {})
    if c.get("repeats", 1) < 2 or under not in rates:
        return ratio(median)
    each = [p / u for p, u in zip(rates["packed"], rates[under], strict=True)]
    return f"{ratio(median)} ({min(each):.2f}–{max(each):.2f})"


def queue_latency(r: Result) -> str:
    rows = []
    for c in r["configurations"]:
        lat = c["latency_s"]
        default = " (default)" if c["poll_interval_s"] == r["default_poll_interval_s"] else ""
        rows.append([
            f"{c['poll_interval_s']:g} s{default}",
            *(f"{lat[p]['p50']:.3f} / {lat[p]['p99']:.3f}" for p in (
                "submit_to_first_epoch", "submit_to_claimed", "poll_wait_and_claim",
                "optuna_start", "setup")),
            f"{c['warm_up_s']['submit_to_first_epoch']:.2f}",
        ])
    n = r["configurations"][0]["latency_s"]["submit_to_first_epoch"]["n"]
    return (
        f"Seconds, p50 / p99 over {n} submissions per row, one idle CPU worker, SQLite.\n\n"
        + table(
            ["worker poll interval", "submit → first epoch started", "submit → claimed",
             "of which poll wait + claim", "Optuna trial start", "data + model set-up",
             "first submission to a fresh server"],
            rows,
        )
    )


def api_throughput(r: Result) -> str:
    rows = [
        [c["endpoint"], c["clients"], c["requests_per_s"],
         ratio(c["vs_healthz"]) if c.get("vs_healthz") is not None else "–",
         c["latency_ms"]["p50"],
         c["latency_ms"]["p99"], c["latency_ms"]["max"],
         ", ".join(f"{k}: {v}" for k, v in c["statuses"].items())
         + (f"; {c['failures']} transport errors" if c["failures"] else "")]
        for c in r["cells"]
    ]
    return (
        f"{r['seconds_per_cell']:g} s per cell after {r['warmup_s_per_cell']:g} s of warm-up; "
        f"{r['server']}; {r['load_generator']}.\n\n"
        + table(["endpoint", "clients", "requests/s", "vs /healthz", "p50 ms", "p99 ms",
                 "max ms", "responses"], rows)
    )


def gpu_check(r: Result) -> str:
    rows = [
        [x["section"], x["what"], x["value"], x["unit"],
         ratio(x["ratio"]) if x.get("baseline") else "", x.get("baseline", "")]
        for x in r["rows"]
    ]
    failed = [f"{name}: {t['failed']}" for name, t in r["sections"].items() if t["failed"]]
    head = f"**{r['device']}**" + (" (smoke run on the CPU: sizes too small to mean anything)"
                                   if r["smoke"] else "")
    tail = ("\n\nFailed sections: " + "; ".join(failed)) if failed else ""
    return head + "\n\n" + table(
        ["section", "what", "value", "unit", "ratio", "to"], rows
    ) + tail


def _decision(reason: str | None) -> str:
    """A round's chain_reason in a few words: the round it started, or why the loop stopped."""
    if reason is None:
        return "–"
    head, _, _ = reason.partition(": ")
    return head if head.startswith("Round") and head.endswith("submitted") else f"stop: {head}"


def closed_loop(r: Result) -> str:
    rounds = [
        [x["dataset"], x["recipe"], y["round"], y["best_label"], y["best_val_acc"],
         y["best_val_acc_so_far"], y["epochs_so_far"], _decision(y["reason"])]
        for x in r.get("rounds", []) for y in x["rounds"]
    ]
    probes = [
        [x["dataset"], x["range_test_then_grid"]["best_val_acc"],
         x["range_test_then_grid"]["epochs"], x["seed_grid"]["best_val_acc"],
         x["seed_grid"]["epochs"], x["acc_gap_points"], x["epoch_share"],
         "yes" if x["target_met"] else "no"]
        for x in r.get("range_test", [])
    ]
    return "\n\n".join([
        "(a) rounds, up to max_rounds = " + str(r["max_rounds"]) + " follow-ups:\n\n" + table(
            ["dataset", "recipe", "round", "best label", "best val acc", "best so far",
             "epochs so far", "then"], rounds),
        "(b) range test + 3-point grid against the seed's 5-point grid:\n\n" + table(
            ["dataset", "range test + grid: val acc", "epochs", "seed grid: val acc", "epochs",
             "gap (points)", "epoch share", "within 0.5 point at ≤ 2/3"], probes),
        f"Whole run: {r['total_seconds']:.0f} s.",
    ])


RENDERERS: dict[str, Callable[[Result], str]] = {
    "closed_loop": closed_loop,
    "gpu_check": gpu_check,
    "optuna_compare": optuna_compare,
    "pack": pack,
    "pack_mnist": pack,
    "queue_latency": queue_latency,
    "api_throughput": api_throughput,
    "service_overhead_digits": service_overhead,
    "service_overhead_mnist": service_overhead,
    "scale_workers": scale_workers,
    "diagnose_speed": diagnose_speed,
}

_BLOCK = re.compile(r"(<!-- bench:(\w+) -->\n)(.*?)(<!-- /bench:\2 -->)", re.DOTALL)


def render(name: str) -> str:
    path = RESULTS / f"{name}.json"
    if not path.exists():
        return "_Not measured yet: run the script above (see its docstring)._"
    result = json.loads(path.read_text())
    return RENDERERS[name](result) + "\n\n" + provenance(result)


def rewritten(page: str) -> str:
    def block(match: re.Match[str]) -> str:
        name = match.group(2)
        if name not in RENDERERS:
            raise SystemExit(f"docs/benchmarks.md names an unknown table: {name}")
        return f"{match.group(1)}{render(name)}\n{match.group(4)}"

    return _BLOCK.sub(block, page)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only say whether it is current")
    args = parser.parse_args()
    page = PAGE.read_text()
    new = rewritten(page)
    if args.check:
        if new != page:
            raise SystemExit("docs/benchmarks.md is out of date: run bench/report.py")
        print("docs/benchmarks.md is current")
        return
    PAGE.write_text(new)
    print(f"wrote {PAGE.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
