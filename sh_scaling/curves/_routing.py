"""The recorded learning curves of Clark et al. (2022), *Unified Scaling Laws for Routed Language Models*.

223 training runs of dense and routed (mixture-of-experts) language models, 15M to 1.3B dense parameters,
evaluated every 10k steps up to 250k steps. Data: GitHub ``google-deepmind/scaling_laws_for_routing``,
``data/curves.csv.gz``, license CC-BY 4.0 (cite Clark et al., ICML 2022, arXiv:2202.01169). The file is not
shipped with this package: :func:`load_routing` downloads it once, checks its sha256 and caches it.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import warnings
import zlib
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from sh_scaling.curves._curve import Curve, CurveSet, CurveWarning
from sh_scaling.curves._download import cache_root, download, remove_abandoned_parts

__all__ = [
    "load_routing",
    "fetch_routing",
    "ROUTING_URL",
    "ROUTING_SHA256",
    "ROUTER_TYPES",
]

#: The file at a fixed commit of the public repository, so the checksum below never goes stale.
ROUTING_URL = (
    "https://raw.githubusercontent.com/google-deepmind/scaling_laws_for_routing/"
    "42da0c392b127df2c01fa7b705f72396050d05e5/data/curves.csv.gz"
)
#: sha256 of that file (336,608 bytes).
ROUTING_SHA256 = "c03e7531add85e594f368d33bac4a0220280be858a7ed12d147cf73af6a3819f"
#: Router types in the data (Clark et al. 2022, Section 2): a dense baseline and three routing methods.
ROUTER_TYPES = ("Dense", "Hash", "S-Base", "RL-R")

#: Name of the file in the cache directory.
_CACHE_NAME = "clark2022_routing_curves.csv.gz"
#: Nine runs record their final evaluation on two rows, some loss columns at step 248k and the others at 249k.
_SPLIT_FINAL_STEPS = (248_000, 249_000)
#: Training FLOPs per forward FLOP: the backward pass costs about twice the forward pass (Kaplan et al. 2020,
#: Section 2.1; the same 6N-per-token rule as Hoffmann et al. 2022).
_TRAINING_PER_FORWARD = 3.0
_FLOPS_KINDS = ("training", "forward")
_PER_RUN_EXCLUDED = ("step",)
#: How to give a local copy, in the library's words and the command line's (its errors reach both users).
_PATH_OPTION = "path=... (--routing-path on the command line)"
_HOW_TO_MOVE_THE_CACHE = (
    "choose another with cache_dir=... or $SH_SCALING_CACHE, or give a local copy with " + _PATH_OPTION
)


def load_routing(
    path: str | os.PathLike[str] | None = None,
    *,
    loss: str = "loss_validation",
    flops: str = "training",
    cache_dir: str | os.PathLike[str] | None = None,
    router_types: Iterable[str] | None = None,
    url: str = ROUTING_URL,
    verify: bool = True,
    timeout: float = 60.0,
) -> CurveSet:
    """Load the 223 learning curves of Clark et al. (2022) as a :class:`CurveSet`.

    **Where the file comes from.** With ``path`` given, that local copy is read. Otherwise the file is taken
    from the cache directory (``cache_dir``, else ``$SH_SCALING_CACHE``, else ``$XDG_CACHE_HOME/sh_scaling``,
    else ``~/.cache/sh_scaling``) and, on first use, downloaded from ``url`` (the public GitHub file at a fixed
    commit) with :mod:`urllib`. A download goes to a temporary ``.part`` file in the cache directory and is
    renamed into place only once it is complete and verified, so the cache never holds half a file; the
    download holds a lock on its ``.part`` file, and every call removes the ``.part`` files whose lock is free
    (left by a download that was killed), so none outlives the next call. With ``verify=True`` the sha256 of
    the file (local, cached or downloaded) must equal :data:`ROUTING_SHA256`; every file must also be a
    complete gzip stream. A cached file that fails either check is removed (with a warning) and downloaded
    again; a local ``path`` or a download that fails raises ``ValueError`` naming the file.

    **Compute.** ``flops="training"`` (default): compute of an evaluation = ``3 * flops_per_step * step``, the
    training FLOPs (forward plus a backward pass costing twice the forward). ``flops="forward"``:
    ``flops_per_step * step``, the forward FLOPs recorded in the file. The factor is the same for every
    curve, so it changes no ranking, only the unit of fitted laws.

    **Cleaning (documented quirks of the file).**

    * Nine runs (hyper_id 82, 83, 84, 112, 128, 140, 165, 166, 191) have rows at both 248k and 249k steps;
      in each, every loss column has its final value on exactly one of the two rows. The two rows are merged
      into one evaluation at step 249k taking, for the chosen column, the 249k value when present and the
      248k value otherwise. (hyper_id 112 has only the 248k row and keeps it; hyper_id 17 ends at 250k.)
    * Runs that skip a 10k evaluation keep their remaining points (nothing is interpolated).
    * Missing (NaN) values of the chosen loss column are dropped; one :class:`CurveWarning` reports how many
      and in how many curves (after the merge, ``loss_validation`` has none).
    * Step 0 (the untrained model, loss ~ 10.85) has zero compute and is dropped by
      :meth:`Curve.from_arrays`.

    **Metadata** of each curve (``curve.meta``): every per-run column of the file (``router_type``,
    ``num_experts``, ``k``, ``routing_frequency``, ``flop_increase``, ``d_model``, ``num_blocks``,
    ``num_heads``, ``kqv_size``, ``seed``, ``total_parameter_count``, ``dense_parameter_count`` (parameters
    used per token), ``flops_per_step`` (forward FLOPs), ``model_size_label``) plus ``hyper_id``,
    ``n_params`` (= ``dense_parameter_count``), ``loss_column`` and ``flops`` (the compute convention).

    Args:
        path: A local copy of ``curves.csv.gz``; ``None`` uses the cache / download.
        loss: Loss column to use: ``"loss_validation"`` (default), ``"loss_c4"``, ``"loss_curation_corpus"``,
            ``"loss_lambada"``, ``"loss_pile"`` or ``"loss_wikitext103"`` (the ``"loss_"`` prefix may be
            omitted).
        flops: ``"training"`` (3x forward, default) or ``"forward"``.
        cache_dir: Cache directory (see above).
        router_types: Keep only these router types (from :data:`ROUTER_TYPES`); ``None`` keeps all.
        url: Where to download from (``file://`` URLs work too, e.g. for a mirror).
        verify: Check the sha256 (default ``True``; set ``False`` for a deliberately modified local copy).
        timeout: Seconds before a stalled download is abandoned.

    Returns:
        A :class:`CurveSet` ordered by ``hyper_id``, curve ids ``"0"`` .. ``"222"``.

    Raises:
        ValueError: unknown ``loss``, ``flops`` or router type (the message lists the valid ones); a file
            that fails the checksum or is not a complete gzip CSV (the message names the file).
        OSError: the download failed (the message names the URL and how to provide the file by hand); the
            cache directory is a file (``NotADirectoryError``) or cannot be written (``PermissionError``), the
            message naming it and how to choose another.

    Example:
        >>> curves = load_routing(router_types=["Dense"])  # doctest: +SKIP
        >>> len(curves), curves[0].meta["model_size_label"]  # doctest: +SKIP
        (13, '370M')
    """
    if flops not in _FLOPS_KINDS:
        raise ValueError(f"flops={flops!r} is not one of {list(_FLOPS_KINDS)}")
    keep_types = _check_router_types(router_types)
    if path is None:
        file = fetch_routing(cache_dir=cache_dir, url=url, verify=verify, timeout=timeout)
    else:
        file = Path(path)
        if not file.is_file():
            raise ValueError(f"routing curves path={str(path)!r} (--routing-path) is not a file")
        if verify:
            _check_sha256(
                file,
                hint="use the original file, or leave out path= (--routing-path) to download it; a deliberately "
                "modified copy is read from Python with load_routing(path, verify=False)",
            )
    frame = _read_gzip_csv(file)
    return _curves_from_frame(frame, loss=loss, flops=flops, keep_types=keep_types, source=file)


def fetch_routing(
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    url: str = ROUTING_URL,
    verify: bool = True,
    timeout: float = 60.0,
) -> Path:
    """Path of a verified local copy of the routing curves, downloading it into the cache on first use.

    See :func:`load_routing` for the cache directory, the checks and the errors.
    """
    directory = cache_root(cache_dir)
    target = directory / _CACHE_NAME
    if directory.exists() and not directory.is_dir():
        raise NotADirectoryError(
            f"the routing curves cache directory {directory} is a file: {_HOW_TO_MOVE_THE_CACHE}"
        )
    if target.exists() and not target.is_file():
        raise IsADirectoryError(f"{target} should be the cached routing curves but is not a file; remove it")
    remove_abandoned_parts(target)
    if target.is_file():
        try:
            if verify:
                _check_sha256(target, hint="the cached copy is removed and downloaded again")
            _check_gzip(target)
            return target
        except ValueError as err:
            warnings.warn(f"removing corrupt cached file: {err}", CurveWarning, stacklevel=2)
            try:
                target.unlink(missing_ok=True)
            except OSError as unlink_err:
                raise _unwritable(directory, unlink_err) from None
    _download(url, target, sha256=ROUTING_SHA256 if verify else None, timeout=timeout)
    return target


def _unwritable(directory: Path, err: OSError) -> OSError:
    """``err`` (same class: ``PermissionError``, ``NotADirectoryError``...) with a message saying what to do."""
    reason = err.strerror or str(err)
    return type(err)(
        f"cannot write to the routing curves cache directory {directory} ({reason}): {_HOW_TO_MOVE_THE_CACHE}"
    )


def _download(url: str, target: Path, *, sha256: str | None, timeout: float) -> None:
    download(
        url, target, sha256=sha256, timeout=timeout, what="the routing curves",
        by_hand=f"Download the file by hand and pass {_PATH_OPTION}, or place it at {target}",
        unwritable=_unwritable, check=lambda tmp: _check_gzip(tmp, label=url),
    )


def _check_sha256(file: Path, *, hint: str) -> None:
    digest = hashlib.sha256(file.read_bytes()).hexdigest()
    if digest != ROUTING_SHA256:
        raise ValueError(
            f"{file}: sha256 {digest} does not match the routing curves ({ROUTING_SHA256}): the file is "
            f"truncated, corrupt or a different file; {hint}"
        )


def _check_gzip(file: Path, *, label: str | None = None) -> None:
    """Decompress the whole file once: a truncated or damaged gzip stream fails here, not halfway through parsing."""
    try:
        with gzip.open(file, "rb") as stream:
            while stream.read(1 << 20):
                pass
    except (OSError, EOFError, zlib.error) as err:
        raise ValueError(f"{label or file}: not a complete gzip file ({err})") from None


def _read_gzip_csv(file: Path):
    import pandas as pd

    _check_gzip(file)
    try:
        return pd.read_csv(file, compression="gzip")
    except (ValueError, UnicodeDecodeError) as err:
        raise ValueError(f"{file}: not a readable CSV ({err})") from None


def _check_router_types(router_types: Iterable[str] | None) -> set[str] | None:
    if router_types is None:
        return None
    if isinstance(router_types, str):
        router_types = [router_types]
    wanted = set(router_types)
    unknown = sorted(wanted - set(ROUTER_TYPES))
    if unknown:
        raise ValueError(f"router_types: unknown {unknown}; valid router types are {list(ROUTER_TYPES)}")
    return wanted


def _resolve_loss_column(loss: str, columns: Iterable[str]) -> str:
    columns = list(columns)
    valid = [c for c in columns if c.startswith("loss_")]
    if loss in valid:
        return loss
    if f"loss_{loss}" in valid:
        return f"loss_{loss}"
    raise ValueError(f"loss={loss!r} is not a loss column of the routing data; valid columns are {valid}")


def _merge_split_final_evaluation(frame, loss_col: str):
    """One row per evaluation: fold the 248k row of a run into its 249k row (see :func:`load_routing`)."""
    early, late = _SPLIT_FINAL_STEPS
    runs_early = set(frame.loc[frame["step"] == early, "hyper_id"])
    runs_late = set(frame.loc[frame["step"] == late, "hyper_id"])
    split = runs_early & runs_late
    if not split:
        return frame
    in_split = frame["hyper_id"].isin(split)
    early_rows = frame[in_split & (frame["step"] == early)].set_index("hyper_id")[loss_col]
    late_mask = in_split & (frame["step"] == late)
    late_values = frame.loc[late_mask, loss_col].to_numpy()
    fill = early_rows.reindex(frame.loc[late_mask, "hyper_id"]).to_numpy()
    frame = frame.copy()
    frame.loc[late_mask, loss_col] = np.where(np.isnan(late_values), fill, late_values)
    return frame[~(in_split & (frame["step"] == early))]


def _curves_from_frame(frame, *, loss: str, flops: str, keep_types: set[str] | None, source: Path) -> CurveSet:
    required = ["hyper_id", "step", "flops_per_step", "router_type"]
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise ValueError(f"{source}: missing columns {missing}; found {list(frame.columns)}")
    loss_col = _resolve_loss_column(loss, frame.columns)
    frame = frame.sort_values(["hyper_id", "step"], kind="stable")
    frame = _merge_split_final_evaluation(frame, loss_col)
    if keep_types is not None:
        frame = frame[frame["router_type"].isin(keep_types)]

    nan = frame[loss_col].isna()
    if nan.any():
        warnings.warn(
            f"routing curves: dropped {int(nan.sum())} missing {loss_col} value(s) in "
            f"{frame.loc[nan, 'hyper_id'].nunique()} curve(s)",
            CurveWarning,
            stacklevel=3,
        )
        frame = frame[~nan]

    factor = _TRAINING_PER_FORWARD if flops == "training" else 1.0
    per_run = [c for c in frame.columns if not c.startswith("loss_") and c not in _PER_RUN_EXCLUDED]
    curves = []
    for hyper_id, run in frame.groupby("hyper_id", sort=True):
        first = run.iloc[0]
        meta = {c: _python_scalar(first[c]) for c in per_run}
        meta.update(
            hyper_id=int(hyper_id),
            n_params=float(first["dense_parameter_count"]) if "dense_parameter_count" in run else None,
            loss_column=loss_col,
            flops=flops,
        )
        compute = factor * run["flops_per_step"].to_numpy(float) * run["step"].to_numpy(float)
        curves.append(Curve.from_arrays(int(hyper_id), compute, run[loss_col].to_numpy(float), meta))
    return CurveSet(curves, name=f"routing:{loss_col}")


def _python_scalar(value):
    """numpy scalars to plain Python values, so metadata compares and serialises simply."""
    return value.item() if isinstance(value, np.generic) else value
