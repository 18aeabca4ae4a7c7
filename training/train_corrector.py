"""Reflection-tune the ShapeWorld corrector on GenRef-Shapes and export ONNX.

The corrector is the generator's rectified flow (same convention, see train_generator.py) conditioned also on the
previous image and reading the instruction `refined prompt [Reflexion]: reflection`. It starts from the shipped
generator's weights and learns, from (flawed, reflection, enhanced) triplets, to draw the enhanced image given the
flawed one. Condition dropout as in the paper: the instruction (null prompt), the reflection (refined prompt only)
and the image (all zeros) are each dropped at random, so one model also serves text-only and image-only calls and
classifier-free guidance on the instruction works.

  /usr/bin/python3 training/train_corrector.py --data data/genref --cond channels --minutes 40 --seed 0
  /usr/bin/python3 training/train_corrector.py --data data/genref --minutes 60 --resume

The checkpoint (one file, replaced) holds what a resume needs in 16 bits: the EMA weights (training resumes from
them) and Adam's moments. --minutes is the total budget including resumed time.
"""
from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import datetime
import glob
import hashlib
import io
import json
import math
import re
import sys
import tarfile
import time
import warnings

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import (BACKGROUND, EMA, PALETTE, REPO_ROOT, TRAINING_DIR, CsvLog, Timer,  # noqa: E402
                    check_with_onnxruntime_node, command_line, cosine_lr, count_params, export_onnx, images_to_float,
                    model_name, null_tokens, optimizer_step, opt_state_compact, opt_state_restore, run_files,
                    save_checkpoint, setup_torch, stop_on_signals, write_json)
from nets import CorrectorUNet, FlowUNet  # noqa: E402
from train_generator import CONVENTION, init_from_onnx, sample_t  # noqa: E402

MARKER = "reflexion"          # `[Reflexion]:` as the tokenizer sees it (lower-case words, punctuation dropped)


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, nargs="+",
                    help="GenRef-Shapes folder(s) (genref-*.tar, index.json); several builds are read as one set")
    ap.add_argument("--out", default="models/corrector.onnx")
    ap.add_argument("--init-onnx", default="models/generator.onnx", help="generator to start from (its .json beside it)")
    ap.add_argument("--cond", choices=["channels", "tokens"], default="channels")
    ap.add_argument("--gate", action="store_true",
                    help="a per-pixel copy gate between the previous image and the U-Net's own drawing (nets.py); "
                         "with --resume on a checkpoint without one, the gate is added and the learning-rate "
                         "schedule starts again from the resumed point")
    ap.add_argument("--region", action="store_true",
                    help="an edit-region input channel (nets.py): boxes where flawed and enhanced differ, grown by 0-2 "
                         "pixels at random; with --resume on a checkpoint without one, the channel is added with zero "
                         "weights and the learning-rate schedule starts again from the resumed point")
    ap.add_argument("--region-split", action="store_true",
                    help="two edit-region channels: the boxes of what the edit takes away or changes, and of what it "
                         "draws; with --resume on a one-channel checkpoint both start from its channel's weights (so "
                         "step 0 is that model wherever the two do not overlap) and the schedule starts again")
    ap.add_argument("--silhouette", action="store_true",
                    help="with --region-split: the previous image's object pixels inside boxes marked both erase and "
                         "draw (an object changed in place: recoloured or reshaped) become one flat dark gray, so the "
                         "new colour has to come from the instruction, not from the old pixels; kept in the "
                         "checkpoint (a resume without the flag keeps it), no new weights")
    ap.add_argument("--color-hint", action="store_true",
                    help="with --region-split: three more region channels, the colour each drawn box is to have (its "
                         "palette RGB in [-1, 1], 0 where unknown), read from the enhanced image's new pixels in "
                         "training and from the edit at run time; with --resume on a checkpoint without them they are "
                         "added with zero weights and the schedule starts again")
    ap.add_argument("--class-hint", action="store_true",
                    help="with --color-hint: six more region channels, the class each drawn box is to have (one-hot, "
                         "CLASSES order; 0 where unknown), read from the reflection's drawn objects in training (when "
                         "they are one class, or their colours tell them apart) and from the edit at run time; with "
                         "--resume on a checkpoint without them they are added with zero weights and the schedule "
                         "starts again")
    ap.add_argument("--p-no-class", type=float, default=0.15,
                    help="drop the class hint (zeros), as when the reflection cannot be grounded")
    ap.add_argument("--p-no-hint", type=float, default=0.25,
                    help="drop the colour hint (zeros), as for an added object whose colour no edit names")
    ap.add_argument("--p-no-region", type=float, default=0.15,
                    help="drop the edit region (zeros, as when the corrector cannot ground the reflection)")
    ap.add_argument("--gate-reset", type=float, default=None, metavar="BIAS",
                    help="with --resume: start the checkpoint's gate again, its weights at 0 and its bias at BIAS, "
                         "with a fresh optimizer and schedule as when it is added")
    ap.add_argument("--gate-lr-mult", type=float, default=1.0,
                    help="learning-rate multiple for the gate's own weights (other than 1: no weight decay on them)")
    ap.add_argument("--new-schedule", action="store_true",
                    help="with --resume: keep the weights and Adam's moments, but start a fresh warmup and cosine "
                         "schedule at --lr from the resumed point (to train on after a schedule has run out)")
    ap.add_argument("--minutes", type=float, default=40.0)
    ap.add_argument("--max-steps", type=int, default=0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=2e-4)
    ap.add_argument("--weight-decay", type=float, default=0.01)
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--p-null", type=float, default=0.1, help="drop the instruction (null prompt)")
    ap.add_argument("--p-no-reflection", type=float, default=0.1, help="drop the reflection (refined prompt only)")
    ap.add_argument("--p-no-image", type=float, default=0.1, help="drop the previous image (zeros)")
    ap.add_argument("--source-weights", default="rule=1,edit=3,model=1,refine=1,run=1", type=source_weights,
                    help="sampling weight of a triplet per GenRef source (0 leaves a source out)")
    ap.add_argument("--op-weights", default={}, type=source_weights,
                    help="sampling weight of a triplet by the edits its reflection asks for (add, remove, replace, "
                         "move, and add-rel for an Add placed relative to another object; the largest of its edits "
                         "counts, 1 for any not named): draws recolours, moves and anchored adds, which the "
                         "generator's own failures need most, more often")
    ap.add_argument("--edit-weight", type=float, default=1.0,
                    help="loss weight of the pixels the edit changes (where flawed and enhanced differ) vs the rest")
    ap.add_argument("--cond-noise", type=float, default=0.08,
                    help="max std of noise added to a rule-based triplet's previous image (renders are cleaner than "
                         "samples)")
    ap.add_argument("--ema", type=float, default=0.999)
    ap.add_argument("--ckpt", default=None, help="checkpoint (default training/resume/<name>.pt, kept in the repo, for "
                    "an --out in models/; else beside --out)")
    ap.add_argument("--ckpt-every", type=float, default=5.0)
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--export-only", action="store_true")
    ap.add_argument("--log-every", type=int, default=50)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--suggest-steps", type=int, default=12)
    ap.add_argument("--suggest-guidance", type=float, default=3.0)
    ap.add_argument("--no-card", action="store_true")
    return ap.parse_args(argv)


