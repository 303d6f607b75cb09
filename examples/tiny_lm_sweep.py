"""A real scaling-law sweep on a laptop: small GPT-style language models trained on CPU, pruned by compute.

What it does, end to end, with nothing downloaded:

1. **Corpus.** The docstrings of this Python's standard library (module, class and function docstrings,
   read with ``ast``), in file order; one docstring in twenty is held out for validation.
2. **Sweep.** ``ScalingPriorSampler`` proposes the depth, width and vocabulary size of each model with a
   scaling-law prior at the per-model FLOPs budget (the vocabulary law of Tao et al., NeurIPS 2024), and
   hands over to TPE as evidence accumulates. Every model gets the same training budget in FLOPs (an
   IsoFLOP sweep), counted with ``TransformerConfig.training_flops_per_token()`` (Hoffmann et al. 2022,
   Appendix F).
3. **Tokenizers.** A byte-level BPE tokenizer (Hugging Face ``tokenizers``) is trained on the training text
   at each vocabulary size the sampler proposes.
4. **Loss.** Cross-entropy per *token* is not comparable across tokenizers (a larger vocabulary packs more
   text into a token), so every model is scored in **bits per byte** of the same validation text: the summed
   negative log-likelihood of all validation tokens, in bits, divided by the UTF-8 bytes they cover.
5. **Pruning.** ``SurrogateHalvingPruner`` decides at compute rungs; reports go through
   :class:`sh_scaling.integrations.TrialReporter`, which is given each model's LR scheduler: the warm-up and
   cosine that model will follow to the end of its own budget is stored with the trial, so the pruner's
   forecasts know the rate still has to fall, and every report carries the rate the optimizer is at.
6. **Exhaustive reference in the same run.** Every pruned model is then trained on to the end of its budget
   (resumed from where it was pruned: training is deterministic, so this is the same as a fresh run, at no
   extra cost), which gives the exhaustive sweep over the same proposed models. The script prints the compute
   the pruner spent against that, the best loss each found, the laws fitted to both observed frontiers
   (with bootstrap intervals) and saves a plot.

Run: ``python examples/tiny_lm_sweep.py`` (16 models, about 10 minutes on one CPU core) or ``--quick``
(6 models, well under 2 minutes; for CI). Needs ``pip install "sh_scaling[torch,plot]" tokenizers``.
"""

from __future__ import annotations

import argparse
import ast
import math
import sys
import sysconfig
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import optuna
import torch
from optuna.distributions import CategoricalDistribution, IntDistribution
from optuna.trial import TrialState
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

import sh_scaling
from sh_scaling.curves import Curve
from sh_scaling.integrations import TrialReporter
from sh_scaling.laws import (
    TransformerConfig,
    VocabularyExtrapolationWarning,
    area_between_laws,
    fit_scaling_law,
    observed_frontier,
)
from sh_scaling.sampling import ScalingLawPrior, ScalingPriorSampler

#: Sweep sizes. ``flops``: training budget of every model; ``chars``: corpus size (training + validation).
SIZES = {
    "default": dict(n_models=16, flops=1.0e12, chars=2_000_000, val_chars=40_000, n_evals=12),
    "quick": dict(n_models=6, flops=2.0e11, chars=300_000, val_chars=12_000, n_evals=8),
}
#: What the sampler searches; ``objective`` suggests exactly these.
SEARCH_SPACE = {
    "n_layers": IntDistribution(1, 4),
    "d_model": CategoricalDistribution([32, 48, 64, 96, 128]),
    "vocab_size": CategoricalDistribution([256, 512, 1024, 2048, 4096]),
}
SEQ_LEN, BATCH, HEAD_DIM = 64, 16, 16
#: Peak learning rate (AdamW, cosine decay to a tenth): 1e-2 left the early plateau sooner than 3e-3 for these
#: widths in a short trial of both.
LR, WARMUP_STEPS = 1e-2, 20


# --- corpus and tokenizers -------------------------------------------------------------------------------------


