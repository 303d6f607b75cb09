"""The runnable examples: the tiny LM sweep (at a toy size) and the multi-process sweep."""

from __future__ import annotations

import math
import multiprocessing as mp
import os
import signal
import sys
import time
from pathlib import Path

import optuna
import pytest

from sh_scaling.keys import SCHEDULE_KEY
from sh_scaling.schedules import schedule_from_dict

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.fixture(scope="module")
def examples_path():
    sys.path.insert(0, str(EXAMPLES))  # spawned workers inherit sys.path, so they find the module too
    yield
    sys.path.remove(str(EXAMPLES))


def test_distributed_sweep_accounts_for_every_trial(examples_path, tmp_path, capsys):
    import distributed_sweep

    journal = tmp_path / "sweep.journal"
    rc = distributed_sweep.main(["--workers", "2", "--trials", "10", "--storage", str(journal),
                                 "--study-name", "t", "--delay", "0"])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "every trial accounted for" in out
    study = optuna.load_study(study_name="t", storage=distributed_sweep.storage_from(str(journal)))
    trials = study.get_trials()
    assert len(trials) == 10
    assert len({t.user_attrs["worker_pid"] for t in trials}) == 2  # both processes worked on the one study
    assert all(t.state in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED) for t in trials)
    # The accounting catches a trial left running (as a killed worker would leave it without heartbeats).
    study.ask()
    assert distributed_sweep.account(study, 10) == ["11 trials in the study, 10 expected", "trial 10 is RUNNING"]


def test_sigterm_fails_the_running_trial(examples_path, tmp_path):
    import distributed_sweep

    journal = str(tmp_path / "sweep.journal")
    study = optuna.create_study(study_name="s", storage=distributed_sweep.storage_from(journal))
    proc = mp.get_context("spawn").Process(target=distributed_sweep.worker, args=(journal, "s", 100, 0, 0.1))
    proc.start()
    deadline = time.time() + 60
    while not study.get_trials(deepcopy=False) and time.time() < deadline:  # wait until a trial runs
        time.sleep(0.2)
    time.sleep(0.5)
    os.kill(proc.pid, signal.SIGTERM)
    # The signal can land in the worker's first pruning decision, which imports the surrogates' stack: on a
    # loaded 2-core machine its exit has taken over 30 s.
    proc.join(180)
    if proc.exitcode is None:
        proc.kill()
    assert proc.exitcode == 130
    states = [t.state for t in study.get_trials()]
    assert optuna.trial.TrialState.RUNNING not in states
    assert states[-1] == optuna.trial.TrialState.FAIL


def test_distributed_sweep_rejects_bad_arguments(examples_path):
    import distributed_sweep

    with pytest.raises(SystemExit):
        distributed_sweep.main(["--workers", "0"])
    with pytest.raises(SystemExit):
        distributed_sweep.main(["--workers", "4", "--trials", "2"])


@pytest.fixture(scope="module")
def tiny(examples_path):
    pytest.importorskip("torch")
    pytest.importorskip("tokenizers")
    import tiny_lm_sweep

    return tiny_lm_sweep


def test_bits_per_byte_counts_the_same_text_for_every_tokenizer(tiny):
    corpus = tiny.Corpus.build(120_000, 4_000)
    assert len(corpus.val_text) == 4_000 and corpus.train_docs
    assert corpus.val_text not in "\n\n".join(corpus.train_docs)  # held out
    for vocab in (256, 1024):
        tok = tiny.train_tokenizer(corpus.train_docs, vocab)
        assert tok.get_vocab_size() <= vocab
        enc = tiny.encode(corpus, tok)
        # The targets are every token of the windows but the first: their bytes are that text's UTF-8 bytes.
        ids = enc.val_windows[0, :1].tolist() + enc.val_windows[:, 1:].flatten().tolist()
        first = tok.decode(ids[:1]).encode()
        assert enc.val_bytes == len(tok.decode(ids).encode()) - len(first)
        assert tok.decode(ids) == corpus.val_text[: len(tok.decode(ids))]  # the same text, whatever the vocabulary
        if vocab == 256:
            assert enc.val_bytes == enc.val_windows[:, 1:].numel()  # bytes only: one byte per token


def test_untrained_model_scores_about_log2_vocab_bits_per_token(tiny):
    import torch

    corpus = tiny.Corpus.build(120_000, 4_000)
    enc = tiny.encode(corpus, tiny.train_tokenizer(corpus.train_docs, 256))
    run = tiny.Run(tiny.model_config({"n_layers": 1, "d_model": 32, "vocab_size": 256}), enc, 1e9, 4, seed=0)
    with torch.no_grad():
        run.model.tok.weight.zero_()  # uniform predictions
    assert run.bits_per_byte() == pytest.approx(8.0, rel=1e-6)  # log2(256) bits per byte-token


def test_tiny_sweep_end_to_end(tiny, tmp_path):
    import torch

    threads = torch.get_num_threads()
    try:
        size = dict(n_models=4, flops=4e9, chars=80_000, val_chars=3_000, n_evals=6)
        torch.set_num_threads(1)
        res = tiny.run_sweep(size, seed=0, log=lambda *a: None)
    finally:
        torch.set_num_threads(threads)
    assert res["n_models"] == 4 and res["n_complete"] + res["n_pruned"] == 4
    assert 0 < res["spent"] <= res["exhaustive"] * (1 + 1e-9)
    assert res["exhaustive"] == pytest.approx(4 * 4e9, rel=0.2)  # every model trained on its budget
    assert res["best_full"] <= res["best_pruned"] + 1e-12
    # Training is deterministic: what the pruned sweep saw is a prefix of the exhaustive curve.
    for seen, full in zip(res["pruned_curves"], res["full_curves"]):
        assert list(full.loss[: len(seen)]) == pytest.approx(list(seen.loss))
    for name in ("pruned", "exhaustive"):
        law = res["laws"][name][2]
        assert set(law.intervals) == {"a", "gamma"} and math.isfinite(law.params["gamma"])
    # Each trial's stored schedule is its model's own: the LambdaLR's warm-up and cosine over its planned steps.
    for t in res["study"].trials:
        run = res["runs"][t.number]
        stored = schedule_from_dict(t.system_attrs[SCHEDULE_KEY])
        assert stored.kind in ("cosine", "table")
        planned = [tiny.LR * run.sched.lr_lambdas[0](k) for k in range(run.total_steps + 1)]
        derived = [float(stored(k / run.total_steps)) for k in range(run.total_steps + 1)]
        assert derived == pytest.approx(planned, rel=1e-6)
    text = tiny.summary(res)
    assert "models proposed: 4" in text and "saved" in text
    tiny.plot(res, tmp_path / "sweep.png")
    assert (tmp_path / "sweep.png").stat().st_size > 10_000