# ---------------------------------------------------------------------------------------------------------------
# data

def source_weights(text: str) -> dict:
    out = {}
    for part in text.split(","):
        k, sep, v = part.partition("=")
        try:
            out[k.strip()] = float(v)
        except ValueError:
            sep = ""
        if not sep or out[k.strip()] < 0:
            raise argparse.ArgumentTypeError(f"expected source=weight,… with weights ≥ 0, got '{part}'")
    return out


RELATION_WORDS = re.compile(r"\b(above|below|left|right)\b")


def reflection_lines(text: str) -> list:
    """The instruction's reflection (after `[Reflexion]:`), one stripped, non-empty line per edit."""
    return [line.strip() for line in text.partition("[Reflexion]:")[2].splitlines() if line.strip()]


def op_weight(text: str, weights: dict) -> float:
    """The largest weight among the edits the reflection's lines ask for: their verbs (add, remove, replace, move), and
    `add-rel` for an Add placed relative to another object ("Add a cross above the red star")."""
    ops = set()
    for line in reflection_lines(text):
        verb = line.split(maxsplit=1)[0].lower()
        ops.add(verb)
        if verb == "add" and RELATION_WORDS.search(line.lower()):
            ops.add("add-rel")
    return max([weights.get(op, 1.0) for op in ops] or [1.0])


def words(text: str) -> list:
    """The TypeScript tokenizer's words: lower case, split on anything but letters and digits."""
    return [w for w in re.split(r"[^a-z0-9]+", text.lower()) if w]


def instruction(rec: dict) -> tuple:
    refined = rec.get("refinedPrompt") or rec["prompt"]
    return refined, f"{refined} [Reflexion]: {rec['reflection']}"


def load_genref(folder: str, cache: str) -> dict:
    """Every triplet of the folder's shards as arrays (cached as .npz beside the shards, keyed by their hashes)."""
    with open(os.path.join(folder, "index.json")) as f:
        index = json.load(f)
    if index.get("format") != "genref-shapes":
        raise SystemExit(f"{folder}: index.json is not a GenRef-Shapes index")
    digest = hashlib.sha256("".join(s["sha256"] for s in index["shards"]).encode()).hexdigest()[:16]
    if os.path.exists(cache):
        z = np.load(cache, allow_pickle=False)
        if str(z["digest"]) == digest:
            return {k: z[k] for k in z.files}
    from PIL import Image
    flawed, enhanced, texts, refined, sources, keys = [], [], [], [], [], []
    shards = sorted(glob.glob(os.path.join(folder, "genref-*.tar")))
    t0 = time.time()
    for path in shards:
        with tarfile.open(path) as tf:
            parts = {}
            for m in tf:
                if not m.isfile():
                    continue
                key, _, ext = m.name.partition(".")
                parts.setdefault(key, {})[ext] = tf.extractfile(m).read()
                p = parts[key]
                if len(p) == 3:
                    rec = json.loads(p["json"])
                    if not rec.get("reflection"):
                        del parts[key]
                        continue
                    r, text = instruction(rec)
                    flawed.append(np.asarray(Image.open(io.BytesIO(p["flawed.png"])).convert("RGB")))
                    enhanced.append(np.asarray(Image.open(io.BytesIO(p["enhanced.png"])).convert("RGB")))
                    texts.append(text)
                    refined.append(r)
                    sources.append(rec["source"])
                    keys.append(rec["key"])
                    del parts[key]
        print(f"read {path}: {len(texts)} triplets so far ({time.time() - t0:.0f}s)", flush=True)
    data = {"flawed": np.stack(flawed), "enhanced": np.stack(enhanced), "text": np.array(texts),
            "refined": np.array(refined), "source": np.array(sources), "key": np.array(keys),
            "digest": np.array(digest)}
    np.savez(cache, **data)
    return data


def load_builds(folders: list) -> dict:
    """Several GenRef-Shapes builds as one set (each cached beside its own shards); keys must not repeat."""
    parts = [load_genref(f, os.path.join(f, "corrector-cache.npz")) for f in folders]
    data = {k: np.concatenate([p[k] for p in parts]) for k in parts[0] if k != "digest"}
    if len(set(data["key"].tolist())) != len(data["key"]):
        raise SystemExit(f"{' '.join(folders)}: triplet keys repeat across the builds (build each with its own --seed)")
    return data


def build_vocab(base_vocab: list, texts) -> list:
    seen = set(base_vocab)
    new = sorted({w for t in texts for w in words(str(t)) if w not in seen})
    return list(base_vocab) + new


def encode(texts, vocab: list, max_tokens: int) -> tuple:
    ids = {w: i for i, w in enumerate(vocab)}
    out = np.zeros((len(texts), max_tokens), dtype=np.int64)
    fits = np.ones(len(texts), dtype=bool)
    for i, t in enumerate(texts):
        ws = words(str(t))
        if len(ws) > max_tokens:
            fits[i] = False
            ws = ws[:max_tokens]
        out[i, :len(ws)] = [ids[w] for w in ws]
    return torch.from_numpy(out), fits


