"""Sampler efficiency: how many trials until a sweep finds a model shape within 1 % of the best loss.

A simulated sweep at a fixed FLOPs budget. The search space is the model shape (``n_layers``, ``d_model``,
``vocab_size``); the objective is a *simulated world* built from the laws with perturbed constants, so its
optimum is known from a dense grid:

    L(shape) = E + A / Nnv**alpha + B / D**beta            (Chinchilla form, Hoffmann et al. 2022, jittered)
             + A_v / (Nv / 1e6)**alpha_v                   (vocabulary term, Tao et al. 2024's A2, alpha2)
             + c_shape * log((d_model / n_layers) / r*)**2 (a mild depth/width preference, Kaplan et al. 2020)
             + noise,
    Nnv = 12 n_layers d_model**2,  Nv = vocab_size d_model,  D = C / (6 (Nnv + Nv)).

Per seed the constants are jittered (E by 5 %, A and B by 20 %, alpha and beta by 3 %, all log-normal; the
preferred aspect ratio r* log-uniform between 32 and 200; c_shape = 0.005), and every observation carries
N(0, 0.005) noise. A trial "reaches" the optimum when its noise-free loss is within 1 % (or 0.5 %) of the optimum
of a dense grid. Two search spaces (``--space``): "wide" (default; n_layers 1-96, d_model 64-16384 log,
vocab_size 1K-512K log) and "narrow" (2-48, 128-8192, 4K-256K).

Samplers compared, each on the same worlds (seeds), all with TPE as the base:

* ``tpe``: Optuna's ``TPESampler`` alone;
* ``random``: ``RandomSampler`` (for scale);
* ``prior-right``: ``ScalingPriorSampler`` whose prior is the world's own law with the nominal constants
  (no jitter, no aspect preference: what the published laws know);
* ``prior-chinchilla``: the built-in Chinchilla prior (``loss="chinchilla"``, Hoffmann et al. constants, ``N``
  counting vocabulary parameters): an approximately right prior;
* ``prior-vocab``: the built-in vocabulary-law prior (Tao et al. 2024, approach 3), a different law from the
  world's: another approximate prior;
* ``prior-wrong``: constants that make data, not parameters, the bottleneck (A = 4, B = 4000), so the prior
  pushes towards far too small models;
* ``prior-wrong-nonadaptive``: the same with ``adaptive=False`` (decay by ``beta/(beta+n)`` alone).

Also measured: the time per trial of ``study.optimize`` on a trivial objective (so almost all of it is the
sampler) for TPE and for the wrapper around TPE, with in-memory storage.

Run: ``python benchmarks/bench_sampler.py`` (``--quick`` for a smoke run). Prints a table and writes
``results/bench_sampler.png``.
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import numpy as np
import optuna

from sh_scaling.constants import HOFFMANN_2022, ChinchillaConstants
from sh_scaling.sampling import ScalingLawPrior, ScalingPriorSampler

FLOPS = 1e20
#: Two search spaces: "narrow" is what a user who already knows the right ballpark would set; "wide" is what a
#: user planning a first sweep at a new budget might set (four orders of magnitude of model size around the
#: optimum). The laws' optimum at 1e20 FLOPs (about 0.65B to 0.8B parameters) is inside both.
SPACES = {
    "narrow": {
        "n_layers": optuna.distributions.IntDistribution(2, 48),
        "d_model": optuna.distributions.IntDistribution(128, 8192, log=True),
        "vocab_size": optuna.distributions.IntDistribution(4096, 262144, log=True),
    },
    "wide": {
        "n_layers": optuna.distributions.IntDistribution(1, 96),
        "d_model": optuna.distributions.IntDistribution(64, 16384, log=True),
        "vocab_size": optuna.distributions.IntDistribution(1024, 524288, log=True),
    },
}
SPACE = SPACES["wide"]
PARAMS = {"n_layers": "n_layers", "d_model": "d_model", "vocab_size": "vocab_size"}
#: Tao et al. (2024), approach 3: the vocabulary term A2 / Nv**alpha2 (Nv in millions).
VOCAB_A, VOCAB_ALPHA = 0.19584238398665638, 0.6707374679896795
NOISE = 0.005
SHAPE_COST = 0.005
TOLERANCES = (0.01, 0.005)
WRONG = ChinchillaConstants(E=1.69, A=4.0, B=4000.0, alpha=0.34, beta=0.28, source="deliberately wrong")


def suggest_shape(trial: optuna.Trial) -> dict[str, int]:
    return {n: trial.suggest_int(n, d.low, d.high, log=d.log) for n, d in SPACE.items()}


def world_loss(n_layers, d_model, vocab_size, k: dict[str, float]):
    """The simulated world's loss (noise-free) for constants ``k``; broadcasts over arrays."""
    n_layers, d_model, vocab_size = (np.asarray(x, dtype=float) for x in (n_layers, d_model, vocab_size))
    nnv = 12.0 * n_layers * d_model**2
    nv = vocab_size * d_model
    tokens = FLOPS / (6.0 * (nnv + nv))
    loss = k["E"] + k["A"] / nnv ** k["alpha"] + k["B"] / tokens ** k["beta"] + VOCAB_A / (nv / 1e6) ** VOCAB_ALPHA
    if "aspect" in k:
        loss = loss + SHAPE_COST * np.log((d_model / n_layers) / k["aspect"]) ** 2
    return loss


