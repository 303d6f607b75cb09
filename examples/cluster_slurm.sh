#!/bin/bash
# A budgeted halving sweep as a Slurm job array: every array task is one worker (one GPU).
#
#   sbatch examples/cluster_slurm.sh               # 8 workers; edit the settings below first
#   sbatch --array=0-31%16 examples/cluster_slurm.sh   # 32 tasks, at most 16 at once
#
# Each task first runs `sh-scaling start`, which creates the sweep or, when it is already there with the same
# settings, joins it (exit 0; other settings: exit 2 naming them), so no task has to run before the others and a
# requeued task starts the same way. It then runs `sh-scaling work` until the sweep is finished.
#
# Stopping: Slurm sends SIGTERM on preemption and scancel (then SIGKILL after the cluster's KillWait or
# GraceTime, 30 s by default), and --signal below sends it 60 s before the time limit. The worker lets train_fn
# finish its segment for up to --grace seconds, else puts the segment back for another worker, and exits 143
# (--stopped-exit-code); this script then asks Slurm to requeue the task (--requeue allows it), so the array
# keeps its workers until the sweep is done. A task killed outright (a lost node) leaves its segment to the
# other workers, who take it back after 60 s without a heartbeat.
#
#SBATCH --job-name=sh-scaling-sweep
#SBATCH --array=0-7
#SBATCH --requeue
#SBATCH --signal=B:TERM@60
#SBATCH --time=24:00:00
#SBATCH --nodes=1
#SBATCH --ntasks=1
#SBATCH --gres=gpu:1
#SBATCH --cpus-per-task=8
#SBATCH --output=sh-scaling-sweep-%A_%a.out

set -uo pipefail

# ---- settings: every task must see the same ones -----------------------------------------------------------
# The storage all workers reach (PostgreSQL here; a journal file on a shared file system also works for a few
# workers). Keep the password out of this file: put the URL in a file only you can read.
STORAGE_URL="${STORAGE_URL:-$(cat "$HOME/.sh_scaling_storage_url")}"
STUDY="${STUDY:-ladder}"
# A folder every node mounts (NFS, Lustre, GPFS): the checkpoints of paused candidates.
ARTIFACTS="${ARTIFACTS:-/shared/$USER/sh-scaling/ladder-checkpoints}"
# The candidates: `sh-scaling plan --flops 1e20 --budgets 1 --csv candidates.csv` writes them (or any CSV/JSON).
CANDIDATES="${CANDIDATES:-/shared/$USER/sh-scaling/candidates.csv}"
BUDGET="${BUDGET:-2e20}"
# Your train function, importable on every node: train_fn(config, from_checkpoint, until_compute).
TRAIN="${TRAIN:-mypackage.train:train_fn}"
# Seconds train_fn may go on after SIGTERM: less than the 60 s --signal gives before the time limit, and less
# than the cluster's grace before SIGKILL (KillWait; GraceTime on preemption), leaving 10 s to record.
GRACE="${GRACE:-20}"
# --------------------------------------------------------------------------------------------------------------

sh-scaling start --storage "$STORAGE_URL" --study "$STUDY" --candidates "$CANDIDATES" --budget "$BUDGET" \
    --max-compute flops --artifacts "$ARTIFACTS" || exit $?

# The worker runs in the background so that this shell can pass on the SIGTERM that `--signal=B:` sends to it
# alone (on preemption and scancel Slurm signals the worker too; a second SIGTERM changes nothing).
sh-scaling work --storage "$STORAGE_URL" --study "$STUDY" --train "$TRAIN" --artifacts "$ARTIFACTS" \
    --grace "$GRACE" --stopped-exit-code 143 &
worker=$!
trap 'kill -TERM "$worker" 2>/dev/null' TERM
wait "$worker"   # returns early when the trap runs ...
wait "$worker"   # ... so wait again: bash keeps the worker's exit status for this second wait
status=$?

if [ "$status" -eq 143 ]; then
    # Told to stop before the sweep was finished: its segment is done or put back. Requeue this task (on
    # preemption Slurm may already be requeueing it; then this is refused, which is fine).
    scontrol requeue "${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID}" || true
    exit 0
fi
exit "$status"   # 0: the sweep is finished; 2: the worker could not work (its one-line reason is in the log)
