"""Write a synthetic CelebA-format dataset of drawn faces with real, visible attributes.

    python datasets/synthetic_faces.py OUT --n 2000 --size 32 [--seed 0] [--format png|jpg]

OUT gets the CelebA layout that ``vaekit`` detects as ``celeba``::

    OUT/img_align_celeba/000001.png ...
    OUT/list_attr_celeba.txt      count line, header of attribute names, rows of +-1
                                  with CelebA's irregular spacing
    OUT/list_eval_partition.txt   name 0|1|2 (80% train, 10% val, 10% test)

Every attribute is drawn, so it can be seen in the picture and learned by a VAE:
Smiling (a wide open grin with teeth), Mouth_Slightly_Open, Eyeglasses, Blond_Hair, Black_Hair,
Brown_Hair, Gray_Hair, Bald, Bangs, Wearing_Hat, No_Beard, Pale_Skin. The names
are CelebA's, so ``vaekit fit-cluster --label smiling`` works the same way on
both. Deterministic for a given seed. Needs only numpy and Pillow.

Importable too: ``generate(out, n, size, seed)`` (tests load this file with runpy).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

ATTRIBUTES = [
    "Bald",
    "Bangs",
    "Black_Hair",
    "Blond_Hair",
    "Brown_Hair",
    "Eyeglasses",
    "Gray_Hair",
    "Mouth_Slightly_Open",
    "No_Beard",
    "Pale_Skin",
    "Smiling",
    "Wearing_Hat",
]
HAIR_COLOURS = {
    "Blond_Hair": (232, 200, 96),
    "Black_Hair": (28, 24, 22),
    "Brown_Hair": (112, 68, 36),
    "Gray_Hair": (176, 176, 180),
}
SUPERSAMPLE = 4  # draw large, then downsample: smooth edges at small sizes


def sample_attributes(rng: np.random.Generator) -> dict[str, bool]:
    """One face's attributes (hair colours are exclusive; bald faces have no bangs)."""
    a = dict.fromkeys(ATTRIBUTES, False)
    hair = rng.choice(list(HAIR_COLOURS), p=[0.25, 0.3, 0.3, 0.15])
    a[str(hair)] = True
    a["Bald"] = bool(rng.random() < 0.08)
    a["Wearing_Hat"] = bool(rng.random() < 0.12) and not a["Bald"]
    a["Bangs"] = bool(rng.random() < 0.3) and not a["Bald"] and not a["Wearing_Hat"]
    a["Smiling"] = bool(rng.random() < 0.5)
    a["Mouth_Slightly_Open"] = bool(rng.random() < 0.4)
    a["Eyeglasses"] = bool(rng.random() < 0.25)
    a["No_Beard"] = bool(rng.random() >= 0.2)
    a["Pale_Skin"] = bool(rng.random() < 0.2)
    return a


