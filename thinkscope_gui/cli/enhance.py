"""`main.py enhance IN OUT [--model M]`: enhance PNG/TIFF files or whole folders."""

from __future__ import annotations

import argparse
from pathlib import Path

IMAGE_EXTS = (".png", ".tif", ".tiff")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("enhance", help="enhance 40x images (PNG/TIFF file or folder)")
    p.add_argument("input", help="image file or folder of images")
    p.add_argument("output", help="output file, or folder when the input is a folder")
    p.add_argument("--model", default=None,
                   help="model file, or fast / quality for the shipped models (default: fast)")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda if available)")
    p.add_argument("--bit-depth", type=int, default=None,
                   help="significant bits of 16-bit inputs (default: full range)")


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from thinkscope_gui.learn.errors import ModelFileError, ModelMismatchError
    from thinkscope_gui.learn.imageio import enhance_file
    from thinkscope_gui.learn.infer import Enhancer

    src, dst = Path(args.input), Path(args.output)
    try:
        enh = Enhancer.load(args.model, device=args.device)
    except ModelFileError as e:
        print(f"error: {e}")
        return 2
    try:
        if src.is_dir():
            files = sorted(p for p in src.iterdir() if p.suffix.lower() in IMAGE_EXTS)
            dst.mkdir(parents=True, exist_ok=True)
            for f in tqdm(files, unit="image"):
                enhance_file(enh, f, dst / f.name, bit_depth=args.bit_depth)
            print(f"enhanced {len(files)} images into {dst}")
        elif src.is_file():
            out = enhance_file(enh, src, dst, bit_depth=args.bit_depth)
            print(f"{src} -> {out} (x{enh.scale:g})")
        else:
            print(f"error: {src} does not exist")
            return 2
    except ModelMismatchError as e:
        print(f"error: {e}")
        return 2
    return 0
