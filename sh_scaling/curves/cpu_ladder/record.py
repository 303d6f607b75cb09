"""Record the CPU ladder: small GPT-style language models trained on CPU under three learning-rate schedules.

The ladder (the constants below): four model sizes, each trained for planned lengths of ``1x`` and ``2.5x`` a
token budget (the two smallest also ``10x``) under three schedules, every one after the same linear warm-up of
``WARMUP_STEPS`` from 0 to ``PEAK_LR``:

* ``cosine``: half-cosine decay to 10 % of the peak at the run's own planned end;
* ``wsd``: constant at the peak, then a linear cooldown to 0 over the last ``WSD_COOLDOWN`` of the run;
* ``constant``: the peak to the end.

Corpus: the docstrings of this Python's standard library (module, class and function docstrings read with
``ast``, in file order), as UTF-8 bytes (a vocabulary of 256); one docstring in twenty is held out for
validation. Loss: mean cross-entropy in nats per byte on a fixed set of validation windows, the same for every
run. Training FLOPs of a point: ``6 * n_params_total * tokens``, with ``n_params_total`` every trainable
parameter (the tied embedding counted once): at these sizes the output head is a large share of the work per
token (a third of the non-embedding count at ``d_model=32``), which the non-embedding count would leave out.

**Shared prefixes.** A run is a pure function of its size's seed (initialisation and data order) and its
learning rate at each step, and the rate at a step depends on the planned length only once a decay has started.
So the ``constant`` run of the short length is the first part of the long one, and a ``wsd`` run is the
``constant`` run up to its cooldown. Each size therefore trains one long constant run (the trunk), branches a
copy of the model, optimiser and data generator at the start of each cooldown, and trains the cosine runs on
their own: the curves recorded are those of 30 separate runs, at the cost of 6.7 instead of 10.5 short lengths for
a size with two lengths. ``--check-branching`` trains the smallest size's short ``wsd`` run from scratch as well and fails
unless its curve equals the branched one exactly.

Run (from the repository root; about 22 minutes of one core; needs torch)::

    python -m sh_scaling.curves.cpu_ladder.record            # every size, into curves.csv beside this file

or in parts side by side (``--sizes``, ``--lengths``, ``--part trunk|cosine``, each with its own ``--out``), then
``--merge PART.csv ... --out curves.csv``. ``--sizes d32 --scale 0.2 --out /tmp/trial.csv`` is a quick trial.
"""

from __future__ import annotations

import argparse
import ast
import copy
import csv
import math
import sys
import sysconfig
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

#: ``label: (d_model, n_layers, seed)``; heads of ``HEAD_DIM``.
SIZES = {"d32": (32, 2, 1032), "d48": (48, 2, 1048), "d64": (64, 3, 1064), "d96": (96, 4, 1096)}
#: Planned training tokens of each size's short (``1x``) run: the same for every size (so compute grows with
#: parameters and the largest model has compute left to win late); a long run draws fewer bytes than the training
#: text holds.
TOKENS_1X = {"d32": 500_000, "d48": 500_000, "d64": 500_000, "d96": 500_000}
LENGTHS = {"1x": 1.0, "2.5x": 2.5, "10x": 10.0}
#: The lengths each size is trained for: the two smallest also run 10x, long enough for larger models to overtake
#: them at equal compute (at 2.5x every curve ends before the next size catches up).
SIZE_LENGTHS = {"d32": ("1x", "2.5x", "10x"), "d48": ("1x", "2.5x", "10x"), "d64": ("1x", "2.5x"),
                "d96": ("1x", "2.5x")}
