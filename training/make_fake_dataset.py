"""Write a tiny fake ShapeWorld-style dataset (for testing the training scripts only).

The real datasets come from the TypeScript command; this mimics their format:
meta.json, images.u8 (N x S x S x 3), tokens.i32 (N x maxTokens), records.jsonl
and, with --labels, labels.u8 (half the prompts are corrupted -> label 0) plus the module verifier's
spec.i32 (each prompt's parse) and objects.f32 (the drawn shapes as detection rows).

  /usr/bin/python3 training/make_fake_dataset.py --out /tmp/fake_gen --n 256
  /usr/bin/python3 training/make_fake_dataset.py --out /tmp/fake_ver --n 256 --labels
"""
import argparse
import json
import os

import numpy as np

COLORS = {"red": (220, 40, 40), "green": (40, 180, 60), "blue": (40, 70, 220), "yellow": (230, 210, 40)}
SHAPES = ["circle", "square"]
# ids in ShapeWorld's order (src/shapeworld/shapes.ts), as spec.i32 and objects.f32 use them
CLASS_ID = {"circle": 1, "square": 2}
COLOR_ID = {"red": 1, "yellow": 3, "green": 4, "blue": 5}
SPEC_LENGTH = 28
VOCAB = ["<pad>", "<null>", "a", "photo", "of", "left", "right", "the", "to"] + list(COLORS) + SHAPES


def draw(img, shape, color, cx, cy, r):
    s = img.shape[0]
    yy, xx = np.mgrid[0:s, 0:s]
    if shape == "circle":
        m = (xx - cx) ** 2 + (yy - cy) ** 2 <= r * r
    else:
        m = (np.abs(xx - cx) <= r) & (np.abs(yy - cy) <= r)
    img[m] = color


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--n", type=int, default=256)
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--max-tokens", type=int, default=16)
    ap.add_argument("--labels", action="store_true", help="verifier dataset: add labels.u8 with ~50%% mismatches")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    rng = np.random.default_rng(a.seed)
    os.makedirs(a.out, exist_ok=True)
    n, s, m = a.n, a.size, a.max_tokens
    images = np.empty((n, s, s, 3), np.uint8)
    tokens = np.zeros((n, m), np.int32)
    labels = np.ones(n, np.uint8)
    spec = np.zeros((n, SPEC_LENGTH), np.int32)
    objects = np.zeros((n, 8, 6), np.float32)
    cols = list(COLORS)
    with open(os.path.join(a.out, "records.jsonl"), "w") as rec:
        for i in range(n):
            img = np.full((s, s, 3), 128, np.uint8)
            two = rng.random() < 0.5
            c1, c2 = rng.choice(cols, 2, replace=False)
            s1, s2 = rng.choice(SHAPES), rng.choice(SHAPES)
            r = int(rng.integers(4, 7))
            if two:
                x1, y1, x2, y2 = (int(v) for v in (rng.integers(6, 12), rng.integers(8, 24), rng.integers(20, 26),
                                                     rng.integers(8, 24)))
                draw(img, s1, COLORS[c1], x1, y1, r)
                draw(img, s2, COLORS[c2], x2, y2, r)
                objects[i, 0] = [CLASS_ID[s1], COLOR_ID[c1], (x1 + 0.5) / s, (y1 + 0.5) / s, (2 * r + 1) / s, (2 * r + 1) / s]
                objects[i, 1] = [CLASS_ID[s2], COLOR_ID[c2], (x2 + 0.5) / s, (y2 + 0.5) / s, (2 * r + 1) / s, (2 * r + 1) / s]
                words = ["a", c1, s1, "left", "of", "a", c2, s2]
                tag = "position"
            else:
                x1, y1 = int(rng.integers(10, 22)), int(rng.integers(10, 22))
                draw(img, s1, COLORS[c1], x1, y1, r + 2)
                objects[i, 0] = [CLASS_ID[s1], COLOR_ID[c1], (x1 + 0.5) / s, (y1 + 0.5) / s, (2 * r + 5) / s, (2 * r + 5) / s]
                words = ["a", "photo", "of", "a", c1, s1]
                tag = "single_object"
            label = 1
            if a.labels and rng.random() < 0.5:
                # corrupt the prompt: change the first colour (or swap left->right)
                label = 0
                if two and rng.random() < 0.5:
                    words[3] = "right"
                else:
                    j = words.index(c1)
                    words[j] = rng.choice([c for c in cols if c != c1])
            images[i] = img
            if two:   # GenEval's order: the reference object, then the related one pointing back at it
                rel = 1 if words[3] == "left" else 2
                spec[i, :10] = [CLASS_ID[words[7]], COLOR_ID[words[6]], 1, 0, 0, CLASS_ID[words[2]], COLOR_ID[words[1]], 1, rel, 0]
            else:
                spec[i, :5] = [CLASS_ID[words[5]], COLOR_ID[words[4]], 1, 0, 0]
            ids = [VOCAB.index(w) for w in words][:m]
            tokens[i, :len(ids)] = ids
            labels[i] = label
            rec.write(json.dumps({"prompt": " ".join(words), "tag": tag, "label": label}) + "\n")
    images.tofile(os.path.join(a.out, "images.u8"))
    tokens.astype("<i4").tofile(os.path.join(a.out, "tokens.i32"))
    meta = {"count": n, "size": s, "vocab": VOCAB, "maxTokens": m}
    if a.labels:
        labels.tofile(os.path.join(a.out, "labels.u8"))
        spec.astype("<i4").tofile(os.path.join(a.out, "spec.i32"))
        objects.astype("<f4").tofile(os.path.join(a.out, "objects.f32"))
        meta["spec"] = {"version": 1, "length": SPEC_LENGTH, "includeSlots": 4, "excludeSlots": 4, "maxCount": 9}
        meta["objects"] = {"slots": 8, "fields": ["class", "color", "cx", "cy", "w", "h"]}
    with open(os.path.join(a.out, "meta.json"), "w") as f:
        json.dump(meta, f)
    print(f"wrote {n} samples to {a.out}" + (f" ({int(labels.sum())} positive)" if a.labels else ""))


if __name__ == "__main__":
    main()