def stdlib_docstrings(max_chars: int) -> list[str]:
    """Docstrings of the standard library, in a fixed order, until ``max_chars`` characters are collected."""
    root = Path(sysconfig.get_paths()["stdlib"])
    docs: list[str] = []
    seen: set[str] = set()
    total = 0
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root).parts
        if any(p in ("site-packages", "dist-packages", "test", "tests", "idlelib") for p in rel):
            continue
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"))
        except (SyntaxError, UnicodeDecodeError, ValueError, OSError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                doc = ast.get_docstring(node, clean=True)
                if doc and len(doc) > 40 and doc not in seen:
                    seen.add(doc)
                    docs.append(doc)
                    total += len(doc) + 2
                    if total >= max_chars:
                        return docs
    if total < max_chars // 4:
        raise RuntimeError(f"only {total} characters of docstrings found under {root}")
    return docs


@dataclass
class Corpus:
    train_docs: list[str]
    val_text: str

    @classmethod
    def build(cls, chars: int, val_chars: int) -> Corpus:
        docs = stdlib_docstrings(chars)
        val = "\n\n".join(d for i, d in enumerate(docs) if i % 20 == 0)[:val_chars]
        return cls([d for i, d in enumerate(docs) if i % 20], val)


def train_tokenizer(docs: list[str], vocab_size: int) -> Tokenizer:
    """Byte-level BPE (every byte is a token, so nothing is out of vocabulary) with ``vocab_size`` tokens."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  special_tokens=[], show_progress=False)
    tok.train_from_iterator(docs, trainer=trainer)
    return tok


@dataclass
class Encoded:
    """The corpus in one tokenizer's ids, and the bytes each validation target covers."""

    train: torch.Tensor
    val_windows: torch.Tensor
    val_bytes: int
    vocab_size: int


def encode(corpus: Corpus, tok: Tokenizer) -> Encoded:
    train = [i for enc in tok.encode_batch([d + "\n\n" for d in corpus.train_docs]) for i in enc.ids]
    val = tok.encode(corpus.val_text).ids
    # Windows of SEQ_LEN + 1 tokens overlapping by one: every validation token but the first is a target once.
    n = (len(val) - 1) // SEQ_LEN
    windows = torch.tensor([val[k * SEQ_LEN : (k + 1) * SEQ_LEN + 1] for k in range(n)])
    # Byte-level BPE writes each byte as one character of its token string.
    token_bytes = [len(tok.id_to_token(i)) for i in range(tok.get_vocab_size())]
    val_bytes = sum(token_bytes[i] for i in val[1 : n * SEQ_LEN + 1])
    return Encoded(torch.tensor(train), windows, val_bytes, tok.get_vocab_size())


# --- model and training ----------------------------------------------------------------------------------------


class TinyGPT(torch.nn.Module):
    """Decoder-only transformer: pre-norm blocks, GELU, learned positions, tied input/output embeddings."""

    def __init__(self, cfg: TransformerConfig) -> None:
        super().__init__()
        d = cfg.d_model
        self.tok = torch.nn.Embedding(cfg.vocab_size, d)
        self.pos = torch.nn.Embedding(cfg.seq_len, d)
        layer = torch.nn.TransformerEncoderLayer(d, cfg.n_heads, cfg.ffn_dim, dropout=0.0, activation="gelu",
                                                 batch_first=True, norm_first=True)
        self.blocks = torch.nn.TransformerEncoder(layer, cfg.n_layers, enable_nested_tensor=False)
        self.norm = torch.nn.LayerNorm(d)
        self.head = torch.nn.Linear(d, cfg.vocab_size, bias=False)
        self.head.weight = self.tok.weight
        self.register_buffer("mask", torch.nn.Transformer.generate_square_subsequent_mask(cfg.seq_len))
        torch.nn.init.normal_(self.tok.weight, std=0.02)
        torch.nn.init.normal_(self.pos.weight, std=0.02)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        s = ids.shape[1]
        h = self.blocks(self.tok(ids) + self.pos.weight[:s], mask=self.mask[:s, :s], is_causal=True)
        return self.head(self.norm(h))


def model_config(params: dict) -> TransformerConfig:
    d = int(params["d_model"])
    return TransformerConfig(n_layers=int(params["n_layers"]), d_model=d, n_heads=d // HEAD_DIM,
                             vocab_size=int(params["vocab_size"]), seq_len=SEQ_LEN, batch_size=BATCH)


@dataclass
class Run:
    """One model's training, resumable: the pruned sweep stops it, the exhaustive reference finishes it."""

    cfg: TransformerConfig
    data: Encoded
    flops: float
    n_evals: int
    seed: int
    compute: list[float] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)
    step: int = 0
    stopped_at: int | None = None  # evaluations done when the pruner stopped it

    def __post_init__(self) -> None:
        torch.manual_seed(self.seed)
        self.model = TinyGPT(self.cfg)
        self.fpt = self.cfg.training_flops_per_token()
        self.total_steps = max(1, round(self.flops / (self.fpt * self.cfg.tokens_per_step)))
        self.planned_compute = self.fpt * self.total_steps * self.cfg.tokens_per_step
        # Evaluations at log-spaced fractions of the budget: every model is read at the same compute values.
        fractions = np.geomspace(0.02, 1.0, self.n_evals)
        self.eval_steps = sorted({max(1, round(f * self.total_steps)) for f in fractions})
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=LR, weight_decay=0.1, betas=(0.9, 0.95))
        warm = min(WARMUP_STEPS, self.total_steps // 10 + 1)
        self.sched = torch.optim.lr_scheduler.LambdaLR(self.opt, lambda s: min(1.0, (s + 1) / warm) * (
            0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(s, self.total_steps) / self.total_steps))))
        self.gen = torch.Generator().manual_seed(self.seed)

    def train_to(self, step: int, tracker: TrialReporter | None = None) -> None:
        train = self.data.train
        while self.step < step:
            starts = torch.randint(0, len(train) - SEQ_LEN - 1, (BATCH,), generator=self.gen)
            ids = torch.stack([train[s : s + SEQ_LEN + 1] for s in starts])
            logits = self.model(ids[:, :-1])
            loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1))
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
            self.opt.step()
            self.sched.step()
            self.step += 1
            if tracker is not None:
                tracker.step(tokens=ids[:, :-1].numel())

    @torch.no_grad()
    def bits_per_byte(self) -> float:
        """Summed validation negative log-likelihood, in bits, per byte of validation text."""
        self.model.eval()
        nll = 0.0
        for chunk in self.data.val_windows.split(64):
            logits = self.model(chunk[:, :-1])
            nll += float(torch.nn.functional.cross_entropy(
                logits.reshape(-1, logits.shape[-1]), chunk[:, 1:].reshape(-1), reduction="sum"))
        self.model.train()
        return nll / math.log(2) / self.data.val_bytes

    def evaluate(self) -> float:
        bpb = self.bits_per_byte()
        self.compute.append(self.fpt * self.step * self.cfg.tokens_per_step)
        self.loss.append(bpb)
        return bpb

    def finish(self) -> None:
        for s in self.eval_steps[len(self.loss):]:
            self.train_to(s)
            self.evaluate()

    def curve(self, upto: int | None = None) -> Curve:
        n = len(self.loss) if upto is None else upto
        return Curve.from_arrays(self.seed, self.compute[:n], self.loss[:n])


