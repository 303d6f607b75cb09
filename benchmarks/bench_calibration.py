"""Which proxy predicts training-step time: memory copies or FLOPs? (Inbar & Sernau, "Time Matters", 2024)

Times real training steps of a family of small GPT-style transformers on this machine (or reads calibrations
saved by ``sh-scaling calibrate --out``), fits ``t = a * x + b`` on memory traffic and on FLOPs, prints the
per-configuration table with the R² of both, the wider-vs-deeper table at a fixed time budget, and plots
measured against predicted step time for both proxies (``results/bench_calibration.png``).

    python benchmarks/bench_calibration.py --quick                     # tiny models, seconds
    python benchmarks/bench_calibration.py                             # the CPU family on this machine
    python benchmarks/bench_calibration.py --device cuda --dtype bfloat16
    python benchmarks/bench_calibration.py --load results/cal_h100_float32.json results/cal_h100_bfloat16.json
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from sh_scaling.cli.calibrate import format_table
from sh_scaling.laws import StepTimeCalibration, calibrate, wider_or_deeper

RESULTS = Path(__file__).resolve().parents[1] / "results"


def _label(cal: StepTimeCalibration) -> str:
    return f"{cal.device.split(' (')[0]}, {cal.metadata.get('dtype', 'float32')}"


def _plot(cals: list[StepTimeCalibration], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(cals), 2, figsize=(10, 4.2 * len(cals)), squeeze=False)
    for row, cal in zip(axes, cals):
        y = np.array(cal.measured_seconds) * 1e3
        for ax, proxy in zip(row, ("copies", "flops")):
            fit = cal.copies if proxy == "copies" else cal.flops
            pred = np.array([cal.predict_step_time(c, proxy) for c in cal.configs]) * 1e3
            ax.scatter(pred, y, s=25)
            for i, (p, m) in enumerate(zip(pred, y)):
                ax.annotate(str(i), (p, m), fontsize=7, xytext=(3, 3), textcoords="offset points")
            lim = [0, max(y.max(), pred.max()) * 1.08]
            ax.plot(lim, lim, "k--", lw=0.8)
            ax.set_xlim(lim)
            ax.set_ylim(lim)
            name = "memory copies" if proxy == "copies" else "FLOPs"
            ax.set_title(f"{_label(cal)}\nt = a·{name} + b: R² = {fit.r2:.3f}", fontsize=9)
            ax.set_xlabel("predicted step time (ms)")
            ax.set_ylabel("measured step time (ms)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny models and few steps")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32", choices=("float32", "bfloat16"))
    parser.add_argument("--threads", type=int, default=None, help="CPU threads for PyTorch while timing")
    parser.add_argument("--load", nargs="+", default=None, help="calibration JSON files to report instead of timing")
    parser.add_argument("--save", default=None, help="write the new calibration JSON here")
    parser.add_argument("--plot", default=str(RESULTS / "bench_calibration.png"))
    args = parser.parse_args(argv)

    if args.load:
        cals = [StepTimeCalibration.load(p) for p in args.load]
    else:
        cal = calibrate(device=args.device, quick=args.quick, dtype=args.dtype, threads=args.threads)
        if args.save:
            cal.save(args.save)
        cals = [cal]

    summary = []
    for cal in cals:
        print(format_table(cal))
        print()
        cfg = cal.configs[0]
        table = wider_or_deeper(
            3600.0,
            max(12 * cfg.d_model**2 * 8, 1e6),
            cal,
            vocab_size=cfg.vocab_size,
            seq_len=cfg.seq_len,
            batch_size=cfg.batch_size,
            head_dim=max(8, cfg.head_dim),
        )
        cols = ["n_layers", "d_model", "d_ff", "step_s_copies", "step_s_flops", "loss_copies", "loss_flops"]
        print("Fixed time budget (1 h), fixed non-vocabulary parameters: wider or deeper?")
        print(table[cols].to_string(index=False, float_format=lambda v: f"{v:.4g}"))
        print()
        winners = table.loc[table["best_copies"]]
        # A fitted line with a negative intercept can predict non-positive times for every shape: no winner.
        shape = f"L={winners.iloc[0].n_layers}, d={winners.iloc[0].d_model}" if len(winners) else "n/a"
        summary.append((_label(cal), cal.copies.r2, cal.flops.r2, cal.best_proxy, shape))

    print(f"{'hardware':<42} {'R2 copies':>10} {'R2 FLOPs':>10} {'better':>8}  {'copies model: best shape'}")
    for label, rc, rf, best, shape in summary:
        print(f"{label:<42} {rc:>10.4f} {rf:>10.4f} {best:>8}  {shape}")
    _plot(cals, Path(args.plot))
    print(f"plot written to {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
