"""``sh-scaling start``: create a budgeted sweep for workers from a file of candidates, without writing Python.

The command is :meth:`sh_scaling.BudgetedHalving.start` on the command line: the candidates come from a CSV
file (one candidate per row, such as ``sh-scaling plan --csv`` writes) or a JSON file (a list of objects), each
candidate's planned end from one of its fields (or one number for all). It is idempotent: run it again with the
same settings, from any machine, at the same time as others, and it joins the sweep that is there (exit 0);
with other settings it is refused (exit 2, naming the settings that differ). That is why a cluster job can run
it at the start of every worker (a Slurm array task, a Kubernetes init container) before ``sh-scaling work``.

The strategy is a name or a spec with settings (``--strategy SH+MPL-SE:unseen=reach``, as ``sh-scaling simulate
--strategies`` reads it); the schedule-aware strategies need each candidate's learning-rate schedule
(``--schedule``: one ``Schedule.to_dict()`` in JSON for all, or a field of the candidates holding each one's).

Example::

    sh-scaling plan --flops 1e18 --csv plan.csv
    sh-scaling start --storage postgresql://user:pw@db/sweeps --study ladder --candidates plan.csv \\
        --budget 2e18 --max-compute flops --artifacts /shared/checkpoints \\
        --strategy SH+MPL-SE:unseen=reach --schedule '{"kind": "cosine", "warmup": 0.05, "final_ratio": 0.1}'
    sh-scaling work --storage postgresql://user:pw@db/sweeps --study ladder --train mypackage.train:train_fn \\
        --artifacts /shared/checkpoints
"""

from __future__ import annotations

import argparse
import json
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sh_scaling.cli._output import count_at_least, number_in

if TYPE_CHECKING:
    from sh_scaling.simulation import Strategy

__all__ = ["register", "read_candidates", "compute_spec", "schedule_spec", "strategy_spec"]

DESCRIPTION = (
    "Create a budgeted sweep for workers (BudgetedHalving(...).start()) from a CSV or JSON file of candidates, or "
    "join it when it already exists with the same settings (so every worker may run this first). Then run "
    "`sh-scaling work` on any number of machines."
)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("start", help="create a budgeted sweep for workers (or join it: idempotent)",
                              description=DESCRIPTION)
    p.add_argument("--storage", required=True,
                   help="the sweep's storage: an RDB URL (postgresql://..., mysql://..., sqlite:///...) or the "
                   "path of a journal file (created if missing)")
    p.add_argument("--study", required=True, help="the sweep's study name")
    p.add_argument("--candidates", required=True, metavar="FILE",
                   help="the configurations to race: a CSV file (one per row, e.g. from `sh-scaling plan --csv`) "
                   "or a JSON file holding a list of objects")
    p.add_argument("--budget", required=True, type=number_in(0, low_open=True),
                   help="total compute of the sweep, in the unit train_fn reports")
    p.add_argument("--max-compute", default=None, metavar="FIELD|NUMBER",
                   help="each candidate's planned end: the name of a field of the candidates (e.g. flops) or "
                   "one number for all (default: the most the schedule can give one candidate)")
    p.add_argument("--first-eval-compute", default=None, metavar="FIELD|NUMBER",
                   help="compute of a candidate's first evaluation (field or number); when given, a budget whose "
                   "first round cannot reach every first evaluation is refused before any training")
    p.add_argument("--reduction-factor", type=number_in(1, low_open=True), default=2.0,
                   help="eta, the share of candidates kept each round is 1/eta (default 2, the paper's)")
    p.add_argument("--strategy", type=strategy_spec, default="SH+FA", metavar="NAME[:KEY=VALUE...]",
                   help="how survivors are ranked: a name from sh_scaling.simulation.STRATEGIES, optionally with "
                   "settings as `sh-scaling simulate --strategies` takes them (e.g. SH+MPL-SE:unseen=reach); "
                   "default SH+FA")
    p.add_argument("--schedule", default=None, metavar="FIELD|JSON",
                   help="each candidate's learning-rate schedule, which the schedule-aware strategies (SH+MPL, "
                   "SH+FA-MPL, SH+MPL-SE) forecast under: a JSON object (a Schedule.to_dict(), e.g. "
                   "'{\"kind\": \"cosine\", \"warmup\": 0.05, \"final_ratio\": 0.1}') for every candidate, or "
                   "the name of a field of the candidates holding one (an object in a JSON file, a JSON string "
                   "in a CSV cell; an empty cell or null: no schedule for that candidate)")
    p.add_argument("--seed", type=count_at_least(0), default=0, help="seeds the tie-breaks (default 0)")
    p.add_argument("--keep-checkpoints", choices=("last", "all"), default="last",
                   help="last (default): remove checkpoints no longer wanted; all: remove nothing")
    p.add_argument("--artifacts", default=None, metavar="DIR",
                   help="the shared checkpoint folder (default: <file>.checkpoints next to a journal file or "
                   "SQLite database; required with a database server); created if missing")
    p.set_defaults(func=_run)


