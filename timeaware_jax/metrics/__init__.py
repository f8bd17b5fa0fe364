"""Sample-quality metrics: Frechet distances, FID and the Inception Score.

- `frechet_distance`: the Frechet distance between two Gaussians, with a
  stable matrix square root, in float64.
- `GaussianStats`: streaming mean and covariance over batches, mergeable.
- `inception_score`: IS with splits.
- `InceptionV3`: the FID Inception-v3 in Flax; `convert_file` converts
  pytorch-fid's weights; `find_inception_weights` locates them.
- `reference_stats`: cached feature statistics of any data set.
- `small_data_extractor`: the small-data classifier behind "FD-digits" and
  "FD-fashion" (not FID).
- `evaluate_images`: one call for FID and IS, or a small-data distance.
"""

from timeaware_jax.metrics.convert import (
    check_params,
    convert_file,
    convert_state_dict,
    load_params,
    load_torch_state_dict,
    save_params,
)
from timeaware_jax.metrics.evaluate import METRICS, evaluate_images
from timeaware_jax.metrics.extractor import (
    FeatureExtractor,
    inception_extractor,
    params_fingerprint,
    run_extractor,
)
from timeaware_jax.metrics.frechet import (
    frechet_distance,
    sqrtm_psd,
    trace_sqrt_product,
)
from timeaware_jax.metrics.inception import InceptionV3, resize_bilinear, to_unit_rgb
from timeaware_jax.metrics.inception_score import inception_score
from timeaware_jax.metrics.reference import reference_path, reference_stats
from timeaware_jax.metrics.small_data import (
    SmallClassifier,
    small_data_classifier,
    small_data_extractor,
    train_small_classifier,
)
from timeaware_jax.metrics.stats import GaussianStats
from timeaware_jax.metrics.weights import (
    PYTORCH_FID_URL,
    PYTORCH_FID_WEIGHTS,
    cache_dir,
    find_inception_weights,
)

__all__ = [
    "METRICS",
    "PYTORCH_FID_URL",
    "PYTORCH_FID_WEIGHTS",
    "FeatureExtractor",
    "GaussianStats",
    "InceptionV3",
    "SmallClassifier",
    "cache_dir",
    "check_params",
    "convert_file",
    "convert_state_dict",
    "evaluate_images",
    "find_inception_weights",
    "frechet_distance",
    "inception_extractor",
    "inception_score",
    "load_params",
    "load_torch_state_dict",
    "params_fingerprint",
    "reference_path",
    "reference_stats",
    "resize_bilinear",
    "run_extractor",
    "save_params",
    "small_data_classifier",
    "small_data_extractor",
    "sqrtm_psd",
    "to_unit_rgb",
    "trace_sqrt_product",
    "train_small_classifier",
]
