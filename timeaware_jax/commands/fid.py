"""`timeaware fid`: FID and Inception Score of images, or a small-data distance.

    timeaware fid samples.npz --dataset cifar10 [--weights PATH] [--out r.json]
    timeaware fid samples.npz --metric fd-digits
    timeaware fid --convert pt_inception-2015-12-05-6726825d.pth \
        --out ~/.cache/timeaware_jax/inception/fid_inception_v3.npz

IMAGES is an .npz holding the images under the key `images` (else its only
array): `uint8 [N, H, W, C]`, or floats in [-1, 1] (mapped to uint8 first);
or a folder of PNG/JPEG files of one size (grayscale or RGB).
"""

import argparse
import json
import pathlib
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the command-line arguments."""
    parser.add_argument(
        "images", nargs="?", help=".npz file or folder of PNG/JPEG images"
    )
    parser.add_argument(
        "--metric",
        default="fid",
        choices=("fid", "fd-digits", "fd-fashion"),
        help="FID+IS, or a small-data Frechet distance (not FID)",
    )
    parser.add_argument("--dataset", default=None, help="reference data set")
    parser.add_argument(
        "--weights", default=None, help="Inception weights (.npz, Orbax dir, .pth)"
    )
    parser.add_argument("--batch-size", type=int, default=50, help="images per call")
    parser.add_argument("--splits", type=int, default=10, help="IS splits")
    parser.add_argument("--cache-dir", default=None, help="cache root directory")
    parser.add_argument("--data-dir", default=None, help="data set directory")
    parser.add_argument(
        "--convert", metavar="SRC.pth", default=None, help="convert pytorch-fid weights"
    )
    parser.add_argument(
        "--out", default=None, help="with --convert: destination; else: JSON result"
    )


_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


def _load_folder(path: pathlib.Path):
    import numpy as np
    from PIL import Image

    files = sorted(p for p in path.iterdir() if p.suffix.lower() in _IMAGE_SUFFIXES)
    if not files:
        raise ValueError(f"{path} holds no {'/'.join(_IMAGE_SUFFIXES)} files.")
    images = []
    for file in files:
        with Image.open(file) as image:
            gray = image.mode in ("L", "I", "I;16", "1")
            array = np.asarray(image.convert("L" if gray else "RGB"), np.uint8)
        images.append(array[..., None] if gray else array)  # [H, W] -> [H, W, 1]
    shapes = {image.shape for image in images}
    if len(shapes) > 1:
        raise ValueError(f"{path} holds images of several shapes: {sorted(shapes)}.")
    return np.stack(images)


def _load_images(path: str):
    import numpy as np

    from timeaware_jax.data import to_uint8

    if pathlib.Path(path).is_dir():
        return _load_folder(pathlib.Path(path))
    with np.load(path) as data:
        if "images" in data.files:
            images = data["images"]
        elif len(data.files) == 1:
            images = data[data.files[0]]
        else:
            raise ValueError(
                f"{path} holds arrays {data.files}; expected one named 'images'."
            )
    if images.dtype != np.uint8:
        images = np.asarray(to_uint8(images))
    return images


def _convert(args: argparse.Namespace) -> int:
    from timeaware_jax.metrics import convert_file
    from timeaware_jax.metrics.weights import default_weights_path

    out = args.out or default_weights_path(args.cache_dir)
    path = convert_file(args.convert, out)
    print(json.dumps({"converted": args.convert, "out": str(path)}))
    return 0


def run(args: argparse.Namespace) -> int:
    """Convert weights, or score the images and print one JSON line."""
    from tqdm import tqdm

    from timeaware_jax.metrics import evaluate_images

    if args.convert:
        return _convert(args)
    if not args.images:
        print("error: give an .npz of images, or --convert SRC.pth", file=sys.stderr)
        return 2
    try:
        images = _load_images(args.images)
    except (OSError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    try:
        with tqdm(total=len(images), desc=args.metric, unit="img") as bar:
            result = evaluate_images(
                images,
                metric=args.metric,
                dataset=args.dataset,
                weights=args.weights,
                batch_size=args.batch_size,
                splits=args.splits,
                cache_dir=args.cache_dir,
                data_dir=args.data_dir,
                progress=bar.update,
            )
    except FileNotFoundError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    result = {
        "images": args.images,
        "num_images": len(images),
        "metric": args.metric,
        "dataset": args.dataset,
        **result,
    }
    line = json.dumps(result)
    print(line)
    if args.out:
        with open(args.out, "a") as handle:
            handle.write(line + "\n")
    return 0