SCHEDULES = ("cosine", "wsd", "constant")
#: Small batches (512 tokens), many steps: in a trial with 2,048 tokens per step (a third of the steps) the d32
#: model's WSD cooldown gained nothing over the constant rate (2.53 nats/byte both); here it gains 0.03 to 0.08.
SEQ_LEN, BATCH, HEAD_DIM, VOCAB = 128, 4, 16, 256
#: AdamW peak learning rate, the same for every run (not tuned per size).
PEAK_LR = 3e-3
WARMUP_STEPS = 50
COSINE_FINAL_RATIO = 0.1
#: Fraction of a WSD run spent in its linear cooldown to 0 (Hägele et al. 2024 found 10-20 % enough).
WSD_COOLDOWN = 0.2
#: Validation: ``VAL_WINDOWS`` windows of ``SEQ_LEN + 1`` bytes spread evenly over the held-out text.
VAL_WINDOWS = 64
#: Evaluations of a run of ``T`` planned steps: log-spaced fractions (for the early curve, where a pruner's
#: first rungs fall) and every 5 % of the run (so a cooldown gets several points).
EVAL_LOG_FRACTIONS = np.geomspace(0.01, 1.0, 18)
EVAL_EVEN_FRACTIONS = np.linspace(0.05, 1.0, 20)

COLUMNS = ("run_id", "size", "n_params", "n_params_total", "d_model", "n_layers", "n_heads", "seq_len",
           "batch_size", "schedule", "length", "planned_steps", "warmup_steps", "decay_start_step", "peak_lr",
           "seed", "step", "tokens", "flops", "lr", "train_loss", "val_loss")


# --- data ------------------------------------------------------------------------------------------------------


def stdlib_docstrings() -> list[str]:
    """All docstrings of the standard library longer than 40 characters, once each, in a fixed order."""
    root = Path(sysconfig.get_paths()["stdlib"])
    docs: list[str] = []
    seen: set[str] = set()
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
    return docs


@dataclass
class Data:
    train: torch.Tensor  # bytes of the training docstrings, as int64
    val: torch.Tensor  # (VAL_WINDOWS, SEQ_LEN + 1)

    @classmethod
    def build(cls) -> Data:
        docs = stdlib_docstrings()
        train = "".join(d + "\n\n" for i, d in enumerate(docs) if i % 20).encode("utf-8")
        val = "".join(d + "\n\n" for i, d in enumerate(docs) if i % 20 == 0).encode("utf-8")
        if len(val) < VAL_WINDOWS * (SEQ_LEN + 1):
            raise RuntimeError(f"only {len(val)} bytes of validation docstrings")
        val_t = torch.tensor(list(val), dtype=torch.long)
        starts = np.linspace(0, len(val) - SEQ_LEN - 1, VAL_WINDOWS).astype(int)
        windows = torch.stack([val_t[s : s + SEQ_LEN + 1] for s in starts])
        return cls(torch.tensor(list(train), dtype=torch.long), windows)


# --- model -----------------------------------------------------------------------------------------------------


