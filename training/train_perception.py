"""Train the embedded reflector's perception model (pixels -> 8x8 object map) for detection, and export ONNX.

  /usr/bin/python3 training/train_perception.py --data D [D ...] --init-onnx models/verifier.onnx \
      --out models/reflector.onnx --minutes 40 --seed 0

The reflector reads the object map as a list of objects (class, colour, centre, size) and writes edits from the
difference with the prompt's parse, so what matters is that the map finds every object the evaluator finds, and
no other. The verifier learns the same map only as an auxiliary of its yes/no loss; this script trains it on its
own, detection first, against the evaluator's detections (`objects.f32` of `reflectionflow dataset pairs`).

D are pair folders; each source image is used once (pairs repeat an image for several prompts). A seeded 10% of
the generator samples (not the renders) is held out; every evaluation decodes the map exactly as
src/backends/embedded/perception.ts does and logs, over the held-out samples: the share of images whose objects
(class and colour, as a multiset) equal the evaluator's (`set`), whose count is right (`count`), and whose objects
are also each within 0.1 of the side of the evaluator's (`placed`), plus object precision and recall. The exported
weights are those with the best `placed`. Augmentation: left-right flips (every ShapeWorld shape is symmetric
about its vertical axis; detections are not prompt-bound, so a flip needs no relation rewrite).

One resumable checkpoint, replaced: training/resume/reflector.pt (weights, best weights fp16, Adam moments bf16).
--minutes is the total budget including resumed time (--resume).
"""
from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # see train_generator.py

import argparse  # noqa: E402
import datetime  # noqa: E402
import hashlib  # noqa: E402
import math  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import (BACKGROUND, PALETTE, REPO_ROOT, CsvLog, Dataset, Timer, check_with_onnxruntime_node,  # noqa: E402
                    command_line, cosine_lr, count_params, export_onnx, images_to_float, onnx_state_dict,
                    optimizer_step, opt_state_compact, opt_state_restore, run_files, save_checkpoint, setup_torch,
                    stop_on_signals, write_json)
from nets import ObjectMapNet, object_map_loss  # noqa: E402

CLASSES = ["circle", "square", "triangle", "star", "diamond", "cross"]
COLORS = ["red", "orange", "yellow", "green", "blue", "purple", "pink", "brown", "black", "white"]
# decoding, as src/backends/embedded/perception.ts
CENTRE_THRESHOLD = 0.5
SAME_OBJECT = 0.15
# a reading is dropped where the shape reader's P(no object) at its centre is at least this (perception.ts: NO_OBJECT)
NO_OBJECT = 0.5
# the reader is read over this many of its cells square around a centre, logits averaged (perception.ts: READER_WINDOW)
READER_WINDOW = 3
PLACED = 0.1
# the evaluator's pixel classes (src/shapeworld/evaluate.ts; selftest.py checks the twin): background within
# BG_TOLERANCE of BACKGROUND, a palette colour within BLEND_TOLERANCE of the line from the background to it
BG_TOLERANCE = 14
BLEND_TOLERANCE = 20
# a cell holding at least this many pixels of neither class is a blob no object explains (--blob-weight)
BLOB_PIXELS = 2


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", nargs="+", required=True, help="pair folders with objects.f32 (`dataset pairs`)")
    ap.add_argument("--out", default="models/reflector.onnx")
    ap.add_argument("--init-onnx", default=None, help="start from this module verifier's object-map trunk")
    ap.add_argument("--minutes", type=float, default=40.0, help="total wall-clock budget (incl. resumed time)")
    ap.add_argument("--max-steps", type=int, default=0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=5e-4)
    ap.add_argument("--weight-decay", type=float, default=0.05)
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument("--val-frac", type=float, default=0.1)
    ap.add_argument("--render-share", type=float, default=0.25,
                    help="share of each batch drawn from renders (the rest: generator samples)")
    ap.add_argument("--no-flip", action="store_true", help="no left-right flip augmentation")
    ap.add_argument("--symmetries", choices=["none", "updown", "all"], default="none",
                    help="also up-down flips of images of circles, squares, diamonds and crosses only ('updown'), and "
                         "transposes of those of circles, squares and crosses ('all'); see `symmetries`")
    ap.add_argument("--palette-input", action="store_true",
                    help="feed the net each pixel's place relative to the palette's colour lines beside its RGB "
                         "(nets.PaletteFeatures); from a model without them, their stem weights start at zero")
    ap.add_argument("--blob-weight", type=float, default=1.0,
                    help="weight of the centre loss at cells where no object is centred but at least BLOB_PIXELS "
                         "pixels are neither background nor a palette colour (blends the evaluator counts as no "
                         "object, which the perception tends to read as one); 1 = as any other empty cell")
    ap.add_argument("--pos-weight", type=float, default=4.0,
                    help="weight of the centre loss at cells where an object is centred, against one at empty "
                         "cells: above 1 a missed object costs more than an extra one")
    ap.add_argument("--eval-every", type=float, default=4.0, help="evaluate every this many minutes")
    ap.add_argument("--ckpt", default=None, help="checkpoint (default training/resume/<name>.pt for an --out in models/, "
                    "else beside --out)")
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--log-every", type=int, default=100)
    ap.add_argument("--threads", type=int, default=2)
    return ap.parse_args(argv)