def draw_face(a: dict[str, bool], size: int, rng: np.random.Generator) -> Image.Image:
    """Draw one face with attributes ``a`` as a ``size`` x ``size`` RGB image."""
    s = size * SUPERSAMPLE
    background = tuple(int(v) for v in rng.integers(60, 230, 3))
    picture = Image.new("RGB", (s, s), background)
    d = ImageDraw.Draw(picture)
    cx = s * (0.5 + rng.uniform(-0.04, 0.04))
    cy = s * (0.55 + rng.uniform(-0.04, 0.04))
    rx, ry = s * rng.uniform(0.26, 0.31), s * rng.uniform(0.33, 0.38)
    if a["Pale_Skin"]:
        skin = tuple(int(v) for v in rng.integers(238, 256, 3))
    else:
        tone = rng.uniform(0.35, 0.85)
        skin = (int(120 + 110 * tone), int(80 + 100 * tone), int(50 + 90 * tone))
    hair = next(HAIR_COLOURS[k] for k in HAIR_COLOURS if a[k])
    line = max(1, round(s * 0.025))

    if not a["Bald"]:  # hair behind the head
        d.ellipse([cx - rx * 1.18, cy - ry * 1.22, cx + rx * 1.18, cy + ry * 0.55], fill=hair)
    d.ellipse([cx - rx, cy - ry, cx + rx, cy + ry], fill=skin)
    if a["Bangs"]:
        d.chord([cx - rx, cy - ry * 1.05, cx + rx, cy - ry * 0.15], 180, 360, fill=hair)
    if not a["No_Beard"]:
        d.chord([cx - rx, cy - ry * 0.2, cx + rx, cy + ry], 20, 160, fill=hair)
    if a["Wearing_Hat"]:
        colour = tuple(int(v) for v in rng.integers(0, 200, 3))
        d.rectangle([cx - rx * 1.35, cy - ry * 0.72, cx + rx * 1.35, cy - ry * 0.55], fill=colour)
        d.rectangle([cx - rx * 0.9, cy - ry * 1.35, cx + rx * 0.9, cy - ry * 0.6], fill=colour)

    eye_y, eye_dx, eye_r = cy - ry * 0.18, rx * 0.42, s * 0.028
    for ex in (cx - eye_dx, cx + eye_dx):
        d.ellipse([ex - eye_r, eye_y - eye_r, ex + eye_r, eye_y + eye_r], fill=(20, 20, 30))
    if a["Eyeglasses"]:
        gr = s * 0.075
        frame = (10, 10, 10)
        for ex in (cx - eye_dx, cx + eye_dx):
            d.ellipse([ex - gr, eye_y - gr, ex + gr, eye_y + gr], outline=frame, width=line)
        d.line([cx - eye_dx + gr, eye_y, cx + eye_dx - gr, eye_y], fill=frame, width=line)
    d.line([cx, cy - ry * 0.05, cx - rx * 0.08, cy + ry * 0.15], fill=(90, 50, 40), width=line)

    mouth_y, mouth_w = cy + ry * 0.45, rx * rng.uniform(0.45, 0.6)
    lips = (150, 30, 40)
    if a["Smiling"]:  # a wide open grin: a dark half-disc with a band of teeth
        w, h = mouth_w * 1.15, ry * 0.32
        d.chord([cx - w, mouth_y - h, cx + w, mouth_y + h], 0, 180, fill=(90, 15, 25))
        d.chord([cx - w, mouth_y - h, cx + w, mouth_y + h], 0, 180, outline=lips, width=line)
        d.rectangle([cx - w * 0.7, mouth_y, cx + w * 0.7, mouth_y + h * 0.3], fill=(245, 245, 240))
    else:  # a short mouth: a closed lip line, or a dark opening the lips ring
        w = mouth_w * 0.6
        if a["Mouth_Slightly_Open"]:  # taller than the lip line, so it shows at 32 px
            h = ry * 0.16
            d.ellipse(
                [cx - w, mouth_y - h, cx + w, mouth_y + h],
                fill=(40, 10, 15),
                outline=lips,
                width=line,
            )
        else:
            d.line([cx - w, mouth_y, cx + w, mouth_y], fill=lips, width=line * 2)
    return picture.resize((size, size), Image.Resampling.LANCZOS)


def attribute_row(name: str, values: list[int]) -> str:
    """A CelebA-style row: the name, then values right-aligned in 2 columns (' 1' or '-1')."""
    return name + " " + " ".join(f"{v:2d}" for v in values)


def generate(
    out: str | Path, n: int = 2000, size: int = 32, seed: int = 0, fmt: str = "png"
) -> Path:
    """Write ``n`` faces of ``size`` x ``size`` pixels in the CelebA layout under ``out``."""
    out = Path(out)
    images = out / "img_align_celeba"
    images.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    rows, partition = [], []
    for i in range(n):
        name = f"{i + 1:06d}.{fmt}"
        attributes = sample_attributes(rng)
        picture = draw_face(attributes, size, rng)
        picture.save(images / name, **({"quality": 95} if fmt == "jpg" else {}))
        rows.append(attribute_row(name, [1 if attributes[k] else -1 for k in ATTRIBUTES]))
        fraction = i / max(n, 1)
        partition.append(f"{name} {0 if fraction < 0.8 else 1 if fraction < 0.9 else 2}")
    # CelebA's quirks: a count line, a header with a trailing space, irregular spacing
    header = " ".join(ATTRIBUTES) + " "
    (out / "list_attr_celeba.txt").write_text("\n".join([str(n), header, *rows]) + "\n")
    (out / "list_eval_partition.txt").write_text("\n".join(partition) + "\n")
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="folder to write (created)")
    parser.add_argument("--n", type=int, default=2000, help="number of faces")
    parser.add_argument("--size", type=int, default=32, help="image size in pixels")
    parser.add_argument("--seed", type=int, default=0, help="random seed")
    parser.add_argument("--format", choices=["png", "jpg"], default="png", dest="fmt")
    args = parser.parse_args(argv)
    out = generate(args.out, n=args.n, size=args.size, seed=args.seed, fmt=args.fmt)
    print(f"wrote {args.n} faces to {out} (train with: vaekit train {out})")


if __name__ == "__main__":
    main()
