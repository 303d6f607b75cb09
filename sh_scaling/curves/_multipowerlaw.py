"""The loss curves of Luo et al. (ICLR 2025), *A Multi-Power Law for Loss Curve Prediction Across Learning Rate
Schedules*: 27 runs, three model sizes under nine learning-rate schedules each.

GPT-style models of 25M, 100M and 400M (nominal) parameters, each trained with a constant, cosine, WSD
(exponential or linear decay) or two-stage schedule, peak 3e-4 after a 2,160-step linear warm-up. Training loss
every 128 steps after warm-up, with the learning rate in effect. Data: GitHub ``thu-yao-01-luo/MultiPowerLaw``
at a pinned commit, files ``loss_curve_repo/csv_{25,100,400}/*.csv``, MIT license (Copyright (c) 2025 Kairong
Luo; the license text is downloaded beside the data). Not shipped with this package: :func:`load_multipowerlaw`
downloads the files once, checks a sha256 per file and caches them.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from sh_scaling.curves._curve import Curve, CurveSet
from sh_scaling.curves._download import cache_root, download, remove_abandoned_parts
from sh_scaling.schedules import WSD, Constant, Cosine, Schedule, TwoStage

__all__ = ["load_multipowerlaw", "fetch_multipowerlaw", "MULTIPOWERLAW_URL", "MULTIPOWERLAW_SHA256",
           "MULTIPOWERLAW_SIZES"]

#: The repository's files at a fixed commit (2025-03-18), so the checksums below never go stale.
MULTIPOWERLAW_URL = (
    "https://raw.githubusercontent.com/thu-yao-01-luo/MultiPowerLaw/8da9f1902602f3391b971a811e3cc51604541769/"
)
#: Model sizes (folder ``csv_<n>``) and their nominal parameter counts; exact counts are not published.
MULTIPOWERLAW_SIZES = {"25M": 25e6, "100M": 100e6, "400M": 400e6}
#: sha256 of every file, by path relative to :data:`MULTIPOWERLAW_URL`.
MULTIPOWERLAW_SHA256 = {
    "LICENSE": "a864b23f4c3c706446637a6b811719bb4a68b79ac346cd29081b5def71eaf653",
    "loss_curve_repo/csv_25/constant_24000.csv": "5a7c0b440751e258e7199eeefe9f0ae58520a2f2d64c5f81524d8d375f75f0ce",
    "loss_curve_repo/csv_25/constant_72000.csv": "99ee51a9be7b7fb71511d0af28edd6bc6221350d2ad26a66c615467cb5c83247",
    "loss_curve_repo/csv_25/cosine_24000.csv": "554e35f9efbe28a614c9ae1121b3bf55490df6b72a5898957f68a52770038e3a",
    "loss_curve_repo/csv_25/cosine_72000.csv": "af3b25a485966a0f7fc34824774cf8ec85af14848a6dc7b64d6a8d3d044befa5",
    "loss_curve_repo/csv_25/wsd_20000_24000.csv": "8649b7de4b4b31db5c35f4ff0458af9472a50168177de6372c3ceb37ace9fc62",
    "loss_curve_repo/csv_25/wsdld_20000_24000.csv": "8e3a9ae33ed586e5040a114fad215f4f245c6a2ff7d96f61cba02ccd8b74b3e7",
    "loss_curve_repo/csv_25/wsdcon_3.csv": "3d37fcf82c237e5c1ba2ee34c4b9e606ecba781536d4fea9a7dde5463207fc3d",
    "loss_curve_repo/csv_25/wsdcon_9.csv": "b7579f38b5e175d9e9dc9b9598b409efdf2cba0a68819857ba28649c242c2bd8",
    "loss_curve_repo/csv_25/wsdcon_18.csv": "9b9bd40f519d20ecbf540d4c9451f6a01b7b379b1d335407ba4651025cc5926f",
    "loss_curve_repo/csv_100/constant_24000.csv": "034a75e2415373a9be1097e9d406f98524344f4718d200d3a188dcbd5115103b",
    "loss_curve_repo/csv_100/constant_72000.csv": "52b5752009e1e4c396f15016e98897238fccb3816f58576ea944f03fe529dbc3",
    "loss_curve_repo/csv_100/cosine_24000.csv": "dd544dc61a11fa138c98ac0b673d5512287062d2d2d2e9c2867976abc8c46e69",
    "loss_curve_repo/csv_100/cosine_72000.csv": "2e637203b48b3e3a84063f49035cde2f6a40c69ecd15d95b6551774b9a279f44",
    "loss_curve_repo/csv_100/wsd_20000_24000.csv": "e66df98c85dba705ebc85512c6a09a8ebec5675878a20d4d783c0bf80d031002",
    "loss_curve_repo/csv_100/wsdld_20000_24000.csv": "0ef6b02e260ff5efa51a5885655ead8cf126a7e9c4ea3034d403e11852c06fe2",
    "loss_curve_repo/csv_100/wsdcon_3.csv": "a1cbb8c730ae0628d69bb1d7aefadbad5cda5f6a92272f85203cd33d7b8f4912",
    "loss_curve_repo/csv_100/wsdcon_9.csv": "510256497a0ea9d4270919fb37c56140e1b4d07e50b96b46334891ba316f144e",
    "loss_curve_repo/csv_100/wsdcon_18.csv": "33cfea673dc0efde9e4fd74cc47d8daabdebfdc6d5a2659835bd780347f6e651",
    "loss_curve_repo/csv_400/constant_24000.csv": "5d91536675592acdc40ea56f71ca24ee9026243e51a0a791ac25b631381c45ee",
    "loss_curve_repo/csv_400/constant_72000.csv": "a453ef82f549470cc8250723917668801436dd835fd17bbf71e1fd77d00a3b6c",
    "loss_curve_repo/csv_400/cosine_24000.csv": "aa18c9dbad66610d2037249bbcbf08fdce0983aa486b876ba95c2e3fb6fc0dce",
    "loss_curve_repo/csv_400/cosine_72000.csv": "347acbdc80042cb7cfe0dcb28580a2780718ccbad23443d4de76821f0a1ab41e",
    "loss_curve_repo/csv_400/wsd_20000_24000.csv": "8a56dbd8f6b553b42ca8b3f4be9822cf5b7458a6c1b7ae0ddc6ac57b2893dea7",
    "loss_curve_repo/csv_400/wsdld_20000_24000.csv": "7c5d5141d917955491732606e8817e7fdbd4bc2036e508e1610ab8bd252267dc",
    "loss_curve_repo/csv_400/wsdcon_3.csv": "e1a896755ea1e1a6a4648a503be6a19eb62fc7ef12fbab3440a66f7a94197ac6",
    "loss_curve_repo/csv_400/wsdcon_9.csv": "497aa4a60df8f520e11e212a990dcf70e8bfd89e814f295dc5476af630aac768",
    "loss_curve_repo/csv_400/wsdcon_18.csv": "998aaf3fd14de43fe754c7250885d7f72e20e7a210b1ea205a8af37ea8b22951",
}

#: The schedules of the runs (repository README and ``shared/data/multipowerlaw/SUMMARY.md``; the rates they
#: give match the ``lr`` column of every file to 1e-9, ``tests/test_multipowerlaw_data.py``): peak 3e-4 after
#: a linear warm-up of 2,160 steps from 0, cosine and WSD decays to 3e-5, two-stage runs of 16,000 planned
#: steps switching at step 8,000.
_PEAK_LR = 3e-4
_WARMUP_STEPS = 2160
_FINAL_RATIO = 0.1
_TWO_STAGE_STEPS = 16_000
_TWO_STAGE_SWITCH = 8_000
_WSD_STEPS, _WSD_DECAY_START = 24_000, 20_000
#: Schedule names in the order of the repository's README table.
_SCHEDULE_NAMES = ("constant_24000", "constant_72000", "cosine_24000", "cosine_72000", "wsd_20000_24000",
                   "wsdld_20000_24000", "wsdcon_3", "wsdcon_9", "wsdcon_18")
_CACHE_FOLDER = "multipowerlaw_luo2025"


def load_multipowerlaw(
    path: str | os.PathLike[str] | None = None,
    *,
    sizes: Iterable[str] | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    url: str = MULTIPOWERLAW_URL,
    verify: bool = True,
    timeout: float = 60.0,
) -> CurveSet:
    """Load the 27 loss curves of Luo et al. (2025) as a :class:`CurveSet`, each with its schedule.

    **Where the files come from.** With ``path`` given, that local copy is read: the repository's
    ``loss_curve_repo`` folder (holding ``csv_25``, ``csv_100``, ``csv_400``) or a folder containing it.
    Otherwise the files are taken from the cache directory (``cache_dir``, else ``$SH_SCALING_CACHE``, else
    ``$XDG_CACHE_HOME/sh_scaling``, else ``~/.cache/sh_scaling``; subfolder ``multipowerlaw_luo2025``) and, on
    first use, downloaded from ``url`` (the public repository at a fixed commit), each to a temporary file
    renamed into place once its sha256 matches :data:`MULTIPOWERLAW_SHA256`; the license file is downloaded
    beside them. With ``verify=True`` (default) every file read, local or cached, must match its sha256; a cached
    file that does not is downloaded again.

    **Compute** of a point is ``N x step`` with ``N`` the nominal parameter count (25e6, 100e6, 400e6): a
    relative unit (unit label ``"N x steps"``), proportional to training FLOPs within a size and across sizes
    at the same tokens per step (the repository gives neither exact parameter counts nor the batch size).
    Within one run compute is proportional to steps, so ``compute / meta["max_compute"]`` is the fraction of
    the run, the argument of ``meta["schedule"]``.

    **Metadata** (``curve.meta``): ``size`` (``"25M"``...), ``n_params`` (nominal), ``schedule`` (a
    :mod:`sh_scaling.schedules` object, e.g. ``Cosine(peak_lr=3e-4, warmup=0.09, final_ratio=0.1)``),
    ``schedule_name`` (the file name without ``.csv``), ``schedule_kind`` (``"constant"``, ``"cosine"``,
    ``"wsd"``, ``"two_stage"``), ``total_steps`` (planned: 24,000, 72,000 or 16,000), ``max_compute``
    (``N x total_steps``), ``steps`` and ``lr`` (arrays aligned with ``compute``, as recorded). The 25M two-stage
    runs stop at step 14,144 of their planned 16,000.

    Args:
        path: A local copy (see above); ``None`` uses the cache / download.
        sizes: Keep only these sizes (from :data:`MULTIPOWERLAW_SIZES`); ``None`` keeps all three.
        cache_dir: Cache directory (see above).
        url: Base URL to download from (``file://`` works, e.g. for a mirror); file paths are appended.
        verify: Check each file's sha256 (default ``True``; ``False`` for a deliberately modified copy).
        timeout: Seconds before a stalled download is abandoned.

    Returns:
        A :class:`CurveSet` of 27 curves (9 per size) with ids ``"25M/constant_24000"``, ..., ordered by size
        and by the README's schedule order.

    Raises:
        ValueError: an unknown size; ``path`` is not a folder with the files; a file fails its checksum or has
            no ``step,lr,loss`` header.
        OSError: a download failed (the message names the URL and how to provide the files by hand).

    Example:
        >>> curves = load_multipowerlaw()  # doctest: +SKIP
        >>> c = curves.get("100M/cosine_24000")  # doctest: +SKIP
        >>> float(c.meta["schedule"](c.compute[-1] / c.meta["max_compute"]))  # doctest: +SKIP
        3.000893868085248e-05
    """
    keep = _check_sizes(sizes)
    if path is None:
        root = fetch_multipowerlaw(cache_dir=cache_dir, url=url, verify=verify, timeout=timeout)
    else:
        root = _local_root(Path(path))
    curves = []
    for size in keep:
        n = MULTIPOWERLAW_SIZES[size]
        for name in _SCHEDULE_NAMES:
            rel = _relative_path(size, name)
            file = root / rel.removeprefix("loss_curve_repo/")
            if not file.is_file():
                raise ValueError(f"{root}: missing {rel}; is this the loss_curve_repo folder of the repository?")
            if path is not None and verify:
                _check_sha256(file, rel, hint="pass verify=False to read a modified copy")
            steps, lr, loss = _read_csv(file)
            steps.setflags(write=False)
            lr.setflags(write=False)
            schedule, total = _schedule(name)
            meta = {
                "size": size,
                "n_params": n,
                "schedule": schedule,
                "schedule_name": name,
                "schedule_kind": schedule.kind,
                "total_steps": total,
                "max_compute": n * total,
                "steps": steps,
                "lr": lr,
            }
            curves.append(Curve.from_arrays(f"{size}/{name}", n * steps, loss, meta, unit="N x steps"))
    return CurveSet(curves, name="multipowerlaw")


def fetch_multipowerlaw(
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    url: str = MULTIPOWERLAW_URL,
    verify: bool = True,
    timeout: float = 60.0,
) -> Path:
    """The cached ``loss_curve_repo`` folder, downloading missing or corrupt files (and the license) first.

    See :func:`load_multipowerlaw` for the cache directory, the checks and the errors.
    """
    base = cache_root(cache_dir) / _CACHE_FOLDER
    for rel, digest in MULTIPOWERLAW_SHA256.items():
        target = base / rel
        remove_abandoned_parts(target)
        if target.is_file():
            if not verify or hashlib.sha256(target.read_bytes()).hexdigest() == digest:
                continue
            with contextlib.suppress(FileNotFoundError):
                target.unlink()
        download(
            url + rel, target, sha256=digest if verify else None, timeout=timeout, what=f"the schedule curves' {rel}",
            by_hand="Download the repository's loss_curve_repo folder by hand and pass path=...",
            unwritable=_unwritable,
        )
    return base / "loss_curve_repo"


def _check_sizes(sizes: Iterable[str] | None) -> list[str]:
    if sizes is None:
        return list(MULTIPOWERLAW_SIZES)
    wanted = [sizes] if isinstance(sizes, str) else list(sizes)
    unknown = sorted(set(wanted) - set(MULTIPOWERLAW_SIZES))
    if unknown:
        raise ValueError(f"sizes: unknown {unknown}; valid sizes are {list(MULTIPOWERLAW_SIZES)}")
    return [s for s in MULTIPOWERLAW_SIZES if s in wanted]


def _relative_path(size: str, name: str) -> str:
    return f"loss_curve_repo/csv_{size[:-1]}/{name}.csv"


def _local_root(path: Path) -> Path:
    """The folder holding ``csv_25`` etc.: ``path`` itself or its ``loss_curve_repo`` subfolder."""
    if not path.is_dir():
        raise ValueError(f"path={str(path)!r} is not a folder")
    if (path / "loss_curve_repo").is_dir():
        return path / "loss_curve_repo"
    return path


def _schedule(name: str) -> tuple[Schedule, int]:
    """The schedule of a run from its file name, and the run's planned steps."""
    if name.startswith("wsdcon_"):
        total = _TWO_STAGE_STEPS
        second = int(name.split("_")[1]) / 30  # wsdcon_9: second stage at 9e-5 = 9/30 of the peak 3e-4
        sched: Schedule = TwoStage(peak_lr=_PEAK_LR, warmup=_WARMUP_STEPS / total,
                                   switch=_TWO_STAGE_SWITCH / total, ratio=second)
    elif name.startswith(("wsd_", "wsdld_")):
        total = _WSD_STEPS
        sched = WSD(peak_lr=_PEAK_LR, warmup=_WARMUP_STEPS / total, decay_start=_WSD_DECAY_START / total,
                    decay="linear" if name.startswith("wsdld_") else "exponential", final_ratio=_FINAL_RATIO)
    else:
        kind, steps = name.split("_")
        total = int(steps)
        if kind == "cosine":
            sched = Cosine(peak_lr=_PEAK_LR, warmup=_WARMUP_STEPS / total, final_ratio=_FINAL_RATIO)
        else:
            sched = Constant(peak_lr=_PEAK_LR, warmup=_WARMUP_STEPS / total)
    return sched, total


def _read_csv(file: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    with open(file, encoding="utf-8") as stream:
        header = stream.readline().strip()
        if header != "step,lr,loss":
            raise ValueError(f"{file}: expected the header 'step,lr,loss', got {header!r}")
        try:
            data = np.loadtxt(stream, delimiter=",", ndmin=2)
        except ValueError as err:
            raise ValueError(f"{file}: not a readable step,lr,loss CSV ({err})") from None
    if data.shape[1] != 3:
        raise ValueError(f"{file}: expected 3 columns, got {data.shape[1]}")
    return data[:, 0], data[:, 1], data[:, 2]


def _check_sha256(file: Path, rel: str, *, hint: str) -> None:
    digest = hashlib.sha256(file.read_bytes()).hexdigest()
    if digest != MULTIPOWERLAW_SHA256[rel]:
        raise ValueError(f"{file}: sha256 {digest} does not match the published {rel} "
                         f"({MULTIPOWERLAW_SHA256[rel]}); {hint}")


def _unwritable(directory: Path, err: OSError) -> OSError:
    """``err`` (same class) with a message saying what to do."""
    reason = err.strerror or str(err)
    return type(err)(
        f"cannot write to the schedule curves cache directory {directory} ({reason}): choose another with "
        "cache_dir=... or $SH_SCALING_CACHE, or give a local copy with path=..."
    )
