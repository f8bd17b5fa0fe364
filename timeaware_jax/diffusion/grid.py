"""Tile a batch of images into one grid and write it as a PNG."""

import math
import os

import matplotlib.image
import numpy as np
from jaxtyping import Array, Float


def image_grid(
    images: Float[Array, "batch height width channels"] | np.ndarray,
    num_cols: int | None = None,
    padding: int = 1,
) -> np.ndarray:
    """Arrange images in [-1, 1] into a uint8 grid [rows (H + p), cols (W + p), C].

    Args:
        images: [B, H, W, C] with C = 1 or 3, values in [-1, 1] (clipped).
        num_cols: images per row; ceil(sqrt(B)) by default.
        padding: pixels of black between images.

    Returns:
        uint8 array; [rows, cols] for one channel, [rows, cols, 3] for three.

    Raises:
        ValueError: if `images` is not [B, H, W, 1 or 3].

    Example:
        >>> image_grid(np.zeros((4, 8, 8, 1))).shape
        (18, 18)
    """
    images = np.asarray(images, dtype=np.float32)
    if images.ndim != 4 or images.shape[-1] not in (1, 3):
        raise ValueError(
            f"images must have shape [B, H, W, 1 or 3], got shape {images.shape}."
        )
    batch, height, width, channels = images.shape
    num_cols = num_cols or math.ceil(math.sqrt(batch))
    num_rows = math.ceil(batch / num_cols)
    pixels = np.round((np.clip(images, -1.0, 1.0) + 1.0) * 127.5).astype(np.uint8)

    cell_h, cell_w = height + padding, width + padding
    grid = np.zeros(
        (num_rows * cell_h + padding, num_cols * cell_w + padding, channels), np.uint8
    )
    for index in range(batch):
        row, col = divmod(index, num_cols)
        top, left = padding + row * cell_h, padding + col * cell_w
        grid[top : top + height, left : left + width] = pixels[index]
    return grid[..., 0] if channels == 1 else grid


def save_image_grid(
    images: Float[Array, "batch height width channels"] | np.ndarray,
    path: str | os.PathLike,
    num_cols: int | None = None,
    scale: int = 1,
) -> None:
    """Write `image_grid(images, num_cols)` to `path` as a PNG (grey or RGB).

    `scale` repeats each pixel, so that 8x8 digits are visible.
    """
    grid = image_grid(images, num_cols)
    grid = np.repeat(np.repeat(grid, scale, axis=0), scale, axis=1)
    directory = os.path.dirname(os.fspath(path))
    if directory:
        os.makedirs(directory, exist_ok=True)
    cmap = "gray" if grid.ndim == 2 else None
    matplotlib.image.imsave(os.fspath(path), grid, cmap=cmap, vmin=0, vmax=255)