def read_candidates(path: str) -> list[dict[str, Any]]:
    """The candidates of a CSV or JSON file, as plain dicts (an empty CSV cell becomes ``None``).

    ``ValueError`` naming the file for one that is missing, empty, or not a list of objects.
    """
    file = Path(path)
    if not file.is_file():
        raise ValueError(f"--candidates {path!r}: no such file")
    if file.suffix.lower() == ".json":
        try:
            data = json.loads(file.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise ValueError(f"--candidates {path!r} is not valid JSON: {exc}") from None
        if isinstance(data, dict) and isinstance(data.get("candidates"), list):
            data = data["candidates"]
        if not isinstance(data, list) or not all(isinstance(c, dict) for c in data):
            raise ValueError(f"--candidates {path!r}: expected a JSON list of objects (one per candidate)")
        rows = data
    elif file.suffix.lower() == ".csv":
        import pandas as pd

        try:
            frame = pd.read_csv(file)
        except pd.errors.EmptyDataError:
            raise ValueError(f"--candidates {path!r} is empty") from None
        rows = [{str(k): _plain(v) for k, v in row.items()} for row in frame.to_dict("records")]
    else:
        raise ValueError(f"--candidates {path!r}: expected a .csv or .json file")
    if not rows:
        raise ValueError(f"--candidates {path!r} holds no candidate")
    return rows


def compute_spec(option: str, spec: str | None, candidates: list[dict[str, Any]]) -> Any:
    """``--max-compute``/``--first-eval-compute`` as ``BudgetedHalving`` takes it: ``None``, a number, or a
    function that reads the named field of a candidate. A name that some candidate lacks is refused here, with
    the candidate's index, rather than when the sweep is set up."""
    if spec is None:
        return None
    try:
        return float(spec)
    except ValueError:
        pass
    missing = [i for i, c in enumerate(candidates) if spec not in c]
    if missing:
        fields = sorted(candidates[missing[0]])
        raise ValueError(f"{option} {spec!r} is neither a number nor a field of every candidate (candidate "
                         f"{missing[0]} has {fields})")
    return lambda config: config[spec]


def strategy_spec(text: str) -> Strategy:
    """An argparse ``type=``: the :class:`~sh_scaling.simulation.Strategy` a name or spec
    (``NAME[:KEY=VALUE...]``) stands for, read by :func:`~sh_scaling.simulation.parse_strategy`; its one-line
    error otherwise."""
    from sh_scaling.simulation import parse_strategy

    try:
        return parse_strategy(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def schedule_spec(spec: str | None, candidates: list[dict[str, Any]]) -> Any:
    """``--schedule`` as ``BudgetedHalving`` takes it: ``None``, the JSON object given (one schedule description for
    every candidate), or a function that reads the named field of a candidate (a description, its JSON text in a
    CSV cell, or ``None``/an empty cell for none). A field some candidate lacks, or JSON text that does not parse,
    is refused here with the candidate's index; whether each value is a schedule is checked by
    :meth:`BudgetedHalving.check <sh_scaling.BudgetedHalving.check>`, as for a sweep started in Python."""
    if spec is None:
        return None
    if spec.lstrip().startswith("{"):
        try:
            return json.loads(spec)
        except json.JSONDecodeError as exc:
            raise ValueError(f"--schedule {spec!r} is not valid JSON: {exc}") from None
    missing = [i for i, c in enumerate(candidates) if spec not in c]
    if missing:
        raise ValueError(f"--schedule {spec!r} is neither a JSON object nor a field of every candidate (candidate "
                         f"{missing[0]} has {sorted(candidates[missing[0]])})")
    for i, c in enumerate(candidates):
        try:
            _cell(c[spec])
        except ValueError as exc:
            raise ValueError(f"--schedule {spec!r}: candidate {i}'s {exc}") from None
    return lambda config: _cell(config[spec])


def _cell(value: Any) -> Any:
    """A candidate's schedule field with JSON text (a CSV cell) read: an empty cell is ``None``."""
    if isinstance(value, str):
        if not value.strip():
            return None
        try:
            return json.loads(value)
        except json.JSONDecodeError as exc:
            raise ValueError(f"value {value!r} is not valid JSON: {exc}") from None
    return value


def _folder_store(folder: str) -> Any:
    """A :class:`~optuna.artifacts.FileSystemArtifactStore` of the ``--artifacts`` folder that creates the folder
    when its first checkpoint (the sweep's writability probe) is written: a start refused after the storage is
    opened (other settings than those stored) leaves no new folder."""
    from optuna.artifacts import FileSystemArtifactStore

    class FolderOnWrite(FileSystemArtifactStore):
        def write(self, artifact_id: str, content_body: Any) -> None:
            os.makedirs(folder, exist_ok=True)
            super().write(artifact_id, content_body)

    return FolderOnWrite(folder)


def _plain(v: Any) -> Any:
    """A CSV cell as JSON holds it: numpy scalars as Python numbers, an empty cell (NaN) as ``None``."""
    if hasattr(v, "item"):
        v = v.item()
    if isinstance(v, float) and math.isnan(v):
        return None
    return v


def _run(args: argparse.Namespace) -> int:
    import optuna

    from sh_scaling.budgeted import BudgetedHalving
    from sh_scaling.cli.work import storage_from_arg
    from sh_scaling.keys import BUDGETED_PLAN_KEY

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    candidates = read_candidates(args.candidates)
    max_compute = compute_spec("--max-compute", args.max_compute, candidates)
    first_eval = compute_spec("--first-eval-compute", args.first_eval_compute, candidates)
    schedule = schedule_spec(args.schedule, candidates)
    sweep = BudgetedHalving(candidates, args.budget, max_compute=max_compute, first_eval_compute=first_eval,
                            reduction_factor=args.reduction_factor, strategy=args.strategy, schedule=schedule,
                            study_name=args.study, seed=args.seed, keep_checkpoints=args.keep_checkpoints)
    sweep.check()  # every refusal that needs no storage, before the storage or the checkpoint folder is created
    sweep.storage = storage = storage_from_arg(args.storage, create=True)
    sweep.artifact_store = None if args.artifacts is None else _folder_store(args.artifacts)
    sweep.start()
    study = optuna.load_study(study_name=args.study, storage=storage)
    plan = study._storage.get_study_system_attrs(study._study_id)[BUDGETED_PLAN_KEY]  # whoever created it
    stated_for = "" if plan.get("schedules") is None else (
        f", {sum(d is not None for d in plan['schedules'])} with a schedule")
    print(f"sweep {args.study!r} ready: {len(candidates)} candidates{stated_for}, {len(plan['sizes'])} round(s), "
          f"budget {args.budget:.6g}, ranked by {plan['strategy']['name']}; start workers with `sh-scaling work "
          f"--storage ... --study {args.study} --train MODULE:FUNCTION`")
    return 0
