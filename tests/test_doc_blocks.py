"""Every code block of the README and of the pages in ``docs/`` runs, or is listed here with the reason it cannot.

A page's blocks run in order in one temporary directory, as a reader would run them (the report page's study,
made by its first block, is what its next blocks read). ``python`` blocks run as scripts, ``bash`` blocks with
``bash -e``, both with this interpreter first on ``PATH`` (so ``python`` and ``sh-scaling`` are the ones under
test) and ``examples/`` linked into the directory. A block that is a fragment says so on its first line
(``# fragment: completed in tests/test_doc_blocks.py``) and is run between the code in ``COMPLETIONS``. A
block whose text is the same as one run earlier (the README's tour is the simulator page's) is run once.
MyST directives (```` ```{toctree} ````, ```` ```{literalinclude} ````) are not code; the example scripts that
the tutorials include are run by ``tests/test_examples.py``.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FRAGMENT = "# fragment: completed in tests/test_doc_blocks.py"
RUNNABLE = ("python", "bash")
BLOCK_TIMEOUT_S = 300


@dataclass(frozen=True)
class Block:
    path: str  # relative to the repository
    line: int  # of the opening fence, 1-based
    lang: str
    code: str

    @property
    def key(self) -> tuple[str, str]:
        """(page, first line): how the lists below name a block."""
        return self.path, self.code.split("\n", 1)[0]

    def where(self) -> str:
        return f"{self.path}:{self.line} ({self.lang or 'no language'}: {self.key[1]!r})"


def doc_files() -> list[Path]:
    docs = sorted(p for p in (REPO / "docs").rglob("*.md") if "_build" not in p.relative_to(REPO / "docs").parts)
    return [REPO / "README.md", *docs]


def parse_blocks(path: Path) -> list[Block]:
    """The fenced code blocks of a Markdown file (MyST directives left out), with an error for an unclosed one."""
    blocks: list[Block] = []
    lines = path.read_text(encoding="utf-8").split("\n")
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("```"):
            fence = line[: len(line) - len(line.lstrip("`"))]
            info = line[len(fence):].strip()
            end = next((j for j in range(i + 1, len(lines)) if lines[j].rstrip() == fence), None)
            if end is None:
                raise ValueError(f"{path}:{i + 1}: code block never closed")
            if not info.startswith("{"):
                code = "\n".join(lines[i + 1:end]) + "\n"
                blocks.append(Block(str(path.relative_to(REPO)), i + 1, info.split()[0] if info else "", code))
            i = end + 1
        else:
            i += 1
    return blocks


#: Blocks not run, by (page, first line), each with the reason.
NOT_RUN: dict[tuple[str, str], str] = {
    ("README.md", 'pip install -e ".[plot]" --config-settings editable_mode=strict && sh-scaling simulate '
                  '--curves synthetic --repeats 10 --out results/synthetic'):
        "installs from the package index, then simulates 10 repeats of every default strategy and budget "
        "(minutes); the simulator page's smaller sh-scaling simulate command is run",
    ("README.md", 'pip install -e ".[test]" -c .ci/constraints-newest.txt --config-settings editable_mode=strict '
                  '&& mypy && python -P -m pytest -q'):
        "the whole test suite, this file included: .ci/run runs it",
    ("docs/guides/install.md", 'pip install -e ".[plot]" --config-settings editable_mode=strict && sh-scaling '
                               'simulate --curves synthetic --repeats 10 --out results/synthetic'):
        "the README's first command (see there)",
    ("docs/guides/install.md", 'pip install -e ".[test]" -c .ci/constraints-newest.txt --config-settings '
                               'editable_mode=strict && mypy && python -P -m pytest -q'):
        "the README's second command (see there)",
    ("docs/guides/install.md", 'pip install -e ".[docs]" -c .ci/constraints-newest.txt --config-settings '
                               'editable_mode=strict && python -P -m sphinx -W --keep-going -b html docs '
                               'docs/_build/html'):
        "builds these pages (about a minute); .ci/run runs it",
    ("docs/guides/pruner.md", "+import sh_scaling"):
        "a diff, not a program; its whole program is examples/pruner_quickstart.py, run by the quickstart "
        "tutorial's block and by tests/test_examples.py",
    ("docs/guides/integrations.md", "models proposed: 16 (4 trained to the end, 12 pruned)"):
        "output of examples/tiny_lm_sweep.py, not code",
    ("docs/guides/distributed.md", "python examples/distributed_sweep.py --workers 4 --trials 64     "
                                   "# journal file results/distributed_sweep.journal"):
        "four worker processes for 64 trials (about half a minute on two cores); tests/test_examples.py runs "
        "the same script with 2 workers and 10 trials",
    ("docs/guides/distributed.md", "python examples/distributed_sweep.py --workers 4 --storage "
                                   "postgresql+psycopg2://user:pw@host/db"):
        "needs a PostgreSQL server; tests/test_distributed.py runs the storage tests against one",
    ("docs/guides/report.md", "optuna-dashboard sqlite:///sweep.db"):
        "starts a web server that runs until stopped; the report command before it attaches the figures it shows",
    ("docs/tutorials/distributed_sweep.md", "python examples/distributed_sweep.py --workers 4 --trials 64"):
        "the distributed page's first command (see there)",
    ("docs/tutorials/tiny_lm_sweep.md", "python examples/tiny_lm_sweep.py"):
        "trains 16 language models (5-10 minutes); tests/test_examples.py runs the script on a tiny corpus",
    ("docs/tutorials/budgeted_sweep.md", "python examples/budgeted_sweep.py"):
        "trains 16 language models three ways (minutes); tests/test_budgeted_example.py runs it in --quick",
    ("README.md", "# on every machine, any number of times (a requeued task runs it again):"):
        "needs a started sweep, a storage server and the user's train module; tests/test_cluster_files.py parses "
        "it and runs the Slurm script that holds it",
    ("docs/guides/budgeted.md", "# on every machine (a Slurm array task, a Kubernetes Job pod):"):
        "needs a started sweep and the user's train module; tests/test_budgeted_workers.py runs sh-scaling work "
        "in three processes",
}

#: Code run before and after each fragment, by (page, first line).
COMPLETIONS: dict[tuple[str, str], tuple[str, str]] = {
    ("docs/guides/budgeted.md",
     "# fragment: completed in tests/test_doc_blocks.py (configs, planned_flops and train_fn are yours)"): (
        # Candidates are synthetic curves; "training" reveals a curve's recorded points up to the grant.
        """
        from sh_scaling.curves import generate_synthetic

        curves = generate_synthetic(6, seed=0)
        configs = [{"curve": i} for i in range(len(curves))]
        total = sum(float(c.compute[-1]) for c in curves)

        def planned_flops(config):
            return float(curves[config["curve"]].compute[-1])

        def train_fn(config, from_checkpoint, until_compute):
            c = curves[config["curve"]]
            return [(float(x), float(y)) for x, y in zip(c.compute, c.loss) if x <= until_compute], None
        """,
        # The block's budget (1e21) is in FLOPs, as these curves' compute is.
        """
        assert sweep.best_loss_ is not None and sweep.ledger_["total"] <= 1e21
        print("best loss", sweep.best_loss_, "spent", sweep.ledger_["total"], "of", total)
        """,
    ),
    ("docs/guides/budgeted.md",
     "# fragment: completed in tests/test_doc_blocks.py (start the sweep once, from any machine)"): (
        # The same synthetic candidates; a SQLite file stands for the database server, a local folder for the
        # shared file system.
        """
        import os

        import optuna
        import sh_scaling
        from sh_scaling.curves import generate_synthetic

        curves = generate_synthetic(6, seed=0)
        configs = [{"curve": i} for i in range(len(curves))]
        storage_url = "sqlite:///ladder.db"
        os.makedirs("shared-checkpoints", exist_ok=True)
        shared_checkpoints = optuna.artifacts.FileSystemArtifactStore("shared-checkpoints")

        def planned_flops(config):
            return float(curves[config["curve"]].compute[-1])

        def train_fn(config, from_checkpoint, until_compute):
            c = curves[config["curve"]]
            return [(float(x), float(y)) for x, y in zip(c.compute, c.loss) if x <= until_compute], None
        """,
        """
        assert sweep.ledger_["total"] <= 1e21 and sweep.survivors_
        print("best loss", sweep.best_loss_, "spent", sweep.ledger_["total"])
        """,
    ),
    ("docs/guides/report.md",
     "# fragment: completed in tests/test_doc_blocks.py (study is the study above, loaded from sweep.db)"): (
        """
        import optuna

        study = optuna.load_study(study_name="sweep", storage="sqlite:///sweep.db")
        """,
        """
        import os

        assert os.path.getsize("curves.html") > 0 and len(load_csv("sweep.csv.gz")) == len(study.trials)
        """,
    ),
    ("docs/guides/integrations.md",
     "# fragment: completed in tests/test_doc_blocks.py (model, args, train and val are yours; the test gives "
     "a tiny model)"): (
        # A two-layer GPT-2 on arithmetic sequences, trained for 20 steps on CPU.
        """
        import optuna
        import sh_scaling
        import torch
        import transformers

        torch.set_num_threads(1)
        VOCAB, SEQ = 64, 16


        class Sequences(torch.utils.data.Dataset):
            def __init__(self, n, seed):
                g = torch.Generator().manual_seed(seed)
                start = torch.randint(0, VOCAB, (n, 1), generator=g)
                self.ids = (start + torch.randint(1, 4, (n, 1), generator=g) * torch.arange(SEQ)) % VOCAB

            def __len__(self):
                return len(self.ids)

            def __getitem__(self, i):
                return {"input_ids": self.ids[i], "labels": self.ids[i]}


        torch.manual_seed(0)
        model = transformers.GPT2LMHeadModel(
            transformers.GPT2Config(vocab_size=VOCAB, n_positions=SEQ, n_embd=32, n_layer=2, n_head=2))
        args = transformers.TrainingArguments(
            output_dir="hf_out", max_steps=20, per_device_train_batch_size=8, eval_strategy="steps",
            eval_steps=5, save_strategy="no", report_to="none", use_cpu=True, learning_rate=3e-3,
            disable_tqdm=True, seed=0)
        train, val = Sequences(256, 0), Sequences(32, 1)
        """,
        """
        study = optuna.create_study(pruner=sh_scaling.SurrogateHalvingPruner(max_compute=1e9))
        study.optimize(objective, n_trials=1)
        trial = study.trials[0]
        assert trial.state == optuna.trial.TrialState.COMPLETE and len(trial.intermediate_values) == 4
        print("eval_loss", trial.value)
        """,
    ),
}


def all_blocks() -> list[Block]:
    return [b for path in doc_files() for b in parse_blocks(path)]


def plan() -> dict[str, list[Block]]:
    """Per page, the blocks to run, in order; a block whose text an earlier page already runs is left out."""
    seen: set[tuple[str, str]] = set()
    pages: dict[str, list[Block]] = {}
    for b in all_blocks():
        if b.key in NOT_RUN or b.lang not in RUNNABLE or (b.lang, b.code) in seen:
            continue
        seen.add((b.lang, b.code))
        pages.setdefault(b.path, []).append(b)
    return pages


def test_every_block_is_run_or_listed_with_its_reason():
    blocks = all_blocks()
    keys = [b.key for b in blocks]
    assert len(keys) == len(set(keys)), "two blocks of one page start with the same line; the lists cannot tell them apart"
    run_texts = {(b.lang, b.code) for page in plan().values() for b in page}
    ran, listed, problems = [], [], []
    for b in blocks:
        if b.key in NOT_RUN:
            listed.append(b)
        elif b.lang in RUNNABLE and (b.lang, b.code) in run_texts:
            ran.append(b)
        else:
            problems.append(f"{b.where()}: neither run (python or bash) nor listed in NOT_RUN with a reason")
        fragment = b.code.startswith(FRAGMENT)
        if fragment and b.key not in COMPLETIONS:
            problems.append(f"{b.where()}: says it is a fragment but COMPLETIONS has no completion for it")
        if b.key in COMPLETIONS and not fragment:
            problems.append(f"{b.where()}: completed here but does not say so ({FRAGMENT!r} on its first line)")
    for key in [*NOT_RUN, *COMPLETIONS]:
        if key not in keys:
            problems.append(f"listed block {key} is in no page any more")
    assert not problems, "\n".join(problems)
    assert len(ran) + len(listed) == len(blocks)
    print(f"{len(blocks)} code blocks: {len(ran)} run, {len(listed)} listed as not run")


def _environment(tmp: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env["MPLBACKEND"] = "Agg"
    env["SH_SCALING_CACHE"] = str(tmp / "cache")  # nothing downloaded into the user's cache
    env.pop("PYTHONPATH", None)
    return env


def _script(block: Block) -> str:
    if block.key not in COMPLETIONS:
        return block.code
    before, after = COMPLETIONS[block.key]
    return textwrap.dedent(before) + "\n" + block.code + "\n" + textwrap.dedent(after)


@pytest.mark.parametrize("page", sorted(plan()))
def test_page_blocks_run(page, tmp_path):
    (tmp_path / "examples").symlink_to(REPO / "examples")
    env = _environment(tmp_path)
    for n, block in enumerate(plan()[page]):
        if block.lang == "python":
            script = tmp_path / f"block_{n}.py"
            script.write_text(_script(block), encoding="utf-8")
            cmd = [sys.executable, script.name]
        else:
            cmd = ["bash", "-e", "-o", "pipefail", "-c", block.code]
        done = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=BLOCK_TIMEOUT_S)
        assert done.returncode == 0, (
            f"{block.where()} failed with status {done.returncode}\n--- stdout\n{done.stdout[-3000:]}"
            f"\n--- stderr\n{done.stderr[-3000:]}"
        )
        assert "Traceback" not in done.stderr, f"{block.where()} printed a traceback:\n{done.stderr[-3000:]}"
        # A page's code does what its text says without a warning (the tour's law once warned "no intervals
        # computed" beside a comment that promised them).
        warned = [line for line in done.stderr.splitlines() if re.search(r":\d+: \w*Warning: ", line)]
        assert not warned, f"{block.where()} warned:\n" + "\n".join(warned)