class Block(nn.Module):
    """Pre-LN transformer block: causal multi-head self-attention, then a GELU MLP of width 4 d."""

    def __init__(self, d: int, n_heads: int) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.ln1 = nn.LayerNorm(d)
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)
        self.ln2 = nn.LayerNorm(d)
        self.fc = nn.Linear(d, 4 * d)
        self.out = nn.Linear(4 * d, d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(self.ln1(x)).view(b, t, 3, self.n_heads, d // self.n_heads).permute(2, 0, 3, 1, 4)
        att = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.proj(att.transpose(1, 2).reshape(b, t, d))
        return x + self.out(F.gelu(self.fc(self.ln2(x))))


class GPT(nn.Module):
    """Decoder-only byte-level language model: token and learned position embeddings, pre-LN blocks, a final
    LayerNorm and an output head tied to the token embedding."""

    def __init__(self, d: int, n_layers: int) -> None:
        super().__init__()
        self.tok = nn.Embedding(VOCAB, d)
        self.pos = nn.Embedding(SEQ_LEN, d)
        self.blocks = nn.ModuleList(Block(d, d // HEAD_DIM) for _ in range(n_layers))
        self.ln = nn.LayerNorm(d)
        for name, p in self.named_parameters():
            if p.dim() == 2:
                # GPT-2's initialisation: N(0, 0.02), the residual projections scaled down by depth.
                std = 0.02 / math.sqrt(2 * n_layers) if name.endswith(("proj.weight", "out.weight")) else 0.02
                nn.init.normal_(p, std=std)
            elif name.endswith("bias"):
                nn.init.zeros_(p)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        x = self.tok(ids) + self.pos.weight[: ids.shape[1]]
        for block in self.blocks:
            x = block(x)
        return self.ln(x) @ self.tok.weight.T

    def n_params(self) -> tuple[int, int]:
        """(non-embedding, total) trainable parameters; the tied head is counted once, as the token embedding."""
        total = sum(p.numel() for p in self.parameters())
        return total - self.tok.weight.numel() - self.pos.weight.numel(), total


# --- schedules -------------------------------------------------------------------------------------------------


def planned_steps(size: str, length: str) -> int:
    return round(TOKENS_1X[size] * LENGTHS[length] / (SEQ_LEN * BATCH))


def cooldown_start(total: int) -> int:
    """The first step of a WSD run's cooldown."""
    return round((1.0 - WSD_COOLDOWN) * total)


def decay_start_step(schedule: str, total: int) -> int | None:
    return cooldown_start(total) if schedule == "wsd" else None


def learning_rate(schedule: str, step: int, total: int) -> float:
    """The rate of update number ``step`` (1-based) of a run of ``total`` planned steps.

    Written from the step counts, not from :mod:`sh_scaling.schedules`, so that the loader's schedules (stated as
    fractions of the run) are checked against an independent statement of the same rule by the tests.
    """
    if step < WARMUP_STEPS:
        return PEAK_LR * step / WARMUP_STEPS
    if schedule == "cosine":
        progress = (step - WARMUP_STEPS) / (total - WARMUP_STEPS)
        return PEAK_LR * (COSINE_FINAL_RATIO + (1 - COSINE_FINAL_RATIO) * 0.5 * (1 + math.cos(math.pi * progress)))
    start = decay_start_step(schedule, total)
    if start is not None and step >= start:
        return PEAK_LR * (1.0 - (step - start) / (total - start))
    return PEAK_LR


def eval_steps(total: int) -> list[int]:
    fractions = np.concatenate([EVAL_LOG_FRACTIONS, EVAL_EVEN_FRACTIONS])
    return sorted({max(1, round(f * total)) for f in fractions})


# --- training --------------------------------------------------------------------------------------------------


@dataclass
class Trainer:
    """One model's training state: model, optimiser, data generator, and the losses of every step so far."""

    model: GPT
    opt: torch.optim.Optimizer
    gen: torch.Generator
    step: int = 0
    train_losses: list[float] = field(default_factory=list)
    val_losses: dict[int, float] = field(default_factory=dict)  # by step: runs sharing a step share it

    @classmethod
    def new(cls, size: str) -> Trainer:
        d, n_layers, seed = SIZES[size]
        torch.manual_seed(seed)
        model = GPT(d, n_layers)
        decay = [p for p in model.parameters() if p.dim() >= 2]
        rest = [p for p in model.parameters() if p.dim() < 2]
        opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": rest, "weight_decay": 0.0}],
                                lr=PEAK_LR, betas=(0.9, 0.95), eps=1e-8)
        return cls(model, opt, torch.Generator().manual_seed(seed))

    def branch(self) -> Trainer:
        """An independent copy that continues exactly as this one would."""
        model, opt = copy.deepcopy((self.model, self.opt))
        gen = torch.Generator()
        gen.set_state(self.gen.get_state())
        return Trainer(model, opt, gen, self.step, list(self.train_losses), dict(self.val_losses))

    def train_to(self, step: int, schedule: str, total: int, train: torch.Tensor) -> None:
        while self.step < step:
            self.step += 1
            lr = learning_rate(schedule, self.step, total)
            for group in self.opt.param_groups:
                group["lr"] = lr
            starts = torch.randint(0, len(train) - SEQ_LEN - 1, (BATCH,), generator=self.gen)
            ids = torch.stack([train[s : s + SEQ_LEN + 1] for s in starts])
            logits = self.model(ids[:, :-1])
            loss = F.cross_entropy(logits.reshape(-1, VOCAB), ids[:, 1:].reshape(-1))
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
            self.opt.step()
            self.train_losses.append(loss.item())

    @torch.no_grad()
    def val_loss(self, val: torch.Tensor) -> float:
        """Mean cross-entropy, nats per byte, over every target of the validation windows."""
        if self.step in self.val_losses:
            return self.val_losses[self.step]
        self.model.eval()
        total = 0.0
        for chunk in val.split(32):
            logits = self.model(chunk[:, :-1])
            total += float(F.cross_entropy(logits.reshape(-1, VOCAB), chunk[:, 1:].reshape(-1), reduction="sum"))
        self.model.train()
        self.val_losses[self.step] = total / (val.shape[0] * SEQ_LEN)
        return self.val_losses[self.step]


@dataclass(frozen=True)
class Run:
    size: str
    schedule: str
    length: str

    @property
    def id(self) -> str:
        return f"{self.size}/{self.schedule}_{self.length}"

    @property
    def total(self) -> int:
        return planned_steps(self.size, self.length)


#: ``--part``: the runs recorded by one process (parts of one size can run side by side).
PARTS = {"all": SCHEDULES, "trunk": ("wsd", "constant"), "cosine": ("cosine",)}


def record_size(size: str, data: Data, part: str = "all", lengths: tuple[str, ...] | None = None,
                ) -> list[dict[str, object]]:
    """The runs of one size under ``PARTS[part]`` at ``lengths`` (default: ``SIZE_LENGTHS[size]``; see the module
    docstring for the shared prefixes), as CSV rows."""
    lengths = tuple(SIZE_LENGTHS[size] if lengths is None else [x for x in SIZE_LENGTHS[size] if x in lengths])
    rows: list[dict[str, object]] = []
    trainer = Trainer.new(size)
    n_params, n_total = trainer.model.n_params()
    d, n_layers, seed = SIZES[size]

    def row(run: Run, t: Trainer, since: int) -> dict[str, object]:
        tokens = t.step * SEQ_LEN * BATCH
        recent = t.train_losses[since : t.step]
        return {
            "run_id": run.id, "size": size, "n_params": n_params, "n_params_total": n_total, "d_model": d,
            "n_layers": n_layers, "n_heads": d // HEAD_DIM, "seq_len": SEQ_LEN, "batch_size": BATCH,
            "schedule": run.schedule, "length": run.length, "planned_steps": run.total,
            "warmup_steps": WARMUP_STEPS, "decay_start_step": decay_start_step(run.schedule, run.total) or "",
            "peak_lr": PEAK_LR, "seed": seed, "step": t.step, "tokens": tokens, "flops": 6 * n_total * tokens,
            "lr": learning_rate(run.schedule, t.step, run.total), "train_loss": float(np.mean(recent)),
            "val_loss": t.val_loss(data.val),
        }

    def follow(run: Run, t: Trainer, until: int, after: int = 0) -> None:
        """Train ``t`` under ``run``'s schedule to step ``until``, recording ``run``'s evaluations past ``after``."""
        steps = eval_steps(run.total)
        previous = max([0] + [s for s in steps if s <= after])
        for s in steps:
            if after < s <= until:
                t.train_to(s, run.schedule, run.total, data.train)
                rows.append(row(run, t, previous))
                previous = s
        t.train_to(until, run.schedule, run.total, data.train)

    # The trunk: the long constant run, evaluated on its own grid and on the short constant run's and both WSD
    # runs' grids before their cooldowns; a WSD run branches off at its cooldown's start.
    longest = max(lengths, key=LENGTHS.__getitem__)
    trunk_runs = [Run(size, k, x) for x in lengths for k in ("constant", "wsd")] if "constant" in PARTS[part] else []
    ends = {r: r.total if r.schedule == "constant" else cooldown_start(r.total) for r in trunk_runs}
    plan = sorted({(s, r) for r in trunk_runs for s in eval_steps(r.total) if s <= ends[r]}, key=lambda x: x[0])
    branch_points = {ends[r]: r for r in trunk_runs if r.schedule == "wsd"}
    marks = sorted({s for s, _ in plan} | set(branch_points))
    last_eval: dict[Run, int] = {r: 0 for r in trunk_runs}
    for s in marks:
        trainer.train_to(s, "constant", Run(size, "constant", longest).total, data.train)
        for s2, r in plan:
            if s2 == s:
                rows.append(row(r, trainer, last_eval[r]))
                last_eval[r] = s
        if s in branch_points:
            run = branch_points[s]
            follow(run, trainer.branch(), run.total, after=s)
        _progress(size, f"trunk step {s}")
    for length in lengths if "cosine" in PARTS[part] else ():
        run = Run(size, "cosine", length)
        follow(run, Trainer.new(size), run.total)
        _progress(size, f"{run.id} done")
    return rows


_START = time.process_time()


def _progress(size: str, what: str) -> None:
    print(f"[{time.process_time() - _START:7.1f} s cpu] {size}: {what}", file=sys.stderr, flush=True)


def check_branching(data: Data) -> None:
    """Train the smallest size's short WSD run from scratch and compare it with the branched record."""
    size = next(iter(SIZES))
    run = Run(size, "wsd", "1x")
    branched = [r for r in record_size(size, data, "trunk", (run.length,)) if r["run_id"] == run.id]
    t = Trainer.new(size)
    fresh = []
    for s in eval_steps(run.total):
        t.train_to(s, "wsd", run.total, data.train)
        fresh.append(t.val_loss(data.val))
    if [r["val_loss"] for r in branched] != fresh:
        raise SystemExit(f"branched and fresh runs differ: {[r['val_loss'] for r in branched]} vs {fresh}")
    print(f"{run.id}: branched and fresh runs agree at all {len(fresh)} evaluations", file=sys.stderr)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("curves.csv"))
    parser.add_argument("--sizes", default=",".join(SIZES), help="comma-separated size labels")
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every token budget (trials only)")
    parser.add_argument("--part", choices=list(PARTS), default="all",
                        help="record only these runs of each size (trunk: wsd and constant; cosine)")
    parser.add_argument("--lengths", help="comma-separated lengths to record (default: every length of each size)")
    parser.add_argument("--check-branching", action="store_true")
    parser.add_argument("--merge", nargs="+", type=Path, metavar="CSV",
                        help="write the rows of these files (parts recorded side by side) to --out, in order")
    args = parser.parse_args(argv)
    if args.merge:
        merge(args.merge, args.out)
        return
    torch.set_num_threads(1)
    sizes = args.sizes.split(",")
    unknown = set(sizes) - set(SIZES)
    if unknown:
        parser.error(f"unknown sizes {sorted(unknown)}; choose from {list(SIZES)}")
    for s in TOKENS_1X:
        TOKENS_1X[s] = round(TOKENS_1X[s] * args.scale)
    data = Data.build()
    _progress("data", f"{len(data.train):,} training bytes, {data.val.numel():,} validation bytes")
    if args.check_branching:
        check_branching(data)
        return
    with open(args.out, "w", newline="", encoding="utf-8") as stream:
        writer = csv.DictWriter(stream, COLUMNS, lineterminator="\n")
        writer.writeheader()
        for size in sizes:
            lengths = None if args.lengths is None else tuple(args.lengths.split(","))
            rows = sorted(record_size(size, data, args.part, lengths), key=_order)
            for r in rows:
                writer.writerow({k: f"{v:.9g}" if isinstance(v, float) else v for k, v in r.items()})
            stream.flush()
            _progress(size, f"{len(rows)} rows written")


def _order(r: dict[str, object]) -> tuple[int, int, int, int]:
    """Rows by size, schedule, length and step."""
    return (list(SIZES).index(str(r["size"])), SCHEDULES.index(str(r["schedule"])),
            list(LENGTHS).index(str(r["length"])), int(str(r["step"])))


def merge(parts: list[Path], out: Path) -> None:
    """The rows of ``parts`` (CSVs written by this script) in one file, in order; a run in two parts is an error."""
    rows: list[dict[str, object]] = []
    owner: dict[str, Path] = {}
    for part in parts:
        with open(part, newline="", encoding="utf-8") as stream:
            reader = csv.DictReader(stream)
            if tuple(reader.fieldnames or ()) != COLUMNS:
                raise SystemExit(f"{part}: not a file written by this script (columns {reader.fieldnames})")
            for r in reader:
                if owner.setdefault(r["run_id"], part) != part:
                    raise SystemExit(f"run {r['run_id']} is in both {owner[r['run_id']]} and {part}")
                rows.append(dict(r))
    with open(out, "w", newline="", encoding="utf-8") as stream:
        writer = csv.DictWriter(stream, COLUMNS, lineterminator="\n")
        writer.writeheader()
        rows.sort(key=_order)
        writer.writerows(rows)


if __name__ == "__main__":
    main()