#: The world's constants before jitter: what the published laws say. The preferred aspect ratio is not
#: among them (the laws are silent on it), so the right prior does not know it.
NOMINAL = {"E": HOFFMANN_2022.E, "A": HOFFMANN_2022.A, "B": HOFFMANN_2022.B,
           "alpha": HOFFMANN_2022.alpha, "beta": HOFFMANN_2022.beta}


def nominal_law(cfg, tokens: float) -> float:
    """The right prior: the world's law with the nominal (unjittered) constants, as a ScalingLawPrior loss."""
    return float(world_loss(cfg.n_layers, cfg.d_model, cfg.vocab_size, NOMINAL))


class World:
    """One simulated world: jittered constants, a known optimum."""

    def __init__(self, seed: int) -> None:
        rng = np.random.default_rng(seed)
        self.k = {
            "E": NOMINAL["E"] * np.exp(rng.normal(0, 0.05)),
            "A": NOMINAL["A"] * np.exp(rng.normal(0, 0.2)),
            "B": NOMINAL["B"] * np.exp(rng.normal(0, 0.2)),
            "alpha": NOMINAL["alpha"] * np.exp(rng.normal(0, 0.03)),
            "beta": NOMINAL["beta"] * np.exp(rng.normal(0, 0.03)),
            "aspect": float(np.exp(rng.uniform(np.log(32), np.log(200)))),
        }
        self.rng = np.random.default_rng(seed + 10_000)
        layers = np.arange(SPACE["n_layers"].low, SPACE["n_layers"].high + 1)[:, None, None]
        widths = np.unique(np.round(np.geomspace(SPACE["d_model"].low, SPACE["d_model"].high, 800)))
        vocabs = np.unique(np.round(np.geomspace(SPACE["vocab_size"].low, SPACE["vocab_size"].high, 300)))
        widths, vocabs = widths[None, :, None], vocabs[None, None, :]
        self.best = float(self.loss(layers, widths, vocabs).min())

    def loss(self, n_layers, d_model, vocab_size):
        return world_loss(n_layers, d_model, vocab_size, self.k)

    def objective(self, trial: optuna.Trial) -> float:
        p = suggest_shape(trial)
        true = float(self.loss(p["n_layers"], p["d_model"], p["vocab_size"]))
        trial.set_user_attr("true_loss", true)
        return true + float(self.rng.normal(0, NOISE))


SAMPLERS = (
    "tpe", "random", "prior-right", "prior-chinchilla", "prior-vocab", "prior-wrong", "prior-wrong-nonadaptive"
)


def make_sampler(name: str, seed: int) -> optuna.samplers.BaseSampler:
    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    base = optuna.samplers.TPESampler(seed=seed)
    if name == "prior-right":
        prior = ScalingLawPrior(flops=FLOPS, params=PARAMS, loss=nominal_law)
    elif name == "prior-chinchilla":
        prior = ScalingLawPrior(flops=FLOPS, params=PARAMS, loss="chinchilla")
    elif name == "prior-vocab":
        prior = ScalingLawPrior(flops=FLOPS, params=PARAMS, loss="vocabulary")
    elif name.startswith("prior-wrong"):
        prior = ScalingLawPrior(flops=FLOPS, params=PARAMS, loss="chinchilla", constants=WRONG)
    else:
        raise ValueError(name)
    return ScalingPriorSampler(
        prior, base, search_space=SPACE, seed=seed, adaptive=not name.endswith("nonadaptive")
    )


