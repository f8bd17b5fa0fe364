"""Where the metric weights and caches live, and the error when they are missing."""

import os
import pathlib

CACHE_ENV = "TIMEAWARE_CACHE"
WEIGHTS_ENV = "TIMEAWARE_INCEPTION_WEIGHTS"
PYTORCH_FID_WEIGHTS = "pt_inception-2015-12-05-6726825d.pth"
PYTORCH_FID_URL = (
    "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/"
    + PYTORCH_FID_WEIGHTS
)
CONVERTED_WEIGHTS = "fid_inception_v3.npz"


def cache_dir() -> pathlib.Path:
    """The cache directory: `$TIMEAWARE_CACHE`, else `~/.cache/timeaware_jax`.

    It holds converted Inception weights (`inception/`), reference statistics
    (`reference/`) and the small-data classifiers (`small_data/`). It is not
    created here.
    """
    root = os.environ.get(CACHE_ENV) or "~/.cache/timeaware_jax"
    return pathlib.Path(root).expanduser()


def default_weights_path(
    cache_root: str | os.PathLike | None = None,
) -> pathlib.Path:
    """Where `timeaware fid --convert` writes the converted weights by default."""
    root = pathlib.Path(cache_root) if cache_root is not None else cache_dir()
    return root / "inception" / CONVERTED_WEIGHTS


def missing_weights_message(
    searched: list[pathlib.Path], cache_root: str | os.PathLike | None = None
) -> str:
    """The explanation shown when no Inception weights are found."""
    places = "\n".join(f"  - {p}" for p in searched)
    return (
        "FID and the Inception Score need the FID Inception-v3 weights, which "
        "no package ships and which are never downloaded automatically. "
        f"Searched:\n{places}\n"
        f"Obtain pytorch-fid's weights file {PYTORCH_FID_WEIGHTS} from the "
        f"pytorch-fid GitHub releases ({PYTORCH_FID_URL}), then convert it "
        "once (needs PyTorch):\n"
        f"  timeaware fid --convert {PYTORCH_FID_WEIGHTS} "
        f"--out {default_weights_path(cache_root)}\n"
        f"or pass --weights PATH (a .npz, an Orbax directory or the .pth "
        f"itself), or set ${WEIGHTS_ENV}."
    )


def find_inception_weights(
    weights: str | os.PathLike | None = None,
    *,
    cache_root: str | os.PathLike | None = None,
) -> pathlib.Path:
    """Locate the FID Inception weights.

    Looked up in order: the `weights` argument; `$TIMEAWARE_INCEPTION_WEIGHTS`;
    `<cache>/inception/fid_inception_v3.npz` (written by `timeaware fid
    --convert`); `<cache>/inception/pt_inception-2015-12-05-6726825d.pth`.

    Args:
        weights: an explicit path (`.npz`, Orbax directory or `.pth`), or None.
        cache_root: the cache root (default `$TIMEAWARE_CACHE`, else
            `~/.cache/timeaware_jax`).

    Returns:
        The path of the first candidate that exists.

    Raises:
        FileNotFoundError: when none exists; the message names the expected
            file `pt_inception-2015-12-05-6726825d.pth`, where to obtain it,
            and the conversion command.
    """
    if weights is not None:
        candidates = [pathlib.Path(weights).expanduser()]
    else:
        candidates = []
        if os.environ.get(WEIGHTS_ENV):
            candidates.append(pathlib.Path(os.environ[WEIGHTS_ENV]).expanduser())
        converted = default_weights_path(cache_root)
        candidates += [converted, converted.parent / PYTORCH_FID_WEIGHTS]
    for candidate in candidates:
        if candidate.exists():
            return candidate
    raise FileNotFoundError(missing_weights_message(candidates, cache_root))
