"""The budgeted sweep example: a paused and resumed tiny GPT repeats an uninterrupted one, and ``--quick`` runs
the three methods within the budget."""

from __future__ import annotations

import math
import os
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.fixture(scope="module")
def example():
    pytest.importorskip("torch")
    pytest.importorskip("tokenizers")
    sys.path.insert(0, str(EXAMPLES))  # spawned workers inherit sys.path, so they find the modules too
    import budgeted_sweep

    yield budgeted_sweep
    sys.path.remove(str(EXAMPLES))


def test_a_run_paused_and_resumed_from_its_checkpoints_computes_the_same_curve(example, tmp_path, one_torch_thread):
    size = dict(n_models=1, flops=4e9, chars=80_000, val_chars=3_000, n_evals=6, budget=1.0, vocabs=(256,))
    config = {"n_layers": 1, "d_model": 32, "vocab_size": 256, "seed": 3}
    end = example.planned_compute(config, size)
    whole = example.new_run(config, size)
    whole.finish()
    points, ckpt = [], None
    for until in (0.13 * end, 0.5 * end, end):  # three segments, cut between evaluations
        path = None
        if ckpt is not None:
            path = tmp_path / f"{until:.0f}.pt"
            path.write_bytes(ckpt)
        new, ckpt = example.train_segment(config, None if path is None else str(path), until, size=size)
        assert all(c <= until * (1 + 1e-9) for c, _ in new)
        points += new
    on_grid = {c: y for c, y in points}
    assert len(points) > len(whole.loss)  # each pause added an evaluation where its segment ended
    for c, y in zip(whole.compute, whole.loss):
        assert on_grid[c] == y  # bit for bit: model, optimizer, schedule and data order all resumed


def test_a_checkpoint_that_cannot_be_read_raises_checkpoint_error(example, tmp_path):
    from sh_scaling.budgeted import CheckpointError

    size = dict(n_models=1, flops=4e9, chars=80_000, val_chars=3_000, n_evals=6, budget=1.0, vocabs=(256,))
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError):
        example.train_segment({"n_layers": 1, "d_model": 32, "vocab_size": 256, "seed": 0}, str(bad), 1e9, size=size)


class _Payload:
    """What a pickle can do when it is loaded: call any function."""

    def __reduce__(self):
        return (exec, ("import os; os.environ['SH_SCALING_TEST_PAYLOAD_RAN'] = '1'",))


def test_a_checkpoint_holding_code_is_refused_and_not_run(example, tmp_path, monkeypatch):
    import torch

    from sh_scaling.budgeted import CheckpointError

    monkeypatch.delenv("SH_SCALING_TEST_PAYLOAD_RAN", raising=False)
    size = dict(n_models=1, flops=4e9, chars=80_000, val_chars=3_000, n_evals=6, budget=1.0, vocabs=(256,))
    evil = tmp_path / "evil.pt"
    torch.save({"model": _Payload()}, evil)
    with pytest.raises(CheckpointError):
        example.train_segment({"n_layers": 1, "d_model": 32, "vocab_size": 256, "seed": 0}, str(evil), 1e9, size=size)
    assert "SH_SCALING_TEST_PAYLOAD_RAN" not in os.environ


def test_quick_run_keeps_both_budgets(example, one_torch_thread, capsys):
    res = example.main(["--quick"])
    out = capsys.readouterr().out
    halving, pruner, full = res["results"]
    for r in (halving, pruner):
        assert 0 < r["spent"] <= res["budget"] < full["spent"]
        assert r["best"] >= full["best"] - 1e-12  # the exhaustive sweep trained every candidate to its end
    assert halving["sweep"].ledger_["total"] == halving["spent"]
    assert full["spent"] == pytest.approx(res["exhaustive"]) == pytest.approx(res["planned"])  # every run ends
    assert all(c.final_compute == pytest.approx(p) for c, p in zip(
        full["curves"], [example.planned_compute(c, example.SIZES["quick"]) for c in res["configs"]]))
    for r in res["results"]:
        law = r["law"]
        assert set(law.intervals) == {"a", "gamma"} and math.isfinite(law.params["gamma"])
    assert out.count("(within budget)") == 2 and "OVER BUDGET" not in out