def held_out(keys) -> np.ndarray:
    """About 1 % of triplets, by a hash of the key (stable whatever the order)."""
    return np.array([int(hashlib.md5(str(k).encode()).hexdigest()[:4], 16) % 100 == 0 for k in keys])


# ---------------------------------------------------------------------------------------------------------------
# model

def region_channels(cfg: dict) -> int:
    """0 without an edit region, 1 for one mask, 2 for erase and draw (a checkpoint's cfg says `region: true` for 1)."""
    return int(cfg.get("region_channels", 1)) if cfg.get("region", False) else 0


def input_region_channels(cfg: dict) -> int:
    """The model's region input: the mask channels, then the colour hint's three (RGB) and the class hint's six
    (one-hot) when it has them."""
    return region_channels(cfg) + (3 if cfg.get("color_hint") else 0) + (len(CLASSES) if cfg.get("class_hint") else 0)


def build_model(cfg: dict, gate_bias: float = -6.0) -> CorrectorUNet:
    return CorrectorUNet(cfg["vocab_size"], cfg["max_tokens"], cond=cfg["cond"], gate=cfg.get("gate", False),
                         gate_bias=gate_bias, region=input_region_channels(cfg), ch=tuple(cfg["channels"]),
                         text_layers=cfg["text_layers"])


def init_from_generator(model: CorrectorUNet, onnx_path: str, vocab: list, channels) -> dict:
    """The generator's weights, words matched by name; the image's stem channels start at zero; token positions
    beyond the generator's length start as copies of its positions (so order stays readable past them)."""
    with open(os.path.splitext(onnx_path)[0] + ".json") as f:
        gen_tokens = json.load(f)["maxTokens"]
    gen = FlowUNet(len(vocab), gen_tokens, ch=tuple(channels))
    info = init_from_onnx(gen, onnx_path, vocab)
    sd = gen.state_dict()
    pos = sd["text.pos"]
    reps = math.ceil(model.text.pos.shape[2] / pos.shape[2])
    sd["text.pos"] = pos.repeat(1, 1, reps)[:, :, :model.text.pos.shape[2]]
    if model.cond == "channels":
        w = torch.zeros_like(model.stem.weight)
        w[:, :3] = sd["stem.weight"]
        sd["stem.weight"] = w
    missing, unexpected = model.load_state_dict(sd, strict=False)
    if unexpected:
        raise SystemExit(f"unexpected weights {unexpected[:5]}")
    info["fresh"] = missing
    return info


def velocity_loss(model, x0, tokens, image, t, eps, weight=None, region=None):
    tb = t[:, None, None, None]
    xt = (1 - tb) * x0 + tb * eps
    err = (model(xt, t, tokens, image, region) - (eps - x0)) ** 2
    return err.mean() if weight is None else (err * weight).mean()


def changed_pixels(flawed_u8: torch.Tensor, enhanced_u8: torch.Tensor) -> torch.Tensor:
    """[B,1,H,W] bool: where the two images differ by more than 8 of 255 in any channel (what the edit changed)."""
    return (flawed_u8.int() - enhanced_u8.int()).abs().amax(dim=1, keepdim=True) > 8


def edit_weight(flawed_u8: torch.Tensor, enhanced_u8: torch.Tensor, w: float) -> torch.Tensor | None:
    """Per-pixel loss weight [B,1,H,W]: `w` where the two images differ (grown by a pixel), 1 elsewhere, scaled to mean
    1 per image. The edit is a few dozen of 1,024 pixels; unweighted, the loss is nearly all copying."""
    if w == 1.0:
        return None
    grown = F.max_pool2d(changed_pixels(flawed_u8, enhanced_u8).float(), 3, stride=1, padding=1)
    weight = 1.0 + (w - 1.0) * grown
    return weight / weight.mean(dim=(2, 3), keepdim=True)


def object_pixels(u8: torch.Tensor) -> torch.Tensor:
    """[B,1,H,W] bool: pixels more than 40 of 255 from the mid-gray background in some channel (a shape, or its edge)."""
    return (u8.int() - 128).abs().amax(dim=1, keepdim=True) > 40


@torch.no_grad()
def edit_regions(flawed_u8: torch.Tensor, enhanced_u8: torch.Tensor, split: bool = False, hints: bool = False,
                 min_pixels: int = 3) -> tuple[torch.Tensor, torch.Tensor | None]:
    """What the corrector is told to change, as the embedded backend draws it at inference from the objects an edit
    takes away, changes or puts (boxes, not outlines): [N,C,H,W] uint8, 1 inside the bounding box of each connected
    region (8-neighbour) where the two images differ, regions under `min_pixels` left out. `split`: two channels, the
    changed pixels that are a shape in the flawed image (what goes away or changes) and in the enhanced one (what is
    drawn). `hints`: also [N,1,H,W] uint8, each drawn region's box filled with its colour index (1-10, PALETTE order;
    0 none): the palette colour most of its pixels are nearest to (the background gray counts, so anti-aliased edges
    vote for nothing)."""
    warnings.filterwarnings("ignore", message="scatter_reduce")    # "in beta" in torch 1.13; used as documented
    n, _, h, w = flawed_u8.shape
    boxes = torch.zeros(n, 2 if split else 1, h, w, dtype=torch.uint8)
    hint = torch.zeros(n, 1, h, w, dtype=torch.uint8) if hints else None
    for s in range(0, n, 2048):
        f, e = flawed_u8[s:s + 2048], enhanced_u8[s:s + 2048]
        diff = changed_pixels(f, e)
        drawn = components(diff & object_pixels(e)) if split or hints else None
        for ch, (regions, _) in enumerate([components(diff & object_pixels(f)), drawn] if split else [components(diff)]):
            for k, (y0, x0, y1, x1), m in regions:
                if m >= min_pixels:
                    boxes[s + k, ch, y0:y1 + 1, x0:x1 + 1] = 1
        if hints and drawn[0]:
            regions, (b, y, x, inv) = drawn
            nearest = torch.cdist(e[b, :, y, x].float(), HINT_REF).argmin(1)     # [P] 0 = background
            votes = torch.zeros(len(regions), len(HINT_REF), dtype=torch.long)
            votes.index_put_((inv, nearest), torch.ones_like(nearest), accumulate=True)
            votes[:, 0] = 0
            for (k, (y0, x0, y1, x1), m), c, v in zip(regions, votes.argmax(1).tolist(), votes.amax(1).tolist()):
                if m >= min_pixels and v > 0:
                    hint[s + k, 0, y0:y1 + 1, x0:x1 + 1] = c
    return boxes, hint