# --- the sweep -------------------------------------------------------------------------------------------------


def run_sweep(size: dict, seed: int = 0, log=print) -> dict:
    t0 = time.perf_counter()
    corpus = Corpus.build(size["chars"], size["val_chars"])
    log(f"corpus: {len(corpus.train_docs)} standard-library docstrings, "
        f"{sum(map(len, corpus.train_docs)) / 1e6:.2f}M characters for training, "
        f"{len(corpus.val_text.encode())} bytes of validation text ({time.perf_counter() - t0:.1f} s)")
    encoded: dict[int, Encoded] = {}

    def data_for(vocab: int) -> Encoded:
        if vocab not in encoded:
            t = time.perf_counter()
            encoded[vocab] = encode(corpus, train_tokenizer(corpus.train_docs, vocab))
            e = encoded[vocab]
            log(f"  tokenizer V={vocab}: {len(e.train) / 1e3:.0f}k training tokens, "
                f"{e.val_bytes / (e.val_windows.numel() - len(e.val_windows)):.2f} bytes per validation token "
                f"({time.perf_counter() - t:.1f} s)")
        return encoded[vocab]

    flops = size["flops"]
    prior = ScalingLawPrior(flops=flops, params={k: k for k in SEARCH_SPACE},
                            fixed={"seq_len": SEQ_LEN, "batch_size": BATCH})
    # A mild prior (temperature 0.3): a sweep needs a spread of shapes, not only the predicted best.
    sampler = ScalingPriorSampler(prior, search_space=SEARCH_SPACE, temperature=0.3, seed=seed)
    pruner = sh_scaling.SurrogateHalvingPruner("powerlaw", max_compute=flops)
    study = optuna.create_study(sampler=sampler, pruner=pruner)
    runs: dict[int, Run] = {}

    def objective(trial: optuna.Trial) -> float:
        params = {
            "n_layers": trial.suggest_int("n_layers", 1, 4),
            "d_model": trial.suggest_categorical("d_model", SEARCH_SPACE["d_model"].choices),
            "vocab_size": trial.suggest_categorical("vocab_size", SEARCH_SPACE["vocab_size"].choices),
        }
        cfg = model_config(params)
        trial.set_user_attr("n_params", cfg.n_params)
        run = runs[trial.number] = Run(cfg, data_for(cfg.vocab_size), flops, size["n_evals"], seed + trial.number)
        # The planned run is total_steps scheduler steps; its compute, the trial's max_compute, puts each
        # report at the fraction of the schedule it was made at.
        tracker = TrialReporter(trial, flops_per_token=run.fpt, optimizer=run.opt, scheduler=run.sched,
                                total_steps=run.total_steps, max_compute=run.planned_compute)
        for s in run.eval_steps:
            run.train_to(s, tracker)
            try:
                tracker.report(run.evaluate())
            except optuna.TrialPruned:
                run.stopped_at = len(run.loss)
                raise
        return run.loss[-1]

    with warnings.catch_warnings():
        # The vocabulary law was fitted on 33M-1.13B parameters (Tao et al. 2024): far outside here; the prior
        # only ranks shapes, and the sampler's agreement check switches it off if it ranks them badly.
        warnings.filterwarnings("ignore", category=VocabularyExtrapolationWarning)
        t_sweep = time.perf_counter()
        study.optimize(objective, n_trials=size["n_models"])
        t_sweep = time.perf_counter() - t_sweep

    log(f"\n{'#':>3} {'layers':>6} {'width':>5} {'vocab':>5} {'params':>8} {'steps':>6}  "
        f"{'state':8} {'bits/byte':>9}  decision")
    for t in study.trials:
        run = runs[t.number]
        log(f"{t.number:3d} {run.cfg.n_layers:6d} {run.cfg.d_model:5d} {run.cfg.vocab_size:5d} "
            f"{run.cfg.n_params:8d} {run.step:6d}  {t.state.name:8} {run.loss[-1]:9.4f}  "
            f"{str(t.user_attrs.get('sh_scaling:decision', ''))[:70]}")

    for t in study.trials:
        if t.state == TrialState.PRUNED:
            log(f"why trial {t.number} was pruned: {t.user_attrs.get('sh_scaling:decision')}")

    spent = sum(r.compute[-1] for r in runs.values())
    pruned_curves = [r.curve() for r in runs.values()]
    t_ref = time.perf_counter()
    for run in runs.values():
        run.finish()
    t_ref = time.perf_counter() - t_ref
    exhaustive = sum(r.compute[-1] for r in runs.values())
    full_curves = [r.curve() for r in runs.values()]

    complete = [t for t in study.trials if t.state == TrialState.COMPLETE]
    best_pruned = min(t.value for t in complete)
    best_full = min(r.loss[-1] for r in runs.values())
    best_full_run = min(runs.values(), key=lambda r: r.loss[-1])
    laws, plateau_laws = {}, {}
    for name, curves in (("pruned", pruned_curves), ("exhaustive", full_curves)):
        grid, frontier = observed_frontier(curves, n=30)
        # Intervals resample the runs (curves), not points of the frontier grid.
        laws[name] = (grid, frontier, fit_scaling_law(curves, n_grid=30, n_bootstrap=200, seed=seed))
        try:  # with an irreducible term, E + A C^-gamma: the frontier of models this small flattens
            plateau_laws[name] = fit_scaling_law(curves, form="irreducible", n_grid=30, n_bootstrap=200, seed=seed)
        except ValueError as exc:
            plateau_laws[name] = f"fit failed: {exc}"
    lo, hi = laws["exhaustive"][2].c_min, laws["exhaustive"][2].c_max
    gap = area_between_laws(laws["pruned"][2], laws["exhaustive"][2], lo, hi) / math.log(hi / lo)

    states = [t.state for t in study.trials]
    return dict(
        study=study, runs=runs, laws=laws, plateau_laws=plateau_laws, n_models=len(runs),
        n_pruned=states.count(TrialState.PRUNED), n_complete=states.count(TrialState.COMPLETE), spent=spent, exhaustive=exhaustive,
        best_pruned=best_pruned, best_full=best_full, best_full_cfg=best_full_run.cfg, law_gap=gap,
        seconds_sweep=t_sweep, seconds_reference=t_ref, seconds_total=time.perf_counter() - t0,
        pruned_curves=pruned_curves, full_curves=full_curves,
    )


