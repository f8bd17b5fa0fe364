"""timeaware-jax: time-dependent neural networks in JAX/Flax that stay time-aware.

Subpackages:

- `timeaware_jax.nn`: time embeddings, `ConcatConv`, time conditioning and the
  normalization factory.
- `timeaware_jax.node`: neural ODEs on diffrax.
- `timeaware_jax.diffusion`: DDPM schedules, U-Net, losses and samplers.
- `timeaware_jax.analysis`: the vanishing-embedding analysis.
- `timeaware_jax.train`: training state, sharding, checkpoints, logging.
- `timeaware_jax.data`: data sets.
- `timeaware_jax.metrics`: FID, Inception Score and small-data distances.
"""

__version__ = "0.1.0"