def components(mask: torch.Tensor):
    """The connected regions (8-neighbour) of [N,1,H,W] bool `mask`: (image index, (y0, x0, y1, x1) bounding box,
    pixel count) per region, and each on-pixel's (b, y, x) with its region's number."""
    n, _, h, w = mask.shape
    ids = torch.arange(1, h * w + 1, dtype=torch.float32).view(1, 1, h, w)
    on = mask.float()
    lab = ids * on
    while True:     # every pixel of a region takes the region's largest id
        nxt = F.max_pool2d(lab, 3, stride=1, padding=1) * on
        if torch.equal(nxt, lab):
            break
        lab = nxt
    b, _, y, x = torch.nonzero(lab, as_tuple=True)
    key = b * (h * w + 1) + lab[b, 0, y, x].long()
    uniq, inv, size = torch.unique(key, return_inverse=True, return_counts=True)
    box = torch.stack([torch.full((len(uniq),), h * w, dtype=torch.long).scatter_reduce(0, inv, v, "amin")
                       for v in (y, x)] +
                      [torch.full((len(uniq),), -1, dtype=torch.long).scatter_reduce(0, inv, v, "amax")
                       for v in (y, x)], 1)
    regions = list(zip((uniq // (h * w + 1)).tolist(), box.tolist(), size.tolist()))
    return regions, (b, y, x, inv)


# PALETTE (common.py, ShapeWorld's colours in its order) is exported in the model's meta (`colorHint`) so that the
# runtime writes the hint with the very values the model was trained on.
# hint index -> RGB in [-1, 1]; index 0 is "no hint" (0, the background gray, which is no palette colour)
HINT_RGB = torch.tensor([(0.0, 0.0, 0.0)] + [tuple(c / 127.5 - 1 for c in rgb) for _, rgb in PALETTE])
# the colours a drawn pixel is read as: index 0 the background gray (votes for nothing), then PALETTE
HINT_REF = torch.tensor([BACKGROUND] + [rgb for _, rgb in PALETTE], dtype=torch.float32)


def hint_rgb(index_u8: torch.Tensor) -> torch.Tensor:
    """[B,1,H,W] colour indices -> [B,3,H,W] the model's hint channels."""
    return HINT_RGB[index_u8[:, 0].long()].permute(0, 3, 1, 2).contiguous()


# ShapeWorld's six classes (src/shapeworld/shapes.ts SHAPES), in its order; exported in the model's meta
# (`classHint`): plane k of the class hint is CLASSES[k].
CLASSES = ["circle", "square", "triangle", "star", "diamond", "cross"]
COLOR_NAMES = [n for n, _ in PALETTE]
DRAWN = re.compile(r"^(?:add (?:a|an)|replace the (?:\w+ )?\w+ with (?:a|an)|move the) (?:(\w+) )?(\w+)\b")


def drawn_refs(text: str) -> list:
    """(class, colour or None) of each object the reflection's lines draw: what an Add puts, what a Replace puts in,
    what a Move moves (a Remove draws nothing)."""
    out = []
    for line in reflection_lines(text):
        m = DRAWN.match(line.lower())
        if not m:
            continue
        first, second = m.groups()
        if first in COLOR_NAMES and second in CLASSES:
            out.append((second, first))
        elif first is None and second in CLASSES:
            out.append((second, None))
        elif first in CLASSES:          # "Move the star above ..." read as (star, above)
            out.append((first, None))
    return out


@torch.no_grad()
def class_hints(draw_boxes: torch.Tensor, color_index: torch.Tensor | None, texts) -> torch.Tensor:
    """[N,1,H,W] uint8 class index (1-6, CLASSES order; 0 none) over the draw boxes: every box takes the class of the
    objects the reflection draws when they are all one class; else a box takes the class of the one drawn object of
    its colour hint's colour (when the reflection names that colour for one class only); else none."""
    out = torch.zeros_like(draw_boxes, dtype=torch.uint8)
    for i, text in enumerate(texts):
        refs = drawn_refs(str(text))
        classes = {c for c, _ in refs}
        if len(classes) == 1:
            out[i][draw_boxes[i] > 0] = CLASSES.index(classes.pop()) + 1
        elif len(classes) > 1 and color_index is not None:
            for col in {c for _, c in refs if c}:
                named = {c for c, k in refs if k == col}
                if len(named) == 1:
                    out[i][(color_index[i] == COLOR_NAMES.index(col) + 1) & (draw_boxes[i] > 0)] = CLASSES.index(named.pop()) + 1
    return out


def class_onehot(index_u8: torch.Tensor) -> torch.Tensor:
    """[B,1,H,W] class indices -> [B,6,H,W] the model's class-hint channels (1 on the box's class plane)."""
    return F.one_hot(index_u8[:, 0].long(), len(CLASSES) + 1)[..., 1:].permute(0, 3, 1, 2).float().contiguous()


SILHOUETTE = 64     # the flat gray of a silhouette (0-255): apart from the background (128), black (15) and white (245)


def silhouette(image: torch.Tensor, flawed_u8: torch.Tensor, region: torch.Tensor) -> torch.Tensor:
    """`image` ([-1, 1]) with the object pixels of `flawed_u8` inside both region channels (erase and draw) set to the
    flat SILHOUETTE gray. The runtime does the same (src/backends/embedded/corrector.ts)."""
    inside = (region[:, 0:1] > 0) & (region[:, 1:2] > 0) & object_pixels(flawed_u8)
    return torch.where(inside, torch.tensor(SILHOUETTE / 127.5 - 1.0), image)


def grown_boxes(boxes_u8: torch.Tensor, grow) -> torch.Tensor:
    """Boxes as floats, each row grown by its own 0-2 pixels (`grow`, [B] ints)."""
    r0 = boxes_u8.float()
    r1 = F.max_pool2d(r0, 3, stride=1, padding=1)
    r2 = F.max_pool2d(r0, 5, stride=1, padding=2)
    g = grow.view(-1, 1, 1, 1)
    return torch.where(g == 0, r0, torch.where(g == 1, r1, r2))


def region_parts(rows, grow_by, boxes, hints=None, classes=None):
    """The edit-region input of `rows`, every box grown by its row's `grow_by` pixels: the mask planes, then the
    colour-hint planes and the class planes (each None when the model reads no such hint)."""
    mask = grown_boxes(boxes[rows], grow_by)
    hint = hint_rgb(grown_boxes(hints[rows], grow_by).byte()) if hints is not None else None
    cls = class_onehot(grown_boxes(classes[rows], grow_by).byte()) if classes is not None else None
    return mask, hint, cls


@torch.no_grad()
def eval_loss(model, enhanced, flawed, tokens, idx, seed=1234, boxes=None, silhouettes=False, hints=None,
              classes=None) -> float:
    g = torch.Generator().manual_seed(seed)
    was = model.training
    model.eval()
    tot, n = 0.0, 0
    for i in range(0, len(idx), 64):
        j = idx[i:i + 64]
        x0 = images_to_float(enhanced[j])
        eps = torch.randn(x0.shape, generator=g)
        t = sample_t(len(j), g)
        image = images_to_float(flawed[j])
        region = None
        if boxes is not None:
            mask, hint, cls = region_parts(j, torch.ones(len(j), dtype=torch.long), boxes, hints, classes)
            if silhouettes:
                image = silhouette(image, flawed[j], mask)
            region = torch.cat([p for p in (mask, hint, cls) if p is not None], 1)
        tot += velocity_loss(model, x0, tokens[j], image, t, eps, region=region).item() * len(j)
        n += len(j)
    model.train(was)
    return tot / max(n, 1)


def compact(sd: dict, dtype) -> dict:
    return {k: (v.to(dtype) if torch.is_floating_point(v) else v) for k, v in sd.items()}


# ---------------------------------------------------------------------------------------------------------------

def export(cfg, ema_state, args, vocab, summary, sample_tokens):
    model = build_model(cfg)
    model.load_state_dict(ema_state)
    model.eval()
    g = torch.Generator().manual_seed(0)
    s = 32
    rc = input_region_channels(cfg)
    region = rc > 0
    dummy = (torch.randn(2, 3, s, s, generator=g), torch.rand(2, generator=g), sample_tokens[:2].clone(),
             torch.rand(2, 3, s, s, generator=g) * 2 - 1) + ((torch.rand(2, rc, s, s, generator=g).round(),) if region else ())
    names = ["x", "t", "tokens", "image"] + (["region"] if region else [])
    info = export_onnx(model, dummy, args.out, names, ["v"])
    x = torch.randn(3, 3, s, s, generator=g)
    t = torch.tensor([1.0, 0.5, 0.05])
    tok = torch.cat([sample_tokens[:2], null_tokens(1, cfg["max_tokens"])], 0)
    img = torch.rand(3, 3, s, s, generator=g) * 2 - 1
    feeds = {"x": x, "t": t, "tokens": tok, "image": img}
    if region:
        feeds["region"] = torch.zeros(3, rc, s, s)
        feeds["region"][:2, :, 8:20, 4:16] = 1.0
    with torch.no_grad():
        v = model(*feeds.values())
    info["check"] = check_with_onnxruntime_node(args.out, feeds, {"v": v})
    print("onnx numeric check:", info["check"])
    summary["onnx"] = info
    meta = {
        "name": model_name(args.out),
        "kind": "corrector",
        "size": s,
        "maxTokens": cfg["max_tokens"],
        "vocab": vocab,
        "padId": 0,
        "nullId": 1,
        "nullTokens": null_tokens(1, cfg["max_tokens"])[0].tolist(),
        "steps": args.suggest_steps,
        "guidance": args.suggest_guidance,
        "cond": cfg["cond"],
        "gate": bool(cfg.get("gate", False)),
        "region": region,
        **({"regionChannels": region_channels(cfg)} if region else {}),
        **({"silhouette": SILHOUETTE} if cfg.get("silhouette") else {}),
        **({"colorHint": dict(PALETTE)} if cfg.get("color_hint") else {}),
        **({"classHint": CLASSES} if cfg.get("class_hint") else {}),
        "instruction": "refined prompt [Reflexion]: reflection (instructions joined by newlines)",
        "convention": CONVENTION,
        "conventionDetail": {
            "forward": "x_t = (1 - t) * x0 + t * eps, x0 in [-1, 1] (pixel/127.5 - 1), eps ~ N(0, I)",
            "prediction": "v = eps - x0",
            "sampling": "x = eps at t = 1; Euler steps to t = 0, as the generator",
            "cfg": "v = v(x, t, null, image) + guidance * (v(x, t, instruction, image) - v(x, t, null, image))",
            "image": "the previous image in [-1, 1], NCHW RGB, in every row (guidance is on the instruction only)",
            **({"region": ("1 inside the boxes the edit changes (objects it takes away or changes, grown by a pixel; "
                           "where it puts new ones), else 0; all zeros when unknown; in every row") if rc == 1 else
                          ("channel 0: 1 inside the boxes of the objects the edit takes away or changes (grown by a "
                           "pixel); channel 1: 1 inside the boxes where it draws (new, moved or changed objects); "
                           "all zeros when unknown; in every row" +
                           ("; channels 2-4: inside a draw box whose object's colour the edit names, that colour's "
                            "colorHint RGB / 127.5 - 1, else 0" if cfg.get("color_hint") else "") +
                           ("; channels 5-10: inside a draw box, 1 on the plane of its object's class (classHint "
                            "order), else 0" if cfg.get("class_hint") else ""))} if region else {}),
            **({"silhouette": f"the image's pixels inside both region channels that are more than 40 of 255 from the "
                              f"background gray in some channel are set to ({SILHOUETTE}, {SILHOUETTE}, {SILHOUETTE})"}
               if cfg.get("silhouette") else {}),
        },
        "inputs": {"x": {"dtype": "float32", "shape": ["B", 3, s, s]},
                   "t": {"dtype": "float32", "shape": ["B"]},
                   "tokens": {"dtype": "int64", "shape": ["B", cfg["max_tokens"]], "pad": 0},
                   "image": {"dtype": "float32", "shape": ["B", 3, s, s], "layout": "NCHW RGB in [-1, 1]"},
                   **({"region": {"dtype": "float32", "shape": ["B", rc, s, s]}} if region else {})},
        "outputs": {"v": {"dtype": "float32", "shape": ["B", 3, s, s]}},
        "opset": 14,
        "params": summary.get("params"),
        "trainingSteps": summary.get("steps"),
        "trainingMinutes": round(summary.get("wall_seconds", 0) / 60, 2),
        "evalLoss": summary.get("eval_loss"),
        "seed": args.seed,
        "exported": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    write_json(os.path.splitext(args.out)[0] + ".json", meta)


def main(argv=None):
    args = parse_args(argv)
    setup_torch(args.seed, args.threads)
    name = model_name(args.out)
    ckpt_path, log_path, summary_path = run_files(args.out, os.path.join(TRAINING_DIR, "resume"))
    ckpt_path = args.ckpt or ckpt_path

    data = load_builds(args.data)
    with open(os.path.splitext(args.init_onnx)[0] + ".json") as f:
        gen_meta = json.load(f)
    ck = None
    if args.resume or args.export_only:
        if os.path.exists(ckpt_path):
            ck = torch.load(ckpt_path, map_location="cpu")
            print(f"resuming from {ckpt_path}: step {ck['step']}, {ck['elapsed'] / 60:.1f} min trained")
        elif args.export_only:
            raise SystemExit(f"--export-only: no checkpoint at {ckpt_path}")
    grow = False        # a gate added to a checkpoint trained without one (or started again)
    add_region = False  # an edit-region channel added to a checkpoint trained without one
    split_region = False  # a one-channel region split into erase and draw
    add_hint = False      # colour-hint channels added to a checkpoint trained without them
    add_class = False     # class-hint channels added to a checkpoint trained without them
    if ck is not None:
        cfg, vocab = dict(ck["cfg"]), ck["vocab"]
        grow = ((args.gate and not cfg.get("gate", False)) or args.gate_reset is not None) and not args.export_only
        if grow:
            cfg["gate"] = True
        add_region = (args.region or args.region_split) and not cfg.get("region", False) and not args.export_only
        if add_region:
            cfg["region"] = True
        split_region = args.region_split and region_channels(cfg) != 2 and not args.export_only
        if split_region:
            cfg["region"], cfg["region_channels"] = True, 2
        add_hint = args.color_hint and not cfg.get("color_hint") and not args.export_only
        add_class = args.class_hint and not cfg.get("class_hint") and not args.export_only
    else:
        vocab = build_vocab(gen_meta["vocab"], data["text"])
        cfg = {"vocab_size": len(vocab), "max_tokens": args.max_tokens, "channels": [32, 64, 128], "text_layers": 2,
               "cond": args.cond, "gate": args.gate, "region": args.region or args.region_split,
               "region_channels": 2 if args.region_split else 1}
        add_hint = args.color_hint
        add_class = args.class_hint
    if add_hint:
        cfg["color_hint"] = True
    if add_class:
        cfg["class_hint"] = True
    if cfg.get("class_hint") and not cfg.get("color_hint"):
        raise SystemExit("--class-hint goes with the colour hint (--color-hint)")
    if cfg.get("color_hint") and region_channels(cfg) != 2:
        raise SystemExit("--color-hint needs the two-channel edit region (--region-split)")
    if args.silhouette and not args.export_only:
        cfg["silhouette"] = True
    if cfg.get("silhouette") and region_channels(cfg) != 2:
        raise SystemExit("--silhouette needs the two-channel edit region (--region-split)")
    unknown = {w for t in data["text"] for w in words(str(t))} - set(vocab)
    if unknown:
        raise SystemExit(f"the data has words the checkpoint's vocab lacks: {sorted(unknown)[:10]}")
    tokens, fits = encode(data["text"], vocab, cfg["max_tokens"])
    refined_tokens, _ = encode(data["refined"], vocab, cfg["max_tokens"])
    flawed = torch.from_numpy(data["flawed"].transpose(0, 3, 1, 2).copy())
    enhanced = torch.from_numpy(data["enhanced"].transpose(0, 3, 1, 2).copy())
    boxes, hints = (edit_regions(flawed, enhanced, split=region_channels(cfg) == 2, hints=bool(cfg.get("color_hint")))
                    if cfg.get("region") else (None, None))
    classes = class_hints(boxes[:, 1:2], hints, data["text"]) if cfg.get("class_hint") else None
    hold = held_out(data["key"])
    generated = np.isin(data["source"], ["model", "refine", "edit", "run"])
    per_triplet = np.array([args.source_weights.get(str(s), 1.0) for s in data["source"]])
    if args.op_weights:
        per_triplet = per_triplet * np.array([op_weight(str(t), args.op_weights) for t in data["text"]])
    train_idx = np.nonzero(~hold & fits & (per_triplet > 0))[0]
    val_idx = torch.from_numpy(np.nonzero(hold & fits & (per_triplet > 0))[0])
    val_gen_idx = torch.from_numpy(np.nonzero(hold & fits & generated & (per_triplet > 0))[0])
    if not len(train_idx):
        raise SystemExit("no triplet to train on (every source weighted 0, or none fits)")
    weights = torch.from_numpy(per_triplet[train_idx])
    is_render = torch.from_numpy(data["source"] == "rule")
    train_idx = torch.from_numpy(train_idx)
    counts = {str(s): int(n) for s, n in zip(*np.unique(data["source"], return_counts=True))}
    print(f"data: {len(fits)} triplets {counts}, {int((~fits).sum())} longer than {cfg['max_tokens']} words left out, "
          f"{len(val_idx)} held out; vocab {len(vocab)}")

    model = build_model(cfg, **({"gate_bias": args.gate_reset} if args.gate_reset is not None else {}))
    n_params = count_params(model)
    print(f"model: corrector ({cfg['cond']}), {n_params / 1e6:.3f}M parameters")
    init_info = ck.get("init") if ck else None
    if ck is None:
        init_info = init_from_generator(model, args.init_onnx, vocab, cfg["channels"])
        print(f"initialised from {args.init_onnx}; new: {init_info['fresh']}; new words: {' '.join(init_info['new_words'])}")
    groups = [{"params": list(model.parameters()), "lr_mult": 1.0}]
    if model.gate is not None and args.gate_lr_mult != 1.0:
        groups = [{"params": [p for n, p in model.named_parameters() if not n.startswith("gate.")], "lr_mult": 1.0},
                  {"params": list(model.gate.parameters()), "lr_mult": args.gate_lr_mult, "weight_decay": 0.0}]
    opt = torch.optim.AdamW(groups, lr=args.lr, weight_decay=args.weight_decay, betas=(0.9, 0.99))
    step, elapsed0 = 0, 0.0
    history = []
    schedule = {"start_step": 0, "start_elapsed": 0.0}     # where the current cosine schedule began
    if ck is not None:
        ema_sd = {k: v.float() if torch.is_floating_point(v) else v for k, v in ck["ema"].items()}
        if grow:        # the gate (new, or started again) from its initial state
            ema_sd = {k: v for k, v in ema_sd.items() if not k.startswith("gate.")}
        if add_region:  # the region's stem weights start at zero: step 0 is the checkpoint's model
            w = torch.zeros_like(model.stem.weight)
            w[:, :ema_sd["stem.weight"].shape[1]] = ema_sd["stem.weight"]
            ema_sd["stem.weight"] = w
        if split_region and not add_region:  # erase and draw both read as the one mask did
            old = ema_sd["stem.weight"]
            ema_sd["stem.weight"] = torch.cat([old, old[:, 6:7]], 1)
        if add_hint:    # the hint's stem weights start at zero: step 0 is the checkpoint's model
            old = ema_sd["stem.weight"]
            ema_sd["stem.weight"] = torch.cat([old, torch.zeros(old.shape[0], 3, *old.shape[2:])], 1)
        if add_class:   # the same for the class hint's six
            old = ema_sd["stem.weight"]
            ema_sd["stem.weight"] = torch.cat([old, torch.zeros(old.shape[0], len(CLASSES), *old.shape[2:])], 1)
        missing, unexpected = model.load_state_dict(ema_sd, strict=not grow)
        if unexpected or any(not k.startswith("gate.") for k in missing):
            raise SystemExit(f"checkpoint does not fit the model: missing {missing[:5]}, unexpected {unexpected[:5]}")
        step, elapsed0, history = ck["step"], ck["elapsed"], ck.get("history", [])
        if grow or add_region or split_region or add_hint or add_class:  # new parameters: a fresh optimizer and
            schedule = {"start_step": step, "start_elapsed": elapsed0}     # schedule from here
            what = ("edit region" if add_region else "erase/draw region" if split_region else
                    "colour hint" if add_hint else "class hint" if add_class else "copy gate")
            print(f"{what} {'started again' if args.gate_reset is not None else 'added'} at step {step}; "
                  "the schedule starts again")
        else:
            if len(ck["opt"]["param_groups"]) != len(opt.param_groups):
                raise SystemExit(f"{ckpt_path} was trained with{'out' if len(ck['opt']['param_groups']) == 1 else ''} "
                                 "its own gate learning rate: resume with the run's --gate-lr-mult")
            opt_state_restore(opt, ck["opt"])
            schedule = ck.get("schedule", schedule)
            if args.new_schedule:
                schedule = {"start_step": step, "start_elapsed": elapsed0}
                print(f"a new schedule from step {step} at lr {args.lr:g}")
    ema = EMA(model, args.ema)
    gen = torch.Generator().manual_seed(args.seed + 1000003 * step)

    summary = {"kind": "corrector", "name": name, "command": command_line(), "data": [os.path.relpath(d, REPO_ROOT) for d in args.data],
               "data_count": int(len(fits)), "generated_count": int(generated.sum()), "vocab_size": len(vocab),
               "max_tokens": cfg["max_tokens"], "params": n_params, "cond": cfg["cond"], "batch": args.batch,
               "lr": args.lr, "minutes_budget": args.minutes, "seed": args.seed, "ema": args.ema,
               "p_null": args.p_null, "p_no_reflection": args.p_no_reflection, "p_no_image": args.p_no_image,
               "source_weights": args.source_weights, "source_counts": counts, "cond_noise": args.cond_noise,
               "edit_weight": args.edit_weight, "op_weights": args.op_weights, "gate": bool(cfg.get("gate", False)),
               "region": bool(cfg.get("region", False)), "region_channels": region_channels(cfg), "silhouette": bool(cfg.get("silhouette")), "p_no_region": args.p_no_region,
               "color_hint": bool(cfg.get("color_hint")), "p_no_hint": args.p_no_hint, "class_hint": bool(cfg.get("class_hint")),
               "p_no_class": args.p_no_class, "torch": torch.__version__,
               "init": init_info, "history": history, "out": args.out}

    def checkpoint():
        save_checkpoint(ckpt_path, {"cfg": cfg, "vocab": vocab, "ema": compact(ema.state_dict(), torch.float16),
                                    "opt": opt_state_compact(opt), "step": step, "elapsed": timer.elapsed(), "schedule": schedule,
                                    "init": init_info, "history": history, "args": vars(args)})
        print(f"checkpoint: {ckpt_path} (step {step}, {os.path.getsize(ckpt_path) / 1e6:.1f} MB)", flush=True)

    timer = Timer(offset=elapsed0)
    budget = args.minutes * 60.0
    null = null_tokens(1, cfg["max_tokens"])[0]
    if not args.export_only:
        log = CsvLog(log_path, ["step", "elapsed_s", "loss", "lr", "steps_per_s", "val_loss", "val_gen_loss"],
                     append=ck is not None)
        stop = stop_on_signals()
        run_start_step, run_start = step, time.time()
        history.append({"start_step": step, "start_elapsed": round(elapsed0, 1), "command": command_line()})
        model.train()
        loss_acc, n_acc, last_t, last_step, last_ckpt = 0.0, 0, time.time(), step, time.time()
        while not stop["flag"] and timer.elapsed() < budget and (args.max_steps <= 0 or step < args.max_steps):
            pick = torch.multinomial(weights, args.batch, replacement=True, generator=gen)
            idx = train_idx[pick]
            b = len(idx)
            x0 = images_to_float(enhanced[idx])
            image = images_to_float(flawed[idx])
            scale = torch.rand(b, 1, 1, 1, generator=gen) * args.cond_noise * is_render[idx].float().view(b, 1, 1, 1)
            image = image + torch.randn(image.shape, generator=gen) * scale
            tok = tokens[idx].clone()
            u = torch.rand(b, generator=gen)
            no_refl = u < args.p_no_reflection
            tok[no_refl] = refined_tokens[idx][no_refl]
            drop = (u >= args.p_no_reflection) & (u < args.p_no_reflection + args.p_null)
            tok[drop] = null
            no_img = torch.rand(b, generator=gen) < args.p_no_image
            image[no_img] = 0.0
            region = None
            if boxes is not None:
                mask, hint, cls = region_parts(idx, torch.randint(0, 3, (b,), generator=gen), boxes, hints, classes)
                no_region = no_img | (torch.rand(b, generator=gen) < args.p_no_region)
                mask[no_region] = 0.0
                if cfg.get("silhouette"):
                    image = silhouette(image, flawed[idx], mask)
                # each hint is dropped on its own (the draws in this order keep a seed's batches as they were)
                if hint is not None:
                    hint[no_region | (torch.rand(b, generator=gen) < args.p_no_hint)] = 0.0
                if cls is not None:
                    cls[no_region | (torch.rand(b, generator=gen) < args.p_no_class)] = 0.0
                region = torch.cat([p for p in (mask, hint, cls) if p is not None], 1)
            t = sample_t(b, gen)
            eps = torch.randn(x0.shape, generator=gen)
            span = budget - schedule["start_elapsed"]
            progress = (timer.elapsed() - schedule["start_elapsed"]) / span if span > 0 else 1.0
            lr = cosine_lr(args.lr, progress, step - schedule["start_step"], args.warmup)
            for gp in opt.param_groups:
                gp["lr"] = lr * gp.get("lr_mult", 1.0)
            loss = velocity_loss(model, x0, tok, image, t, eps, edit_weight(flawed[idx], enhanced[idx], args.edit_weight),
                                 region)
            lv = optimizer_step(model, opt, loss, step + 1)
            step += 1
            ema.update(model, step)
            loss_acc += lv
            n_acc += 1
            if step % args.log_every == 0:
                now = time.time()
                sps = (step - last_step) / max(now - last_t, 1e-9)
                log.write({"step": step, "elapsed_s": round(timer.elapsed(), 1), "loss": round(loss_acc / n_acc, 5),
                           "lr": f"{lr:.3e}", "steps_per_s": round(sps, 3), "val_loss": "", "val_gen_loss": ""})
                print(f"step {step} {timer.elapsed() / 60:.1f}min loss {loss_acc / n_acc:.4f} lr {lr:.2e} {sps:.2f} it/s",
                      flush=True)
                summary["final_loss"] = loss_acc / n_acc
                loss_acc, n_acc, last_t, last_step = 0.0, 0, now, step
            if time.time() - last_ckpt >= args.ckpt_every * 60:
                checkpoint()
                last_ckpt = time.time()
        run_secs = time.time() - run_start
        ev = build_model(cfg)
        ev.load_state_dict(ema.state_dict())
        sil = bool(cfg.get("silhouette"))
        summary["eval_loss"] = eval_loss(ev, enhanced, flawed, tokens, val_idx, boxes=boxes, silhouettes=sil, hints=hints,
                                         classes=classes)
        summary["eval_loss_generated"] = eval_loss(ev, enhanced, flawed, tokens, val_gen_idx, boxes=boxes,
                                                   silhouettes=sil, hints=hints, classes=classes)
        log.write({"step": step, "elapsed_s": round(timer.elapsed(), 1), "loss": round(summary.get("final_loss", float("nan")), 5),
                   "lr": "", "steps_per_s": round((step - run_start_step) / max(run_secs, 1e-9), 3),
                   "val_loss": round(summary["eval_loss"], 5), "val_gen_loss": round(summary["eval_loss_generated"], 5)})
        log.close()
        history[-1].update({"end_step": step, "seconds": round(run_secs, 1)})
        summary["steps_per_s"] = (step - run_start_step) / max(run_secs, 1e-9)
        print(f"done: {step - run_start_step} steps this run; total {step}; EMA val loss {summary['eval_loss']:.4f} "
              f"(generator images {summary['eval_loss_generated']:.4f})", flush=True)
        checkpoint()
    elif os.path.exists(summary_path):
        with open(summary_path) as f:
            prev = json.load(f)
        for k in ("final_loss", "eval_loss", "eval_loss_generated", "steps_per_s"):
            if k in prev:
                summary[k] = prev[k]
    summary.update({"steps": step, "wall_seconds": timer.elapsed() if not args.export_only else elapsed0,
                    "samples_seen": step * args.batch, "checkpoint": os.path.relpath(ckpt_path, REPO_ROOT),
                    "log": os.path.relpath(log_path, REPO_ROOT), "history": history})
    ema_state = ema.state_dict() if not args.export_only else model.state_dict()
    export(cfg, ema_state, args, vocab, summary, tokens[:2])
    write_json(summary_path, summary)


if __name__ == "__main__":
    main()