class Images:
    """Every distinct source image of the pair folders, with its detections; generator samples apart from renders."""

    def __init__(self, folders):
        imgs, objs, fits, sampled = [], [], [], []
        for folder in folders:
            ds = Dataset(folder)
            if ds.objects is None or ds.groups is None:
                raise SystemExit(f"{folder}: no objects.f32/groups.i32; write it with `reflectionflow dataset pairs`")
            g = ds.groups.numpy()
            first = np.unique(g, return_index=True)[1]          # one pair per source image
            imgs.append(ds.images[first])
            objs.append(ds.objects[first])
            fits.append(ds.fits[first] if ds.fits is not None else None)
            sampled.append(torch.from_numpy(g[first] < int(ds.meta.get("sampledImages", 0))))
            print(f"data: {folder}: {len(first)} images ({int(sampled[-1].sum())} generator samples)")
        self.images = torch.cat(imgs)
        self.objects = torch.cat(objs)
        # each class's fit to each object, when every folder has them (`reflectionflow dataset pairs` writes fits.f32)
        self.fits = torch.cat(fits) if all(f is not None for f in fits) else None
        self.sampled = torch.cat(sampled)
        self.count = len(self.images)
        self.size = self.images.shape[-1]

    def split(self, seed: int, val_frac: float):
        """(validation, training samples, renders) as indices: a seeded share of the generator samples is held out
        (the renders all train); the same seed gives the same split in every script that reads these folders."""
        samples = torch.nonzero(self.sampled)[:, 0]
        renders = torch.nonzero(~self.sampled)[:, 0]
        if len(samples) < 10:
            raise SystemExit("the data holds fewer than 10 generator samples: nothing to validate on")
        perm = samples[torch.randperm(len(samples), generator=torch.Generator().manual_seed(seed))]
        n_val = max(1, int(round(len(samples) * val_frac)))
        val_idx, train_samples = perm[:n_val].sort().values, perm[n_val:]
        print(f"split: {len(train_samples)} samples + {len(renders)} renders train / {n_val} samples validation")
        return val_idx, train_samples, renders


def batch_indices(samples: torch.Tensor, renders: torch.Tensor, batch: int, render_share: float,
                  gen: torch.Generator) -> torch.Tensor:
    """One training batch: generator samples and, when there are renders, `render_share` of it drawn from them."""
    n_render = int(round(batch * render_share)) if len(renders) else 0
    return torch.cat([samples[torch.randint(len(samples), (batch - n_render,), generator=gen)],
                      renders[torch.randint(len(renders), (n_render,), generator=gen)] if n_render else
                      torch.zeros(0, dtype=torch.long)])


def flip(images: torch.Tensor, objects: torch.Tensor, cells: torch.Tensor, which: torch.Tensor):
    """Left-right flip of the chosen images, their detections (cx -> 1 - cx) and their per-cell maps (B, g, g)."""
    images = images.clone()
    objects = objects.clone()
    cells = cells.clone()
    images[which] = images[which].flip(-1)
    cells[which] = cells[which].flip(-1)
    cx = objects[:, :, 2]
    objects[:, :, 2] = torch.where(which[:, None] & (objects[:, :, 0] > 0), 1.0 - cx, cx)
    return images, objects, cells