def summary(res: dict) -> str:
    lp, lf = res["laws"]["pruned"][2], res["laws"]["exhaustive"][2]
    cfg = res["best_full_cfg"]
    lines = [
        f"models proposed: {res['n_models']} ({res['n_complete']} trained to the end, {res['n_pruned']} pruned)",
        f"compute spent: {res['spent']:.3g} FLOPs with pruning vs {res['exhaustive']:.3g} exhaustive "
        f"= {res['spent'] / res['exhaustive']:.1%} (saved {1 - res['spent'] / res['exhaustive']:.1%})",
        f"best validation loss: {res['best_pruned']:.4f} bits/byte with pruning vs {res['best_full']:.4f} "
        f"exhaustive (relative gap {(res['best_pruned'] - res['best_full']) / res['best_full']:+.2%}); "
        f"exhaustive best: {cfg.n_layers} layers, width {cfg.d_model}, vocabulary {cfg.vocab_size}",
        f"law on the pruned sweep's observed frontier:     {lp}",
        f"law on the exhaustive sweep's observed frontier: {lf}",
        f"with an irreducible term, pruned:     {res['plateau_laws']['pruned']}",
        f"with an irreducible term, exhaustive: {res['plateau_laws']['exhaustive']}",
        f"mean |log-loss gap| between the two power laws over the exhaustive frontier's range: "
        f"{res['law_gap']:.4f}",
        f"wall time: pruned sweep {res['seconds_sweep']:.0f} s, finishing the pruned models for the exhaustive "
        f"reference {res['seconds_reference']:.0f} s, total {res['seconds_total']:.0f} s",
    ]
    return "\n".join(lines)