def trials_to_reach(name: str, seed: int, max_trials: int) -> list[int]:
    """For each tolerance, the 1-based index of the first trial within it (``max_trials + 1``: not reached)."""
    world = World(seed)
    study = optuna.create_study(sampler=make_sampler(name, seed))
    targets = [world.best * (1.0 + tol) for tol in TOLERANCES]
    reached = [max_trials + 1] * len(TOLERANCES)
    for i in range(max_trials):
        study.optimize(world.objective, n_trials=1)
        true = study.trials[-1].user_attrs["true_loss"]
        for j, target in enumerate(targets):
            if true <= target and reached[j] > max_trials:
                reached[j] = i + 1
        if reached[-1] <= max_trials:
            break
    return reached


def overhead(n_trials: int, seed: int) -> dict[str, float]:
    """Seconds per trial of ``study.optimize`` on a trivial objective."""

    def objective(trial: optuna.Trial) -> float:
        return sum(suggest_shape(trial).values()) * 1e-9

    out = {}
    for name in ("tpe", "prior-vocab"):
        study = optuna.create_study(sampler=make_sampler(name, seed))
        t0 = time.perf_counter()
        study.optimize(objective, n_trials=n_trials)
        out[name] = (time.perf_counter() - t0) / n_trials
    return out


def main() -> None:
    global SPACE
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few seeds and a low cap, for a smoke run")
    parser.add_argument("--seeds", type=int, default=24)
    parser.add_argument("--max-trials", type=int, default=200)
    parser.add_argument("--space", choices=sorted(SPACES), default="wide")
    parser.add_argument("--samplers", default=",".join(SAMPLERS))
    args = parser.parse_args()
    n_seeds, max_trials = (4, 60) if args.quick else (args.seeds, args.max_trials)
    SPACE = SPACES[args.space]
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.simplefilter("ignore")

    names = args.samplers.split(",")
    results: dict[str, np.ndarray] = {}
    t_start = time.perf_counter()
    runs = {n: [trials_to_reach(n, seed, max_trials) for seed in range(n_seeds)] for n in names}
    results = {n: np.array(r) for n, r in runs.items()}  # (seeds, tolerances)
    elapsed = time.perf_counter() - t_start

    print(f"\nTrials until a trial is within 1 % / 0.5 % of the optimum: {n_seeds} seeds, {args.space} space, "
          f"C = {FLOPS:.0e} FLOPs, cap {max_trials} ({max_trials + 1} = not reached)")
    header = f"{'sampler':26s}"
    for tol in TOLERANCES:
        header += f" | {'median':>6s} {'p25':>5s} {'p75':>5s} {'miss':>4s} {'/TPE':>5s} @{tol:.1%}"
    print(header)
    for name, a in results.items():
        row = f"{name:26s}"
        for j in range(len(TOLERANCES)):
            col = a[:, j]
            ratio = np.median(col) / np.median(results["tpe"][:, j]) if "tpe" in results else float("nan")
            row += (f" | {np.median(col):6.1f} {np.percentile(col, 25):5.1f} {np.percentile(col, 75):5.1f}"
                    f" {int((col > max_trials).sum()):4d} {ratio:5.2f}       ")
        print(row)

    n_ov = 60 if args.quick else 150
    ov = overhead(n_ov, seed=0)
    print(f"\nPer-trial sampler time ({n_ov} trials, trivial objective, in-memory storage)")
    print(f"  TPE: {ov['tpe'] * 1e3:.2f} ms   prior+TPE: {ov['prior-vocab'] * 1e3:.2f} ms   "
          f"difference: {(ov['prior-vocab'] - ov['tpe']) * 1e3:+.2f} ms   "
          f"ratio: {ov['prior-vocab'] / ov['tpe']:.2f}")
    print(f"(benchmark wall time {elapsed:.0f} s)")

    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:  # pragma: no cover
        print("matplotlib not installed: no plot")
        return
    fig, axes = plt.subplots(1, len(TOLERANCES), figsize=(12, 4.5), sharey=True)
    grid = np.arange(1, max_trials + 1)
    for j, (ax, tol) in enumerate(zip(axes, TOLERANCES)):
        for name, a in results.items():
            ax.plot(grid, [(a[:, j] <= g).mean() for g in grid], label=name)
        ax.set_xscale("log")
        ax.set_xlabel("trials")
        ax.set_title(f"within {tol:.1%} of the optimum")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("fraction of seeds reached")
    axes[0].legend(fontsize=8)
    fig.suptitle(f"Scaling-law prior vs TPE: {n_seeds} simulated sweeps, {args.space} space, C = {FLOPS:.0e} FLOPs")
    out = Path("results")
    out.mkdir(exist_ok=True)
    fig.tight_layout()
    fig.savefig(out / "bench_sampler.png", dpi=120)
    print(f"plot: {out / 'bench_sampler.png'}")


if __name__ == "__main__":
    main()
