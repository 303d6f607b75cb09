"""``sh-scaling calibrate``: time training steps of small transformers here and fit the step-time models.

Prints one row per configuration (parameters, FLOPs, memory traffic, measured and predicted milliseconds), then
the R² of the memory-copy and FLOP models and which predicts step time better on this machine. ``--out``
writes the calibration as JSON for :func:`sh_scaling.laws.time_budget_loss` and the wall-clock priors.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from sh_scaling.cli._output import check_output_file, count_at_least

if TYPE_CHECKING:
    from sh_scaling.laws import StepTimeCalibration

__all__ = ["register", "format_table", "verdict"]

#: Below this R², a straight line on the proxy does not predict step time: it explains less than half the
#: variation of the measured times (timing noise of a busy machine, or steps too short to time).
POOR_R2 = 0.5
#: ``--help``'s description: the module's docstring without its markup.
DESCRIPTION = (
    "Time training steps of small transformers on this machine and fit step time on memory copies and on "
    "FLOPs. Prints one row per configuration (parameters, FLOPs, memory traffic, measured and predicted "
    "milliseconds), then the R^2 of the memory-copy and FLOP models and which predicts step time better here, "
    "or that neither does. --out writes the calibration as JSON, for `sh-scaling plan --hours` and "
    "sh_scaling.laws.time_budget_loss."
)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "calibrate",
        help="time training steps on this machine and fit step time on memory copies and on FLOPs",
        description=DESCRIPTION,
    )
    p.add_argument("--device", default="cpu", help="PyTorch device: cpu (default), cuda, cuda:1, ...")
    p.add_argument("--quick", action="store_true", help="tiny models and few steps (a smoke test)")
    p.add_argument("--out", default=None, help="write the calibration JSON here")
    p.add_argument("--force", action="store_true", help="overwrite the --out file if it exists")
    p.add_argument(
        "--dtype",
        choices=("float32", "bfloat16"),
        default="float32",
        help="activation precision: float32 (default) or bfloat16 mixed precision (autocast)",
    )
    p.add_argument("--threads", type=count_at_least(1), default=None,
                   help="CPU threads for PyTorch (1 is steadier on a busy machine)")
    p.add_argument("--warmup", type=count_at_least(0), default=None, help="untimed steps per configuration")
    p.add_argument("--repeats", type=count_at_least(1), default=None,
                   help="timed steps per configuration (median kept)")
    p.set_defaults(func=_run)


def format_table(calibration) -> str:
    """The per-configuration table and the summary lines printed by the command."""
    header = (
        f"{'#':>2} {'L':>3} {'d':>5} {'H':>3} {'seq':>5} {'B':>4} {'V':>6} {'params':>10} {'GFLOP':>9} "
        f"{'copies MB':>10} {'meas ms':>9} {'copies ms':>9} {'flops ms':>9}"
    )
    lines = [header, "-" * len(header)]
    for i, (cfg, sec) in enumerate(zip(calibration.configs, calibration.measured_seconds)):
        lines.append(
            f"{i:>2} {cfg.n_layers:>3} {cfg.d_model:>5} {cfg.n_heads:>3} {cfg.seq_len:>5} {cfg.batch_size:>4} "
            f"{cfg.vocab_size:>6} {cfg.n_params:>10,d} {cfg.training_flops_per_step() / 1e9:>9.3f} "
            f"{calibration.proxy_value(cfg, 'copies') / 1e6:>10.1f} {sec * 1e3:>9.3f} "
            f"{calibration.predict_step_time(cfg, 'copies') * 1e3:>9.3f} "
            f"{calibration.predict_step_time(cfg, 'flops') * 1e3:>9.3f}"
        )
    lines.append("")
    dtype = calibration.metadata.get("dtype", "float32")
    lines.append(f"device: {calibration.device}; activations {dtype}; {len(calibration.configs)} configurations")
    lines.append(
        f"R^2 memory copies: {calibration.copies.r2:.4f}   "
        f"(t = {calibration.copies.slope:.4g} s/byte * copies + {calibration.copies.intercept * 1e3:.4g} ms)"
    )
    lines.append(
        f"R^2 FLOPs:         {calibration.flops.r2:.4f}   "
        f"(t = {calibration.flops.slope:.4g} s/FLOP * flops + {calibration.flops.intercept * 1e3:.4g} ms)"
    )
    lines.append(verdict(calibration))
    return "\n".join(lines)


def verdict(calibration: StepTimeCalibration) -> str:
    """Which proxy predicts step time better here, or that neither predicts it (both R² below :data:`POOR_R2`)."""
    if max(calibration.copies.r2, calibration.flops.r2) < POOR_R2:
        return (f"neither memory copies nor FLOPs predicts step time well on this machine (both R^2 below "
                f"{POOR_R2:g}): the timings are mostly noise; time again without --quick, on an idle machine "
                "(e.g. --threads 1), before planning by hours with this calibration")
    winner = "memory copies" if calibration.best_proxy == "copies" else "FLOPs"
    return f"better predictor of step time here: {winner}"


def _run(args: argparse.Namespace) -> int:
    # Before the timing, which takes about a minute on a CPU without --quick.
    out = check_output_file(args.out, option="--out", force=args.force) if args.out else None
    try:
        import torch  # noqa: F401
    except ImportError:
        print("sh-scaling calibrate needs PyTorch: pip install 'sh_scaling[torch]'", file=sys.stderr)
        return 2
    from sh_scaling.laws import calibrate

    def progress(i, cfg, sec):
        print(
            f"  timed {i + 1:>2}: L={cfg.n_layers} d={cfg.d_model} H={cfg.n_heads} seq={cfg.seq_len} "
            f"B={cfg.batch_size} V={cfg.vocab_size}: {sec * 1e3:.3f} ms",
            file=sys.stderr,
            flush=True,
        )

    cal = calibrate(
        device=args.device, quick=args.quick, n_warmup=args.warmup, n_repeats=args.repeats, dtype=args.dtype,
        threads=args.threads, progress=progress,
    )
    print(format_table(cal))
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        path = cal.save(out)
        print(f"calibration written to {path}")
    return 0