# Classes whose outline (src/shapeworld/shapes.ts) is its own mirror image up-down, and also across the diagonal
# (the diamond is taller than wide, so not that); the evaluator reads an image of only these, so moved, alike.
UPDOWN_SYMMETRIC = ("circle", "square", "diamond", "cross")
DIAGONAL_SYMMETRIC = ("circle", "square", "cross")


def only_of(objects: torch.Tensor, classes) -> torch.Tensor:
    """Per image (B,): every detection row (class id 1.., 0 empty) is of one of `classes`."""
    ids = torch.tensor([CLASSES.index(c) + 1 for c in classes], dtype=objects.dtype)
    cls = objects[:, :, 0]
    return ((cls == 0) | (cls[..., None] == ids).any(-1)).all(1)


def symmetries(images: torch.Tensor, objects: torch.Tensor, cells: torch.Tensor, gen: torch.Generator,
               transpose: bool):
    """An up-down flip (half of the images made only of UPDOWN_SYMMETRIC classes) and, with `transpose`, a
    transpose (half of those made only of DIAGONAL_SYMMETRIC ones) of images (B, C, S, S), their detections
    (cy -> 1 - cy; cx <-> cy, w <-> h) and their per-cell maps (B, g, g). With `flip`'s left-right flip, an image of
    circles, squares and crosses is then seen in all eight orientations of the square. The evaluator reads the moved
    image alike less often than a left-right flip: on 800 generator samples of training prompts its objects stayed
    the same for 799 of 800 left-right flips, 466 of 471 up-down flips and 306 of 316 transposes (a wide blob read as
    a circle becomes a tall one read as a diamond)."""
    b = len(images)
    updown = only_of(objects, UPDOWN_SYMMETRIC) & (torch.rand(b, generator=gen) < 0.5)
    diagonal = only_of(objects, DIAGONAL_SYMMETRIC) & (torch.rand(b, generator=gen) < 0.5) & transpose
    images, objects, cells = images.clone(), objects.clone(), cells.clone()
    live = objects[:, :, 0] > 0
    images[updown] = images[updown].flip(-2)
    cells[updown] = cells[updown].flip(-2)
    objects[:, :, 3] = torch.where(updown[:, None] & live, 1.0 - objects[:, :, 3], objects[:, :, 3])
    images[diagonal] = images[diagonal].transpose(-1, -2)
    cells[diagonal] = cells[diagonal].transpose(-1, -2)
    swap = diagonal[:, None, None] & live[..., None]
    objects[:, :, 2:6] = torch.where(swap, objects[:, :, [3, 2, 5, 4]], objects[:, :, 2:6])
    return images, objects, cells


def palette_pixels(images: torch.Tensor, chunk: int = 1024):
    """Per pixel (N, H, W), as the evaluator classes pixels: the palette colour it is a blend of with the background
    (-1: background, -2: neither, which the evaluator makes no object of), and its blend weight."""
    bg = torch.tensor(BACKGROUND, dtype=torch.float32).view(1, 3, 1, 1)
    lines = torch.tensor([c for _, c in PALETTE], dtype=torch.float32) - bg.view(1, 3)      # K, 3
    labels, alphas = [], []
    for i in range(0, len(images), chunk):
        v = images[i:i + chunk].float() - bg                                                # B, 3, H, W
        a = torch.einsum("bchw,kc->bkhw", v, lines) / (lines * lines).sum(1).view(1, -1, 1, 1)
        along = a > 0.05
        a = a.clamp(max=1.0)
        residual = ((v[:, None] - a[:, :, None] * lines.view(1, -1, 3, 1, 1)) ** 2).sum(2)  # B, K, H, W
        residual = torch.where(along, residual, torch.full_like(residual, float("inf")))
        best, k = residual.min(1)
        label = torch.where(best < BLEND_TOLERANCE ** 2, k, torch.full_like(k, -2))
        label = torch.where((v * v).sum(1) < BG_TOLERANCE ** 2, torch.full_like(k, -1), label)
        labels.append(label.to(torch.int8))
        alphas.append(torch.gather(a, 1, k[:, None])[:, 0].to(torch.float16))
    return torch.cat(labels), torch.cat(alphas)