def plot(res: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 5))
    for full, seen in zip(res["full_curves"], res["pruned_curves"]):
        ax.plot(full.compute, full.loss, color="0.8", lw=1)
        ax.plot(seen.compute, seen.loss, color="C0", lw=1, alpha=0.8)
    ax.plot([], [], color="C0", lw=1, label="observed with pruning")
    ax.plot([], [], color="0.8", lw=1, label="rest of the curve (exhaustive reference)")
    for name, color in (("exhaustive", "k"), ("pruned", "C3")):
        grid, frontier, law = res["laws"][name]
        ax.plot(grid, frontier, color=color, lw=2.5, alpha=0.5, label=f"observed frontier, {name}")
        ax.plot(grid, law.predict(grid), color=color, ls="--", lw=1.2,
                label=f"law, {name}: exponent {law.params['gamma']:.3f}")
    ax.set(xscale="log", yscale="log", xlabel="training compute (FLOPs)", ylabel="validation bits per byte",
           title=f"{res['n_models']} tiny GPTs on stdlib docstrings: {res['spent'] / res['exhaustive']:.0%} "
                 f"of exhaustive compute")
    ax.legend(fontsize=8)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="6 small models (CI): well under 2 minutes")
    parser.add_argument("--models", type=int, help="number of models to propose (overrides the size)")
    parser.add_argument("--flops", type=float, help="training budget per model in FLOPs (overrides the size)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (default 1: these models are too small to gain from more)")
    parser.add_argument("--out", type=Path, default=Path("results/tiny_lm_sweep.png"), help="plot file")
    args = parser.parse_args(argv)
    size = dict(SIZES["quick" if args.quick else "default"])
    if args.models is not None:
        if args.models < 3:
            parser.error(f"--models must be at least 3, got {args.models}")
        size["n_models"] = args.models
    if args.flops is not None:
        if not (math.isfinite(args.flops) and args.flops > 0):
            parser.error(f"--flops must be a positive number, got {args.flops}")
        size["flops"] = args.flops
    torch.set_num_threads(args.threads)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    res = run_sweep(size, seed=args.seed)
    print()
    print(summary(res))
    plot(res, args.out)
    print(f"plot: {args.out}")
    return res


if __name__ == "__main__":
    main(sys.argv[1:])
