"""``sh-scaling plan``: propose an IsoFLOP sweep from the scaling laws, print it, optionally enqueue it."""

from __future__ import annotations

import argparse
import math
from typing import TYPE_CHECKING

import pandas as pd

from sh_scaling.cli._output import check_output_file

if TYPE_CHECKING:
    import optuna

__all__ = ["register", "format_plan"]


def _floats(text: str) -> list[float]:
    try:
        return [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "plan",
        help="propose an IsoFLOP sweep (sizes around the compute-optimal N, vocabulary from the law)",
        description="Propose an IsoFLOP-style sweep: for each of a few budgets, model sizes around the "
        "compute-optimal size (Hoffmann et al. 2022), the vocabulary from the vocabulary law (Tao et al. 2024), "
        "width and depth from a step-time calibration (or an aspect-ratio rule), and tokens = C / (6N). "
        "Prints the table; with --study-name and --storage, enqueues it into an Optuna study.",
    )
    budget = p.add_mutually_exclusive_group(required=True)
    budget.add_argument("--flops", type=_floats, help="largest budget in FLOPs, or comma-separated budgets")
    budget.add_argument("--hours", type=_floats, help="largest training time per run in hours (or a list); "
                        "needs --calibration")
    p.add_argument("--calibration", default=None, help="step-time calibration JSON from `sh-scaling calibrate "
                   "--out FILE` (required with --hours; with --flops it picks width/depth)")
    p.add_argument("--budgets", type=int, default=3, help="number of budgets when one is given (default 3)")
    p.add_argument("--budget-ratio", type=float, default=10.0, help="ratio between budgets (default 10)")
    p.add_argument("--sizes", type=_floats, default=[0.25, 0.5, 1.0, 2.0, 4.0],
                   help="multiples of the optimal size (default 0.25,0.5,1,2,4)")
    p.add_argument("--vocab-size", type=int, default=None, help="fix the vocabulary (default: vocabulary law)")
    p.add_argument("--seq-len", type=int, default=2048, help="context length (default 2048)")
    p.add_argument("--batch-size", type=int, default=256, help="sequences per step (default 256)")
    p.add_argument("--head-dim", type=int, default=64, help="width per head (default 64)")
    p.add_argument("--aspect-ratio", type=float, default=128.0,
                   help="d_model / n_layers without a calibration (default 128)")
    p.add_argument("--csv", default=None, help="also write the table to this CSV file")
    p.add_argument("--force", action="store_true", help="overwrite the --csv file if it exists")
    p.add_argument("--study-name", default=None, help="enqueue the plan into this Optuna study")
    p.add_argument("--storage", default=None, help="Optuna storage URL of the study (e.g. sqlite:///sweep.db)")
    p.set_defaults(func=_run)


def format_plan(plan: pd.DataFrame) -> str:
    """The table printed by the command: one line per run."""
    time_budget = plan["budget_hours"].notna().any()
    header = (
        f"{'budget':>9} {'x N_opt':>7} {'L':>4} {'d':>6} {'H':>4} {'V':>7} {'params':>14} {'tokens':>10} "
        f"{'steps':>9} {'FLOPs':>9} {'tok/par':>8} {'hours':>8} {'loss':>6}"
    )
    lines = [header, "-" * len(header)]
    for _, r in plan.iterrows():
        b = f"{r['budget_hours']:.3g} h" if time_budget else f"{r['budget_flops']:.2e}"
        hours = "" if math.isnan(r["predicted_hours"]) else f"{r['predicted_hours']:.3g}"
        lines.append(
            f"{b:>9} {r['size_factor']:>7.2f} {int(r['n_layers']):>4} {int(r['d_model']):>6} "
            f"{int(r['n_heads']):>4} {int(r['vocab_size']):>7} {int(r['n_params']):>14,d} {r['tokens']:>10.3g} "
            f"{int(r['steps']):>9} {r['flops']:>9.2e} {r['tokens_per_param']:>8.1f} {hours:>8} "
            f"{r['predicted_loss']:>6.3f}"
        )
    lines.append("")
    lines.append(f"{len(plan)} runs, total compute {plan.attrs.get('total_flops', plan['flops'].sum()):.3e} FLOPs")
    return "\n".join(lines)


def _run(args: argparse.Namespace) -> int:
    from sh_scaling.sampling import enqueue, plan_sweep

    if (args.study_name is None) != (args.storage is None):
        raise ValueError("--study-name and --storage go together (the study to enqueue the plan into)")
    csv = check_output_file(args.csv, option="--csv", force=args.force) if args.csv else None
    budget = args.flops if args.flops is not None else args.hours
    if budget is not None and len(budget) == 1:
        budget = budget[0]
    plan = plan_sweep(
        budget if args.flops is not None else None,
        hours=budget if args.hours is not None else None,
        calibration=args.calibration,
        n_budgets=args.budgets,
        budget_ratio=args.budget_ratio,
        size_factors=args.sizes,
        vocab_size=args.vocab_size,
        seq_len=args.seq_len,
        batch_size=args.batch_size,
        head_dim=args.head_dim,
        aspect_ratio=args.aspect_ratio,
    )
    print(format_plan(plan))
    if csv is not None:
        csv.parent.mkdir(parents=True, exist_ok=True)
        plan.to_csv(csv, index=False)
        print(f"table written to {csv}")
    if args.study_name is not None:
        import optuna

        study = optuna.create_study(study_name=args.study_name, storage=args.storage, load_if_exists=True)
        new = _rows_not_enqueued(study, plan)
        n = enqueue(study, plan[new])
        already = len(plan) - n
        print(
            f"enqueued {n} trials into study {args.study_name!r} ({args.storage})"
            + (f"; {already} of the plan's runs were already in it" if already else "")
        )
    return 0


def _rows_not_enqueued(study: optuna.Study, plan: pd.DataFrame) -> list[bool]:
    """For each row of ``plan``, whether ``study`` lacks a trial for it (so running the command twice, or after
    an interruption, enqueues each run once).

    ``enqueue_trial(skip_if_exists=True)`` is not enough: it compares the fixed parameters only, and two runs of
    one plan may share a shape at different budgets (with a fixed vocabulary and budgets a square apart, twice
    the optimal size at one budget is the optimal size at the next), so it would drop a planned run. A row is
    identified here by its shape and everything :func:`~sh_scaling.sampling.enqueue` stores with it: the rows are
    enqueued into an in-memory study and compared with the trials already in ``study`` (any state).
    """
    import optuna

    from sh_scaling.sampling import enqueue

    scratch = optuna.create_study()
    enqueue(scratch, plan)
    wanted = [(t.system_attrs["fixed_params"], t.user_attrs) for t in scratch.get_trials(deepcopy=False)]
    existing = [
        (t.system_attrs.get("fixed_params", t.params), t.user_attrs) for t in study.get_trials(deepcopy=False)
    ]
    unused = list(existing)
    out = []
    for params, attrs in wanted:
        match = next(
            (i for i, (p, a) in enumerate(unused) if p == params and all(a.get(k) == v for k, v in attrs.items())),
            None,
        )
        if match is not None:
            del unused[match]  # one trial answers for one row: a row planned twice is enqueued twice
        out.append(match is None)
    return out
