"""The cluster files beside ``examples/cluster_sweep.py`` (a Slurm array script, a Kubernetes manifest) and the
commands they run: ``sh-scaling start`` and the exit status of ``sh-scaling work`` when told to stop.

Every ``sh-scaling`` command line of those files and of the "Run on a cluster" documentation is parsed by the
command line's own parser; the manifest's kinds, volumes and grace are read from the parsed YAML; the Slurm
script is checked by ``bash -n`` and run once for real (its ``sh-scaling`` commands on a journal file, only
``scontrol`` stands in for Slurm's) to see that a SIGTERM reaches the worker and the task is requeued.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
import yaml
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState

import _workers_train
from sh_scaling.budgeted import PREEMPT_GRACE_S, segments
from sh_scaling.cli import build_parser, main
from sh_scaling.keys import BUDGETED_PLAN_KEY

optuna.logging.set_verbosity(optuna.logging.ERROR)

REPO = Path(__file__).resolve().parents[1]
TESTS = Path(__file__).resolve().parent
SLURM = REPO / "examples" / "cluster_slurm.sh"
K8S = REPO / "examples" / "cluster_k8s.yaml"
DEADLINE_S = 120
N, SEED = 8, 7


def _parses(argv: list[str]) -> object:
    """The namespace our parser makes of ``argv`` (``sh-scaling`` left out); a parse error fails the test."""
    try:
        return build_parser().parse_args(argv)
    except SystemExit as exc:  # argparse's way of refusing
        pytest.fail(f"sh-scaling {shlex.join(argv)} does not parse (exit {exc.code})")


# --------------------------------------------------------------------------------------------- Kubernetes
def _manifest() -> list[dict]:
    return [doc for doc in yaml.safe_load_all(K8S.read_text()) if doc]


def _by(kind: str, name: str) -> dict:
    return next(d for d in _manifest() if d["kind"] == kind and d["metadata"]["name"] == name)


def _k8s_commands() -> list[list[str]]:
    pods = [d["spec"]["template"]["spec"] for d in _manifest() if d["kind"] == "Job"]
    containers = [c for p in pods for c in p.get("initContainers", []) + p["containers"]]
    return [c["command"] for c in containers if c["command"][0] == "sh-scaling"]


def test_the_manifest_holds_postgresql_a_shared_volume_a_start_job_and_an_indexed_worker_job():
    kinds = sorted((d["kind"], d["metadata"]["name"]) for d in _manifest())
    assert kinds == [("Job", "sh-scaling-start"), ("Job", "sh-scaling-workers"),
                     ("PersistentVolumeClaim", "sh-scaling-checkpoints"), ("Service", "sh-scaling-db"),
                     ("StatefulSet", "sh-scaling-db")]
    db = _by("StatefulSet", "sh-scaling-db")
    assert db["spec"]["volumeClaimTemplates"][0]["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert _by("Service", "sh-scaling-db")["spec"]["ports"][0]["port"] == 5432
    assert _by("PersistentVolumeClaim", "sh-scaling-checkpoints")["spec"]["accessModes"] == ["ReadWriteMany"]
    workers = _by("Job", "sh-scaling-workers")["spec"]
    assert workers["completionMode"] == "Indexed" and workers["parallelism"] == workers["completions"] > 1
    pod = workers["template"]["spec"]
    assert pod["restartPolicy"] == "Never"  # podFailurePolicy requires it


def test_every_sh_scaling_command_of_the_manifest_parses_and_shares_storage_study_and_checkpoints():
    commands = _k8s_commands()
    assert [c[1] for c in commands] == ["start", "start", "work"]
    parsed = [_parses(c[1:]) for c in commands]
    assert len({(a.storage, a.study, a.artifacts) for a in parsed}) == 1
    start_job, init = parsed[0], parsed[1]
    assert vars(start_job) == vars(init)  # the same settings, so either may create the sweep and the other joins
    for doc in (d for d in _manifest() if d["kind"] == "Job"):
        pod = doc["spec"]["template"]["spec"]
        claims = {v["name"]: v for v in pod["volumes"]}
        for c in pod.get("initContainers", []) + pod["containers"]:
            mounts = {m["mountPath"]: claims[m["name"]] for m in c["volumeMounts"]}
            assert mounts[parsed[0].artifacts]["persistentVolumeClaim"]["claimName"] == "sh-scaling-checkpoints"


def test_a_stopped_worker_pod_has_its_grace_and_is_replaced_without_counting_as_a_failure():
    workers = _by("Job", "sh-scaling-workers")["spec"]
    pod = workers["template"]["spec"]
    work = _parses(next(c for c in _k8s_commands() if c[1] == "work")[1:])
    assert work.grace is not None and work.grace <= PREEMPT_GRACE_S
    # SIGKILL comes terminationGracePeriodSeconds after SIGTERM: train_fn's grace plus time to record.
    assert pod["terminationGracePeriodSeconds"] >= work.grace + 10
    rules = workers["podFailurePolicy"]["rules"]
    ignored_codes = [r["onExitCodes"]["values"] for r in rules if r["action"] == "Ignore" and "onExitCodes" in r]
    assert ignored_codes == [[work.stopped_exit_code]] and work.stopped_exit_code != 0
    assert any(r["action"] == "Ignore" and {"type": "DisruptionTarget"} in r.get("onPodConditions", [])
               for r in rules)
    assert workers["backoffLimit"] >= 1


# --------------------------------------------------------------------------------------------------- Slurm
def _slurm_commands() -> list[list[str]]:
    """The script's ``sh-scaling`` command lines (continuations joined), with its settings' variables filled."""
    text = SLURM.read_text().replace("\\\n", " ")
    values = {"STORAGE_URL": "postgresql://u@db/s", "STUDY": "ladder", "ARTIFACTS": "/shared/ckpt",
              "CANDIDATES": "/shared/c.csv", "BUDGET": "2e18", "TRAIN": "mypackage.train:train_fn", "GRACE": "20"}
    lines = [line.strip() for line in text.splitlines() if line.strip().startswith("sh-scaling ")]
    commands = []
    for line in lines:
        line = re.split(r"\s(?:\|\||&)(?:\s|$)", line)[0]  # the command alone: no `|| exit`, no `&`
        for k, v in values.items():
            line = line.replace(f'"${k}"', v)
        assert "$" not in line, line
        commands.append(shlex.split(line))
    return commands


def test_the_slurm_script_is_valid_bash_and_asks_for_an_array_requeue_and_an_early_sigterm():
    subprocess.run(["bash", "-n", str(SLURM)], check=True)
    directives = dict(re.findall(r"^#SBATCH\s+--([\w-]+)(?:=(\S+))?", SLURM.read_text(), re.M))
    assert "array" in directives and "requeue" in directives
    when = re.fullmatch(r"B:TERM@(\d+)", directives["signal"])
    assert when, directives["signal"]
    work = _parses(next(c for c in _slurm_commands() if c[1] == "work")[1:])
    assert int(when.group(1)) >= work.grace + 10  # SIGTERM early enough for train_fn's grace and the records
    assert f'"$status" -eq {work.stopped_exit_code}' in SLURM.read_text()


def test_every_sh_scaling_command_of_the_slurm_script_parses():
    commands = _slurm_commands()
    assert [c[1] for c in commands] == ["start", "work"]
    start, work = (_parses(c[1:]) for c in commands)
    assert (start.storage, start.study, start.artifacts) == (work.storage, work.study, work.artifacts)


def _candidates(folder: Path, sleep: float) -> Path:
    curves = _workers_train.curves(N, SEED)
    rows = [{"n": N, "seed": SEED, "i": i, "sleep": sleep, "flops": c.final_compute} for i, c in enumerate(curves)]
    path = folder / "candidates.json"
    path.write_text(json.dumps(rows))
    return path


def test_the_slurm_script_passes_sigterm_to_its_worker_and_requeues_the_task(tmp_path):
    """The script itself, run as Slurm would run it, with a real sweep on a journal file."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    scontrol = bin_dir / "scontrol"  # Slurm's command is not here: this one records how it was called
    scontrol.write_text(f'#!/bin/bash\necho "$@" > {tmp_path}/scontrol.args\n')
    scontrol.chmod(scontrol.stat().st_mode | stat.S_IEXEC)
    log = tmp_path / "calls"
    log.mkdir()
    curves = _workers_train.curves(N, SEED)
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "PYTHONPATH": str(TESTS), "SH_SCALING_TEST_WORKERS_LOG": str(log),
           "STORAGE_URL": str(tmp_path / "sweep.journal"), "STUDY": "slurm", "ARTIFACTS": str(tmp_path / "ckpt"),
           "CANDIDATES": str(_candidates(tmp_path, sleep=30.0)), "TRAIN": "_workers_train:train", "GRACE": "0.5",
           "BUDGET": repr(0.2 * sum(c.final_compute for c in curves)),
           "SLURM_ARRAY_JOB_ID": "4242", "SLURM_ARRAY_TASK_ID": "3"}
    with open(tmp_path / "out.txt", "w") as out:
        task = subprocess.Popen(["bash", str(SLURM)], env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + DEADLINE_S
        while not list(log.glob("call-*.json")):  # the worker trains a segment (for 30 s unless stopped)
            assert task.poll() is None, (tmp_path / "out.txt").read_text()
            assert time.monotonic() < deadline, (tmp_path / "out.txt").read_text()
            time.sleep(0.1)
        task.send_signal(signal.SIGTERM)  # to the batch shell only, as --signal=B:TERM does
        code = task.wait(DEADLINE_S)
    finally:
        if task.poll() is None:
            task.kill()
    out = (tmp_path / "out.txt").read_text()
    assert code == 0, out
    assert "stopped by SIGTERM" in out
    assert (tmp_path / "scontrol.args").read_text().split() == ["requeue", "4242_3"]
    study = optuna.load_study(study_name="slurm", storage=optuna.storages.JournalStorage(
        JournalFileBackend(str(tmp_path / "sweep.journal"))))
    trials = study.get_trials()
    assert trials and not [t for t in trials if t.state == TrialState.RUNNING]
    stopped = [s for t in trials for s in segments(t) if s.get("interruptions")]
    assert len(stopped) == 1 and stopped[0]["status"] == "reserved"  # put back, for the requeued task


# ---------------------------------------------------------------------------------------- sh-scaling start
def test_start_creates_the_sweep_from_a_plan_csv_and_a_second_start_joins(tmp_path, capsys):
    plan = tmp_path / "plan.csv"
    assert main(["plan", "--flops", "1e18", "--budgets", "1", "--csv", str(plan)]) == 0
    journal = tmp_path / "sweep.journal"
    argv = ["start", "--storage", str(journal), "--study", "ladder", "--candidates", str(plan), "--budget", "2e18",
            "--max-compute", "flops"]
    assert main(argv) == 0 and main(argv) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert out.count("sweep 'ladder' ready") == 2
    study = optuna.load_study(study_name="ladder",
                              storage=optuna.storages.JournalStorage(JournalFileBackend(str(journal))))
    trials = study.get_trials()
    rows = len(plan.read_text().strip().splitlines()) - 1
    assert len(trials) == rows and all(t.state == TrialState.WAITING for t in trials)
    plan_record = study._storage.get_study_system_attrs(study._study_id)[BUDGETED_PLAN_KEY]
    assert plan_record["mode"] == "workers" and plan_record["budget"] == 2e18
    # Each candidate's planned end is its flops column; an empty cell (budget_hours) is stored as None.
    first = trials[0].system_attrs["sh_scaling:budgeted:candidate"]
    assert first["planned"] == first["config"]["flops"] and first["config"]["budget_hours"] is None
    assert (tmp_path / "sweep.journal.checkpoints").is_dir()


def test_start_refuses_other_settings_and_names_bad_input(tmp_path, capsys):
    journal = tmp_path / "sweep.journal"
    candidates = _candidates(tmp_path, sleep=0.0)
    base = ["start", "--storage", str(journal), "--study", "s", "--candidates", str(candidates),
            "--max-compute", "flops", "--artifacts", str(tmp_path / "ckpt")]
    assert main([*base, "--budget", "1e3"]) == 0
    assert main([*base, "--budget", "2e3"]) == 2
    assert "budget" in capsys.readouterr().err
    assert main([*base[:-4], "--max-compute", "flop", "--budget", "1e3"]) == 2
    assert "--max-compute 'flop' is neither a number nor a field" in capsys.readouterr().err
    assert main([*base[:6], str(tmp_path / "none.csv"), *base[7:], "--budget", "1e3"]) == 2
    assert "no such file" in capsys.readouterr().err
    (tmp_path / "bad.json").write_text('{"a": 1}')
    assert main([*base[:6], str(tmp_path / "bad.json"), *base[7:], "--budget", "1e3"]) == 2
    assert "expected a JSON list of objects" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # argparse: a budget that is not positive
        build_parser().parse_args([*base, "--budget", "0"])


def _stop_self(config, from_checkpoint, until):
    """Asks its own process to stop, then trains as usual (within the grace: the segment is recorded)."""
    os.kill(os.getpid(), signal.SIGTERM)
    return _workers_train.train(config, from_checkpoint, until)


def test_a_worker_told_to_stop_exits_with_the_stopped_exit_code(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SH_SCALING_TEST_WORKERS_LOG", str(tmp_path))
    journal = tmp_path / "sweep.journal"
    assert main(["start", "--storage", str(journal), "--study", "s", "--candidates",
                 str(_candidates(tmp_path, sleep=0.0)), "--budget", "1e3", "--max-compute", "flops"]) == 0
    work = ["work", "--storage", str(journal), "--study", "s", "--train", "test_cluster_files:_stop_self"]
    assert main([*work, "--stopped-exit-code", "143"]) == 143
    assert "stopped by SIGTERM" in capsys.readouterr().err
    assert main(work) == 0  # the default, for Slurm's --requeue


# ------------------------------------------------------------------------------------------- documentation
def test_every_documented_sh_scaling_command_line_parses():
    """The README's and the budgeted guide's code blocks, run or not (a cluster's cannot run here)."""
    from test_doc_blocks import parse_blocks

    lines = [line for page in (REPO / "README.md", REPO / "docs" / "guides" / "budgeted.md")
             for block in parse_blocks(page) if block.lang == "bash"
             for line in block.code.splitlines() if line.startswith("sh-scaling ")]
    commands = [shlex.split(line.split("#")[0].replace('"$STORAGE_URL"', "postgresql://u@db/s")) for line in lines]
    assert {c[1] for c in commands} >= {"plan", "start", "work"}
    for c in commands:
        _parses(c[1:])
    # The README documents the flag the cluster files use.
    assert any(c[1] == "work" and "--stopped-exit-code" in c for c in commands)


# ------------------------------------------------------------------------------ many tasks, a new database
POSTGRES_URL = os.environ.get("SH_SCALING_TEST_POSTGRES_URL")


_TOGETHER = None


def _ready(barrier) -> None:
    global _TOGETHER
    _TOGETHER = barrier
    import sh_scaling.budgeted  # noqa: F401 - imported before the barrier, so that all start together


def _start_together(argv: list[str]) -> int:
    """``sh-scaling start`` in a spawned process, once every process of the pool is ready."""
    from sh_scaling.cli import main as cli

    _TOGETHER.wait(DEADLINE_S)
    return cli(argv)


@pytest.mark.postgres
def test_array_tasks_that_start_together_on_a_new_database_all_join_one_sweep(tmp_path):
    """The first users of a new database race to create Optuna's tables; every task must still start."""
    if not POSTGRES_URL:
        pytest.skip("SH_SCALING_TEST_POSTGRES_URL is not set (.ci/run starts PostgreSQL and sets it)")
    import multiprocessing
    import uuid

    import sqlalchemy

    schema = f"sh_scaling_{uuid.uuid4().hex[:10]}"  # a new, empty schema: as a new database, without CREATEDB
    engine = sqlalchemy.create_engine(POSTGRES_URL)
    with engine.begin() as conn:
        conn.execute(sqlalchemy.text(f'CREATE SCHEMA "{schema}"'))
    url = f"{POSTGRES_URL}{'&' if '?' in POSTGRES_URL else '?'}options=-csearch_path%3D{schema}"
    argv = ["start", "--storage", url, "--study", "s", "--candidates", str(_candidates(tmp_path, sleep=0.0)),
            "--budget", "1e3", "--max-compute", "flops", "--artifacts", str(tmp_path / "ckpt")]
    try:
        ctx = multiprocessing.get_context("spawn")
        barrier = ctx.Barrier(4)
        with ctx.Pool(4, initializer=_ready, initargs=(barrier,)) as pool:
            codes = pool.map(_start_together, [argv] * 4, chunksize=1)
        assert codes == [0] * 4
        study = optuna.load_study(study_name="s", storage=url)
        assert len(study.get_trials()) == N
    finally:
        with engine.begin() as conn:
            conn.execute(sqlalchemy.text(f'DROP SCHEMA "{schema}" CASCADE'))
        engine.dispose()
