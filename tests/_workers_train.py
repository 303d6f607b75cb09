"""A train function for worker processes of budgeted sweeps (``sh-scaling work --train _workers_train:train``).

It "trains" a candidate by revealing the recorded points of a synthetic curve (``config["n"]``,
``config["seed"]``, candidate ``config["i"]``) from where its checkpoint says to ``until``, logs every call
in ``$SH_SCALING_TEST_WORKERS_LOG`` (and every round decision of the process) and, in the middle of the
second segment of candidate ``config["kill"]``, SIGKILLs its own process once.
"""

from __future__ import annotations

import json
import os
import signal
import time
import uuid
import warnings
from functools import lru_cache
from pathlib import Path

from sh_scaling.budgeted import BudgetedHalving
from sh_scaling.curves import generate_synthetic


def _log_decisions() -> None:
    """Log every round decision this process makes, so a test can check that each round is decided once."""
    real = BudgetedHalving._decide

    def decide(self, ctx, r, *args, **kwargs):
        log = Path(os.environ["SH_SCALING_TEST_WORKERS_LOG"])
        (log / f"decide-{r}-{os.getpid()}-{uuid.uuid4().hex}").write_text("")
        return real(self, ctx, r, *args, **kwargs)

    BudgetedHalving._decide = decide


# `sh-scaling work` imports this module before it works: the logging is in place for every decision.
if os.environ.get("SH_SCALING_TEST_WORKERS_LOG"):
    _log_decisions()


@lru_cache(maxsize=None)
def curves(n: int, seed: int):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return list(generate_synthetic(n, seed=seed))


def train(config, from_checkpoint, until):
    i = config["i"]
    ckpt = None if from_checkpoint is None else json.loads(Path(from_checkpoint).read_text())
    if ckpt is not None:
        assert ckpt["i"] == i, "handed another candidate's checkpoint"
    log = Path(os.environ["SH_SCALING_TEST_WORKERS_LOG"])
    call = {"i": i, "from": None if ckpt is None else ckpt["until"], "until": until, "pid": os.getpid()}
    (log / f"call-{uuid.uuid4().hex}.json").write_text(json.dumps(call))
    if i == config.get("kill") and ckpt is not None:
        try:
            fd = os.open(log / "killed", os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            pass
        else:
            os.write(fd, str(os.getpid()).encode())
            os.close(fd)
            time.sleep(0.2)
            os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(float(config.get("sleep", 0.2)))  # training takes time: segments of a round overlap
    start = 0.0 if ckpt is None else ckpt["until"]
    seen = curves(config["n"], config["seed"])[i].observed_until(until)
    points = [(c, y) for c, y in zip(seen.compute, seen.loss) if c > start * (1 + 1e-9)]
    return points, json.dumps({"i": i, "until": until}).encode()