def unexplained_cells(images: torch.Tensor, grid: int) -> torch.Tensor:
    """Per image and cell (N, grid, grid): how many pixels are neither background nor a blend of the background and
    one palette colour, as the evaluator classes pixels; it makes no object of them."""
    odd = (palette_pixels(images)[0] == -2).float()
    b, h, w = odd.shape
    return odd.view(b, grid, h // grid, grid, w // grid).sum((2, 4)).round().to(torch.int16)


def decode(m: np.ndarray, grid: int, shapes: np.ndarray | None = None):
    """One image's object map (ch, g, g) as objects [(class, colour, cx, cy)], most confident first. With a shape
    reader's map (K+1, s, s; train_shape_reader.py), each object's class is the reader's around its centre (logits
    averaged over READER_WINDOW cells square), and it is dropped where the reader's P(no object) >= NO_OBJECT. As decodeObjectMap in src/backends/embedded/perception.ts."""
    k, c = len(CLASSES), len(COLORS)
    flat = m.reshape(m.shape[0], -1)
    p = 1.0 / (1.0 + np.exp(-flat[0]))
    found = []
    for cell in np.nonzero(p >= CENTRE_THRESHOLD)[0]:
        gx, gy = cell % grid, cell // grid
        sig = 1.0 / (1.0 + np.exp(-flat[1 + k + c:3 + k + c, cell]))
        x, y = (gx + sig[0]) / grid, (gy + sig[1]) / grid
        cls = int(np.argmax(flat[1:1 + k, cell]))
        if shapes is not None:
            s, reach = shapes.shape[-1], READER_WINDOW // 2
            r, q = min(int(y * s), s - 1), min(int(x * s), s - 1)
            logits = shapes[:, max(0, r - reach):r + reach + 1, max(0, q - reach):q + reach + 1].mean((1, 2))
            e = np.exp(logits - logits.max())
            if e[k] / e.sum() >= NO_OBJECT:
                continue
            cls = int(np.argmax(logits[:k]))
        found.append((p[cell], cls, int(np.argmax(flat[1 + k:1 + k + c, cell])), x, y))
    found.sort(key=lambda f: -f[0])
    kept = []
    for _, cls, col, x, y in found:
        if any(k2 == cls and c2 == col and math.hypot(x - x2, y - y2) < SAME_OBJECT for k2, c2, x2, y2 in kept):
            continue
        kept.append((cls, col, x, y))
    return kept


def compare(found, truth):
    """(same multiset of class+colour, same count, also each placed within PLACED, true positives)."""
    same_set = sorted((a, b) for a, b, _, _ in found) == sorted((a, b) for a, b, _, _ in truth)
    left = list(truth)
    tp = 0
    for cls, col, x, y in found:
        best, bd = None, PLACED
        for t in left:
            d = math.hypot(x - t[2], y - t[3])
            if t[0] == cls and t[1] == col and d <= bd:
                best, bd = t, d
        if best is not None:
            left.remove(best)
            tp += 1
    placed = same_set and tp == len(truth) == len(found)
    return same_set, len(found) == len(truth), placed, tp


@torch.no_grad()
def agreement(data: Images, idx: torch.Tensor, grid: int, read, batch: int = 256) -> dict:
    """How the readings of the images `idx` agree with their detections: `read(start, rows)` gives a batch's object
    maps and the shape reader's maps (or None), decoded as the runtime does. Shares of images whose objects equal
    the evaluator's (set, count, placed) and object precision and recall."""
    n_set = n_count = n_placed = tp = n_found = n_true = 0
    with torch.no_grad():
        for i in range(0, len(idx), batch):
            j = idx[i:i + batch]
            maps, shapes = read(i, j)
            for b, row in enumerate(j.tolist()):
                truth = [(int(o[0]) - 1, int(o[1]) - 1, float(o[2]), float(o[3])) for o in data.objects[row].tolist()
                         if o[0] > 0]
                found = decode(maps[b], grid, None if shapes is None else shapes[b])
                s, c, p, t = compare(found, truth)
                n_set, n_count, n_placed, tp = n_set + s, n_count + c, n_placed + p, tp + t
                n_found, n_true = n_found + len(found), n_true + len(truth)
    n = max(len(idx), 1)
    return {"set": n_set / n, "count": n_count / n, "placed": n_placed / n,
            "precision": tp / max(n_found, 1), "recall": tp / max(n_true, 1)}


def evaluate(model, data: Images, idx: torch.Tensor) -> dict:
    was = model.training
    model.eval()
    r = agreement(data, idx, model.grid, lambda _, j: (model(images_to_float(data.images[j])).numpy(), None))
    model.train(was)
    return r


class Training:
    """The run both perception scripts share: the step loop (lr by `cosine_lr` over wall clock or --max-steps, loss
    windows printed every --log-every steps), a held-out evaluation every --eval-every minutes that is logged and
    keeps the weights of `trained` with the best `placed`, and a checkpoint after each evaluation and at the end.
    Each script gives its batch loss, its measurement and the weights and facts its checkpoint keeps besides this
    object's (`save`)."""

    def __init__(self, args, opt, trained: torch.nn.Module, log_path: str, ckpt_path: str, step: int, elapsed: float,
                 history: list, best: dict, best_state: dict | None):
        self.args, self.opt, self.trained, self.ckpt_path = args, opt, trained, ckpt_path
        self.log = CsvLog(log_path, ["step", "elapsed_s", "lr", "train_loss", "set", "count", "placed", "precision",
                                     "recall", "steps_per_s"], append=step > 0)
        self.step, self.history, self.best, self.best_state = step, history, best, best_state
        self.timer = Timer(offset=elapsed)
        self.budget = args.minutes * 60.0
        self.stop = stop_on_signals()
        history.append({"start_step": step, "start_elapsed": round(elapsed, 1), "command": command_line()})
        self.run_start, self.run_start_step = time.time(), step
        self._last = (time.time(), step)

    def evaluate(self, measure, train_loss: float | None = None) -> dict:
        r = measure()
        now = time.time()
        sps = (self.step - self._last[1]) / max(now - self._last[0], 1e-9)
        self._last = (now, self.step)
        self.log.write({"step": self.step, "elapsed_s": round(self.timer.elapsed(), 1),
                        "lr": f"{self.opt.param_groups[0]['lr']:.3e}",
                        "train_loss": "" if train_loss is None else round(train_loss, 5),
                        **{k: round(v, 4) for k, v in r.items()}, "steps_per_s": round(sps, 3)})
        print(f"eval step {self.step}: set {r['set']:.4f} count {r['count']:.4f} placed {r['placed']:.4f} "
              f"precision {r['precision']:.4f} recall {r['recall']:.4f} ({self.timer.elapsed() / 60:.1f} min)",
              flush=True)
        if r["placed"] > self.best["placed"]:
            self.best = {**r, "step": self.step}
            self.best_state = {k: v.detach().clone() for k, v in self.trained.state_dict().items()}
        return r

    def save(self, **own):
        """The checkpoint (one file, replaced): the script's `own` entries, the optimiser, step, clock, best figures
        and weights (fp16) and the run history."""
        save_checkpoint(self.ckpt_path, {**own, "opt": opt_state_compact(self.opt), "step": self.step,
                                         "elapsed": self.timer.elapsed(), "best": self.best, "history": self.history,
                                         "best_state": {k: v.half() for k, v in self.best_state.items()},
                                         "args": vars(self.args)})
        print(f"checkpoint: {self.ckpt_path} (step {self.step})")

    def done(self) -> bool:
        a = self.args
        return self.stop["flag"] or self.timer.elapsed() >= self.budget or (0 < a.max_steps <= self.step)

    def run(self, batch_loss, measure, save) -> dict:
        """`save(self)` writes the checkpoint (through `Training.save`)."""
        """Steps until the budget or a signal, then a last evaluation and checkpoint; the last evaluation's figures."""
        a = self.args
        win, wcnt, tot, cnt = 0.0, 0, 0.0, 0
        last_eval = time.time()
        while not self.done():
            progress = max(self.timer.elapsed() / self.budget if self.budget > 0 else 1.0,
                           self.step / a.max_steps if a.max_steps > 0 else 0.0)
            lr = cosine_lr(a.lr, progress, self.step, a.warmup)
            for g in self.opt.param_groups:
                g["lr"] = lr
            lv = optimizer_step(self.trained, self.opt, batch_loss(), self.step + 1)
            self.step += 1
            win, wcnt, tot, cnt = win + lv, wcnt + 1, tot + lv, cnt + 1
            if self.step % a.log_every == 0:
                print(f"step {self.step} loss {win / wcnt:.4f} lr {lr:.2e} ({self.timer.elapsed() / 60:.1f} min)",
                      flush=True)
                win, wcnt = 0.0, 0
            if time.time() - last_eval >= a.eval_every * 60:
                self.evaluate(measure, tot / cnt)
                tot, cnt = 0.0, 0
                save(self)
                last_eval = time.time()
        final = self.evaluate(measure, tot / cnt if cnt else None)
        self.run_seconds = time.time() - self.run_start
        self.history[-1].update({"end_step": self.step, "seconds": round(self.run_seconds, 1)})
        save(self)
        self.log.close()
        return final

    @property
    def steps_per_s(self) -> float:
        return (self.step - self.run_start_step) / max(self.run_seconds, 1e-9)


def init_weight(name: str, own: torch.Tensor, src: dict) -> torch.Tensor:
    """`name`'s starting value from an exported model's weights: the palette's fixed buffers are the model's own, and a
    stem that reads more input channels than the source's keeps the source's weights for RGB and zeros for the
    rest, so the model starts as exactly the source."""
    if name.startswith("palette."):
        return own
    w = src[name]
    if name == "stem.weight" and w.numel() != own.numel():
        w = w.reshape(own.shape[0], -1, *own.shape[2:])
        return torch.cat([w, torch.zeros(own.shape[0], own.shape[1] - w.shape[1], *own.shape[2:])], 1)
    return w.reshape(own.shape)


def main(argv=None):
    args = parse_args(argv)
    setup_torch(args.seed, args.threads)
    name = os.path.splitext(os.path.basename(args.out))[0]
    ckpt_path, log_path, summary_path = run_files(args.out, os.path.join(REPO_ROOT, "training", "resume"))
    args.ckpt = args.ckpt or ckpt_path

    data = Images(args.data)
    val_idx, train_samples, renders = data.split(args.seed, args.val_frac)
    n_val = len(val_idx)

    model = ObjectMapNet(palette_input=args.palette_input)
    if args.blob_weight == 1.0:
        blobs = torch.zeros(data.count, model.grid, model.grid, dtype=torch.bool)  # off: no pixel pass at start-up
    else:
        blobs = unexplained_cells(data.images, model.grid) >= BLOB_PIXELS
        print(f"blobs: {float(blobs[samples].any(2).any(1).float().mean()):.3f} of the generator samples have a cell "
              f"of >= {BLOB_PIXELS} unexplained pixels (--blob-weight {args.blob_weight})")
    n_params = count_params(model)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    step, elapsed0, history = 0, 0.0, []
    best, best_state = {"placed": -1.0}, None
    init = None
    if args.resume and os.path.exists(args.ckpt):
        ck = torch.load(args.ckpt, map_location="cpu")
        model.load_state_dict(ck["model"])
        opt_state_restore(opt, ck["opt"])
        step, elapsed0, history, best, init = ck["step"], ck["elapsed"], ck["history"], ck["best"], ck.get("init")
        best_state = {k: v.float() for k, v in ck["best_state"].items()}
        print(f"resuming from {args.ckpt}: step {step}, {elapsed0 / 60:.1f} min")
    else:
        if args.resume:
            print(f"--resume: no checkpoint at {args.ckpt}, starting fresh")
        if args.init_onnx:
            src = onnx_state_dict(args.init_onnx)
            own = model.state_dict()
            missing = [k for k in own if k not in src and not k.startswith("palette.")]
            if missing:
                raise SystemExit(f"--init-onnx {args.init_onnx}: no weights for {missing[:5]} (not a module verifier?)")
            model.load_state_dict({k: init_weight(k, v, src) for k, v in own.items()})
            with open(args.init_onnx, "rb") as f:
                init = {"onnx": os.path.relpath(os.path.abspath(args.init_onnx), REPO_ROOT),
                        "sha256_16": hashlib.sha256(f.read()).hexdigest()[:16]}
            print(f"initialised from the object-map trunk of {args.init_onnx}")
    print(f"model: ObjectMapNet, {n_params / 1e6:.3f}M parameters")

    run = Training(args, opt, model, log_path, args.ckpt, step, elapsed0, history, best, best_state)

    def save(t: Training):
        t.save(model=model.state_dict(), init=init)

    def measure():
        return evaluate(model, data, val_idx)

    if step == 0:
        run.evaluate(measure)  # the starting point: the verifier's trunk when --init-onnx
    gen = torch.Generator().manual_seed(args.seed + 1 + 1000003 * step)
    model.train()

    def batch_loss():
        j = batch_indices(train_samples, renders, args.batch, args.render_share, gen)
        x, objects, blob = images_to_float(data.images[j]), data.objects[j], blobs[j]
        if not args.no_flip:
            x, objects, blob = flip(x, objects, blob, torch.rand(len(j), generator=gen) < 0.5)
        if args.symmetries != "none":
            x, objects, blob = symmetries(x, objects, blob, gen, transpose=args.symmetries == "all")
        m = model(x).flatten(2)
        negative = 1.0 + (args.blob_weight - 1.0) * blob.flatten(1).float()   # all ones without --blob-weight
        return object_map_loss(m, objects, model.n_classes, model.n_colors, model.grid, negative, args.pos_weight)

    final = run.run(batch_loss, measure, save)
    step, best, best_state, timer = run.step, run.best, run.best_state, run.timer
    print(f"done: {step} steps, {timer.elapsed() / 60:.1f} min; best placed {best['placed']:.4f} at step "
          f"{best['step']} (exported)")

    model.load_state_dict(best_state)
    model.eval()
    dummy = (images_to_float(data.images[val_idx[:2]]),)
    info = export_onnx(model, dummy, args.out, ["image"], ["objects"])
    j = val_idx[:5]
    with torch.no_grad():
        ref = model(images_to_float(data.images[j]))
    info["check"] = check_with_onnxruntime_node(args.out, {"image": images_to_float(data.images[j])}, {"objects": ref})
    print("onnx numeric check:", info["check"])
    g, ch = model.grid, 1 + model.n_classes + model.n_colors + 4
    meta = {
        "name": name,
        "kind": "reflector",
        "size": data.size,
        "inputs": {"image": {"dtype": "float32", "shape": ["B", 3, data.size, data.size], "layout": "NCHW RGB",
                             "range": "[-1, 1] = pixel/127.5 - 1"}},
        "outputs": {"objects": {
            "dtype": "float32", "shape": ["B", ch, g, g],
            "channels": "0: object-centre logit; 1..6: class logits (circle, square, triangle, star, diamond, cross); "
                        "7..16: colour logits (GenEval order); 17, 18: sigmoid = centre offset x, y in the cell; "
                        "19, 20: sigmoid = width, height (of the image side)"}},
        "grid": g,
        "paletteInput": args.palette_input,
        "blobWeight": args.blob_weight,
        "posWeight": args.pos_weight,
        "classes": CLASSES,
        "colors": COLORS,
        "init": init,
        "validation": {k: round(best[k], 4) for k in ("set", "count", "placed", "precision", "recall")},
        "validationImages": n_val,
        "params": n_params,
        "trainingSteps": step,
        "trainingMinutes": round(timer.elapsed() / 60, 2),
        "seed": args.seed,
        "command": command_line(),
        "opset": 14,
        "exported": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    write_json(os.path.splitext(args.out)[0] + ".json", meta)
    write_json(summary_path, {"kind": "reflector", "name": name, "data": [os.path.abspath(d) for d in args.data],
                              "images": data.count, "val_images": n_val, "params": n_params, "steps": step,
                              "wall_seconds": timer.elapsed(), "batch": args.batch, "lr": args.lr,
                              "steps_per_s": run.steps_per_s, "best": best,
                              "final": final, "init": init, "onnx": info, "history": history,
                              "log": os.path.relpath(log_path, REPO_ROOT), "torch": torch.__version__})
    print("wrote", os.path.splitext(args.out)[0] + ".json")


if __name__ == "__main__":
    main()
