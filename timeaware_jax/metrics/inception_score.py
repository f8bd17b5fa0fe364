"""The Inception Score of a set of class predictions."""

import numpy as np
from jaxtyping import Float
from scipy.special import log_softmax


def inception_score(
    logits: Float[np.ndarray, "N K"], *, splits: int = 10
) -> tuple[float, float]:
    """The Inception Score, mean and standard deviation over splits.

        IS = exp( E_x KL( p(y|x) || p(y) ) ),   p(y) = E_x p(y|x)

    Following Salimans et al. (2016), the `N` predictions are cut into
    `splits` consecutive, (nearly) equal parts; the score is computed on each
    and the mean and (population) standard deviation are returned. Computed in
    float64 from log-probabilities, so confident predictions do not underflow.

    Args:
        logits: unnormalised class scores `[N, K]` (softmax is applied here).
            For the paper-standard IS these are the FID Inception's
            `logits_unbiased` over its 1,008 classes.
        splits: number of parts, `1 <= splits <= N`.

    Returns:
        `(mean, std)`. The score lies in `[1, K]`: 1 when every image gets the
        same prediction, `K` for confident predictions balanced over classes.

    Raises:
        ValueError: for a non-2-d input or an invalid number of splits.

    Example:
        >>> logits = 50.0 * np.eye(4)[np.arange(100) % 4]
        >>> round(inception_score(logits, splits=1)[0], 4)
        4.0
    """
    logits = np.asarray(logits, np.float64)
    if logits.ndim != 2 or logits.shape[0] == 0:
        raise ValueError(
            f"logits must have shape [N, K] with N > 0, got {logits.shape}."
        )
    if not isinstance(splits, int) or not 1 <= splits <= logits.shape[0]:
        raise ValueError(
            f"splits must be an int in [1, {logits.shape[0]}], got {splits!r}."
        )
    log_p = log_softmax(logits, axis=1)  # log p(y|x), [N, K]
    scores = []
    for part in np.array_split(log_p, splits):
        log_marginal = np.log(np.mean(np.exp(part), axis=0))  # log p(y), [K]
        kl = np.sum(np.exp(part) * (part - log_marginal), axis=1)  # [n]
        scores.append(np.exp(np.mean(kl)))
    return float(np.mean(scores)), float(np.std(scores))
