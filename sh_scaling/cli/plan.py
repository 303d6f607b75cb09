"""``sh-scaling plan``: propose an IsoFLOP sweep from the scaling laws, print it, optionally enqueue it."""

from __future__ import annotations

import argparse
import math
from typing import TYPE_CHECKING

import pandas as pd

from sh_scaling.cli._output import check_output_file, count_at_least, number_in

if TYPE_CHECKING:
    import optuna

    from sh_scaling.laws import StepTimeCalibration

__all__ = ["register", "format_plan", "plan_warnings"]

#: Fewer training steps than this is no training run: a learning-rate warm-up alone is usually longer.
MIN_STEPS = 100
#: Below this R², a step-time model does not predict step time (see ``sh-scaling calibrate``).
POOR_R2 = 0.5
#: What the columns of the printed table hold, printed above it.
LEGEND = (
    "columns: x N_opt = size / compute-optimal size; L = layers; d = width (d_model); H = attention heads;",
    "V = vocabulary size; tokens = FLOPs / (6 params); tok/par = tokens per parameter;",
    "hours = predicted training time (with a calibration); loss = predicted loss (Chinchilla, Hoffmann et al. 2022)",
)


def _floats(text: str) -> list[float]:
    """An argparse ``type=``: one or more comma-separated positive numbers."""
    try:
        values = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None
    if not values or not all(math.isfinite(v) and v > 0 for v in values):
        raise argparse.ArgumentTypeError(f"expected positive numbers, got {text!r}")
    return values


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
    p.add_argument("--budgets", type=count_at_least(1), default=3,
                   help="number of budgets when one is given (default 3)")
    p.add_argument("--budget-ratio", type=number_in(1, low_open=True), default=10.0,
                   help="ratio between budgets, above 1 (default 10)")
    p.add_argument("--sizes", type=_floats, default=[0.25, 0.5, 1.0, 2.0, 4.0],
                   help="multiples of the optimal size (default 0.25,0.5,1,2,4)")
    p.add_argument("--vocab-size", type=count_at_least(1), default=None,
                   help="fix the vocabulary (default: vocabulary law)")
    p.add_argument("--seq-len", type=count_at_least(1), default=2048, help="context length (default 2048)")
    p.add_argument("--batch-size", type=count_at_least(1), default=256, help="sequences per step (default 256)")
    p.add_argument("--head-dim", type=count_at_least(1), default=64, help="width per head (default 64)")
    p.add_argument("--aspect-ratio", type=number_in(0, low_open=True), default=128.0,
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
    lines = [*LEGEND, "", header, "-" * len(header)]
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


def plan_warnings(plan: pd.DataFrame, calibration: StepTimeCalibration | None = None) -> list[str]:
    """What makes a plan unfit to run, in words: runs too short to train, or a calibration whose step times are
    guesses (both of its models' R² below :data:`POOR_R2`)."""
    out = []
    short = plan[plan["steps"] < MIN_STEPS]
    if len(short):
        lo, hi = int(short["steps"].min()), int(short["steps"].max())
        steps = f"each {lo}" if lo == hi else f"{lo} to {hi}"
        out.append(
            f"{len(short)} of the {len(plan)} planned runs train for fewer than {MIN_STEPS} steps ({steps}): too "
            "short to train a model (a learning-rate warm-up alone is usually longer); give a larger budget, or "
            "smaller --batch-size or --seq-len"
        )
    over = plan[plan["predicted_hours"] > 1.5 * plan["budget_hours"]]  # NaN (a FLOPs budget) compares False
    if len(over):
        out.append(f"{len(over)} of the {len(plan)} planned runs are predicted to take over 1.5 times their time "
                   "budget (hours column): the budget is too small for even the smallest shape")
    if calibration is not None and max(calibration.copies.r2, calibration.flops.r2) < POOR_R2:
        out.append(
            f"the calibration predicts step time poorly (R^2 {calibration.copies.r2:.2f} on memory copies, "
            f"{calibration.flops.r2:.2f} on FLOPs): the planned hours and shapes rest on it; calibrate again "
            "without --quick, on an idle machine (e.g. --threads 1)"
        )
    return out


def _run(args: argparse.Namespace) -> int:
    from sh_scaling.sampling import enqueue, plan_sweep

    if (args.study_name is None) != (args.storage is None):
        raise ValueError("--study-name and --storage go together (the study to enqueue the plan into)")
    csv = check_output_file(args.csv, option="--csv", force=args.force) if args.csv else None
    calibration = None
    if args.calibration is not None:
        from sh_scaling.laws import StepTimeCalibration

        calibration = StepTimeCalibration.load(args.calibration)
    budget = args.flops if args.flops is not None else args.hours
    if budget is not None and len(budget) == 1:
        budget = budget[0]
    plan = plan_sweep(
        budget if args.flops is not None else None,
        hours=budget if args.hours is not None else None,
        calibration=calibration,
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
    for warning in plan_warnings(plan, calibration):
        print(f"warning: {warning}")
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
    enqueued into an in-memory study and compared with the trials already in ``study`` (any state). That study
    is made with Optuna's logging held at warnings: its "A new study created in memory" beside the enqueueing
    into ``study`` reads as if the plan went nowhere.
    """
    import optuna

    from sh_scaling.sampling import enqueue

    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(min(max(verbosity, optuna.logging.WARNING), optuna.logging.CRITICAL))
    try:
        scratch = optuna.create_study()
    finally:
        optuna.logging.set_verbosity(verbosity)
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
