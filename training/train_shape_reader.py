"""Train the reflector's shape reader beside its frozen object map, and export both as one reflector model.

  /usr/bin/python3 training/train_shape_reader.py --data D [D ...] --map-onnx models/reflector.onnx \
      --out models/reflector.onnx --minutes 30 --seed 0

The object map (train_perception.py) finds objects well but misreads the class of blurred shapes: on training
prompts most of its disagreements with the evaluator are a circle read as a diamond, a diamond as a cross, and so
on, mostly with confidence. The shape reader (nets.ShapeReader) is a second small net on the same pixels: a 16x16
map of class logits plus "no object", trained on the evaluator's detections (`objects.f32` of `reflectionflow
dataset pairs`), and read at the centre the object map gives. Its class replaces the map's; where it says "no
object" with P >= NO_OBJECT (train_perception.py) the reading is dropped (blends between two palette colours, which the evaluator
makes no object of). Training images are recoloured (--recolor): the test split holds out colour-class pairs, and a
reader that learns which classes come in which colours misreads them.

The map's weights are copied from --map-onnx and not trained; the exported model (nets.ObjectMapWithShapes) has
two outputs, `objects` (the map, unchanged) and `shapes`. Validation (the same seeded 10 % of generator samples
train_perception.py holds out for the same --seed) decodes exactly as src/backends/embedded/perception.ts does and
logs the share of images whose objects equal the evaluator's (`set`, `count`, `placed`) and object precision and
recall, for the map alone at step 0 and for map + reader after; the exported weights are those with the best
`placed`.

One resumable checkpoint, replaced: training/resume/reflector-shapes.pt (beside --out for a scratch run).
"""
from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # see train_generator.py

import argparse  # noqa: E402
import datetime  # noqa: E402
import hashlib  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import (BACKGROUND, PALETTE, REPO_ROOT, check_with_onnxruntime_node, command_line,  # noqa: E402
                    count_params, export_onnx, images_to_float, onnx_state_dict, opt_state_restore,
                    run_files, setup_torch, write_json)
from nets import ObjectMapWithShapes, shape_reader_soft_targets, shape_reader_targets, soft_cross_entropy  # noqa: E402
from train_perception import Images, Training, agreement, batch_indices, flip, palette_pixels, symmetries  # noqa: E402

SHAPE_GRID = 16


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", nargs="+", required=True, help="pair folders with objects.f32 (`dataset pairs`)")
    ap.add_argument("--map-onnx", required=True, help="the reflector whose object map is kept (train_perception.py)")
    ap.add_argument("--out", default="models/reflector.onnx")
    ap.add_argument("--minutes", type=float, default=30.0, help="total wall-clock budget (incl. resumed time)")
    ap.add_argument("--max-steps", type=int, default=0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--weight-decay", type=float, default=0.05)
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument("--val-frac", type=float, default=0.1)
    ap.add_argument("--render-share", type=float, default=0.25,
                    help="share of each batch drawn from renders (the rest: generator samples)")
    ap.add_argument("--recolor", type=float, default=0.75,
                    help="share of training images whose palette colours are permuted (per image, pixel by pixel "
                         "along each colour's blend line): a class never depends on its colour, and the test split "
                         "holds out colour-class pairs, so the reader must not learn which classes come in which "
                         "colours; 0 = off")
    ap.add_argument("--shift", type=int, default=0,
                    help="move each training image by up to this many pixels (each axis, background entering, every "
                         "object kept inside): the evaluator reads a shape moved by a pixel as the same class; 0 = off")
    ap.add_argument("--symmetries", choices=["none", "updown", "all"], default="none",
                    help="besides left-right flips: up-down flips of images of circles, squares, diamonds and crosses "
                         "only ('updown'), and transposes of those of circles, squares and crosses ('all')")
    ap.add_argument("--soft", type=float, default=0.0, metavar="T",
                    help="teach each object's class as softmax(fit / T) over the evaluator's per-class fits "
                         "(fits.f32 of `dataset pairs`) instead of its class alone; 0 = off")
    ap.add_argument("--reader-width", type=int, nargs=2, default=[32, 64], metavar=("C32", "C16"),
                    help="the reader's channels at 32 and 16 px")
    ap.add_argument("--eval-every", type=float, default=4.0, help="evaluate every this many minutes")
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--log-every", type=int, default=100)
    ap.add_argument("--threads", type=int, default=2)
    return ap.parse_args(argv)


def recolor(images: torch.Tensor, labels: torch.Tensor, alphas: torch.Tensor, which: torch.Tensor,
            gen: torch.Generator) -> torch.Tensor:
    """uint8 images (B, 3, H, W) with, in the chosen ones, every palette pixel moved to another colour's blend line
    at the same weight by a random permutation of the palette (one per image); other pixels unchanged."""
    bg = torch.tensor(BACKGROUND, dtype=torch.float32).view(1, 3, 1, 1)
    lines = torch.tensor([c for _, c in PALETTE], dtype=torch.float32) - bg.view(1, 3)      # K, 3
    k = lines.shape[0]
    perm = torch.stack([torch.randperm(k, generator=gen) for _ in range(len(images))])    # B, K
    lab = labels.long()
    target = torch.gather(perm, 1, lab.clamp(min=0).flatten(1)).view_as(lab)             # B, H, W
    new = bg + alphas.float()[:, None] * lines[target].permute(0, 3, 1, 2)               # B, 3, H, W
    change = (which.view(-1, 1, 1) & (lab >= 0))[:, None]
    return torch.where(change, new.round().clamp(0, 255), images.float()).to(torch.uint8)


def shift(images: torch.Tensor, objects: torch.Tensor, most: int, gen: torch.Generator):
    """uint8 images (B, 3, S, S) each moved by a random whole number of pixels in [-most, most] per axis, the
    background entering, and their detections (cx, cy) with them; the move is limited so that every object's box
    stays at least a pixel inside the image (a shape cut by the border is another shape to the evaluator)."""
    b, _, size, _ = images.shape
    live = objects[:, :, 0] > 0
    half_w, half_h = objects[:, :, 4] / 2, objects[:, :, 5] / 2
    inf = torch.full_like(half_w, float("inf"))

    def room(lo_edge, hi_edge):     # pixels free before the first box and after the last, one kept
        lo = torch.where(live, lo_edge, inf).min(1).values
        hi = torch.where(live, 1.0 - hi_edge, inf).min(1).values
        return ((lo * size).floor() - 1).clamp(0, most).long(), ((hi * size).floor() - 1).clamp(0, most).long()

    left, right = room(objects[:, :, 2] - half_w, objects[:, :, 2] + half_w)
    up, down = room(objects[:, :, 3] - half_h, objects[:, :, 3] + half_h)
    dx = (torch.rand(b, generator=gen) * (left + right + 1)).long() - left
    dy = (torch.rand(b, generator=gen) * (up + down + 1)).long() - up
    padded = torch.tensor(BACKGROUND, dtype=torch.uint8).view(1, 3, 1, 1).repeat(b, 1, size + 2 * most, size + 2 * most)
    padded[:, :, most:most + size, most:most + size] = images
    out = torch.stack([padded[i, :, most - y:most - y + size, most - x:most - x + size]
                       for i, (x, y) in enumerate(zip(dx.tolist(), dy.tolist()))])
    objects = objects.clone()
    objects[:, :, 2] = torch.where(live, objects[:, :, 2] + dx[:, None] / size, objects[:, :, 2])
    objects[:, :, 3] = torch.where(live, objects[:, :, 3] + dy[:, None] / size, objects[:, :, 3])
    return out, objects


def evaluate(model, data: Images, idx: torch.Tensor, maps: np.ndarray, with_reader: bool) -> dict:
    """`agreement` of the frozen map's validation `maps` (in `idx` order), with the reader or without it."""
    was = model.training
    model.eval()
    r = agreement(data, idx, model.grid, lambda i, j: (
        maps[i:i + len(j)], model.shapes(images_to_float(data.images[j])).numpy() if with_reader else None))
    model.train(was)
    return r


def main(argv=None):
    args = parse_args(argv)
    setup_torch(args.seed, args.threads)
    out_dir = os.path.dirname(os.path.abspath(args.out))
    ckpt_path, log_path, summary_path = run_files(os.path.join(out_dir, "reflector-shapes.onnx"),
                                                  os.path.join(REPO_ROOT, "training", "resume"))

    data = Images(args.data)
    if args.soft > 0 and data.fits is None:
        raise SystemExit("--soft: every --data folder needs fits.f32 (written by `reflectionflow dataset pairs`)")
    val_idx, train_samples, renders = data.split(args.seed, args.val_frac)
    n_val = len(val_idx)

    model = ObjectMapWithShapes(reader_ch=args.reader_width)
    src = onnx_state_dict(args.map_onnx)
    own = model.state_dict()
    map_keys = [k for k in own if not k.startswith("shapes.") and not k.startswith("palette.")]
    missing = [k for k in map_keys if k not in src]
    if missing:
        raise SystemExit(f"--map-onnx {args.map_onnx}: no weights for {missing[:5]} (not a reflector?)")
    model.load_state_dict({**own, **{k: src[k].reshape(own[k].shape) for k in map_keys}})
    with open(args.map_onnx, "rb") as f:
        map_init = {"onnx": os.path.relpath(os.path.abspath(args.map_onnx), REPO_ROOT),
                    "sha256_16": hashlib.sha256(f.read()).hexdigest()[:16]}
    for name, p in model.named_parameters():
        p.requires_grad_(name.startswith("shapes."))
    params = [p for p in model.parameters() if p.requires_grad]
    n_params = count_params(model.shapes)
    print(f"model: object map from {args.map_onnx} (frozen) + ShapeReader, {n_params / 1e6:.3f}M trained parameters")

    model.eval()
    with torch.no_grad():   # the map is frozen: its validation maps are computed once
        maps = np.concatenate([model.object_map(images_to_float(data.images[val_idx[i:i + 256]])).numpy()
                               for i in range(0, len(val_idx), 256)])
    opt = torch.optim.AdamW(params, lr=args.lr, weight_decay=args.weight_decay)
    step, elapsed0, history = 0, 0.0, []
    best, best_state = {"placed": -1.0}, None
    map_only = None
    if args.resume and os.path.exists(ckpt_path):
        ck = torch.load(ckpt_path, map_location="cpu")
        model.shapes.load_state_dict(ck["shapes"])
        opt_state_restore(opt, ck["opt"])
        step, elapsed0, history, best, map_only = ck["step"], ck["elapsed"], ck["history"], ck["best"], ck["map_only"]
        best_state = {k: v.float() for k, v in ck["best_state"].items()}
        print(f"resuming from {ckpt_path}: step {step}, {elapsed0 / 60:.1f} min")
    elif args.resume:
        print(f"--resume: no checkpoint at {ckpt_path}, starting fresh")
    if map_only is None:
        map_only = evaluate(model, data, val_idx, maps, with_reader=False)
        print("the object map alone: " + " ".join(f"{k} {v:.4f}" for k, v in map_only.items()), flush=True)

    run = Training(args, opt, model.shapes, log_path, ckpt_path, step, elapsed0, history, best, best_state)

    def save(t: Training):
        t.save(shapes=model.shapes.state_dict(), map_only=map_only, map=map_init)

    def measure():
        return evaluate(model, data, val_idx, maps, with_reader=True)

    if args.recolor > 0:
        pixel_labels, pixel_alphas = palette_pixels(data.images)
        print(f"recolor: {args.recolor:.2f} of the training images get permuted palette colours")
    gen = torch.Generator().manual_seed(args.seed + 1 + 1000003 * step)
    model.shapes.train()
    no_cells = torch.zeros(args.batch, 1, 1, dtype=torch.bool)

    def batch_loss():
        j = batch_indices(train_samples, renders, args.batch, args.render_share, gen)
        u8 = data.images[j]
        if args.recolor > 0:
            u8 = recolor(u8, pixel_labels[j], pixel_alphas[j], torch.rand(len(j), generator=gen) < args.recolor, gen)
        objects = data.objects[j]
        if args.soft > 0:   # the fits ride in spare columns of the rows, so that every move takes them along
            objects = torch.cat([objects, data.fits[j]], dim=2)
        if args.shift > 0:
            u8, objects = shift(u8, objects, args.shift, gen)
        x, objects, cells = flip(images_to_float(u8), objects, no_cells[:len(j)],
                                 torch.rand(len(j), generator=gen) < 0.5)
        if args.symmetries != "none":
            x, objects, _ = symmetries(x, objects, cells, gen, transpose=args.symmetries == "all")
        if args.soft > 0:
            q, mask = shape_reader_soft_targets(objects[:, :, :6], objects[:, :, 6:], model.n_classes, SHAPE_GRID,
                                                args.soft)
            return soft_cross_entropy(model.shapes(x), q, mask)
        return F.cross_entropy(model.shapes(x), shape_reader_targets(objects, model.n_classes, SHAPE_GRID),
                               ignore_index=-100)

    final = run.run(batch_loss, measure, save)
    step, best, best_state, timer = run.step, run.best, run.best_state, run.timer
    print(f"done: {step} steps, {timer.elapsed() / 60:.1f} min; best placed {best['placed']:.4f} at step "
          f"{best['step']} (exported); the map alone {map_only['placed']:.4f}")

    model.shapes.load_state_dict(best_state)
    model.eval()
    x = images_to_float(data.images[val_idx[:5]])
    with open(os.path.splitext(args.map_onnx)[0] + ".json") as f:
        map_meta = json.load(f)
    info = export_onnx(model, (x[:2],), args.out, ["image"], ["objects", "shapes"])
    with torch.no_grad():
        ref_objects, ref_shapes = model(x)
    info["check"] = check_with_onnxruntime_node(args.out, {"image": x}, {"objects": ref_objects, "shapes": ref_shapes})
    print("onnx numeric check:", info["check"])
    k = model.n_classes
    meta = {
        **map_meta,
        "outputs": {**map_meta["outputs"], "shapes": {
            "dtype": "float32", "shape": ["B", k + 1, SHAPE_GRID, SHAPE_GRID],
            "channels": "0..5: class logits (as objects'); 6: no-object logit; read at an object's centre"}},
        "shapeGrid": SHAPE_GRID,
        "shapeReader": {
            "map": map_init,
            "mapOnly": {kk: round(v, 4) for kk, v in map_only.items()},
            "validation": {kk: round(best[kk], 4) for kk in ("set", "count", "placed", "precision", "recall")},
            "params": n_params,
            "trainingSteps": step,
            "trainingMinutes": round(timer.elapsed() / 60, 2),
            "seed": args.seed,
            "recolor": args.recolor,
            "shift": args.shift,
            "soft": args.soft,
            "command": command_line(),
        },
        "params": count_params(model),
        "exported": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    write_json(os.path.splitext(args.out)[0] + ".json", meta)
    write_json(summary_path, {"kind": "reflector-shapes", "data": [os.path.abspath(d) for d in args.data],
                              "images": data.count, "val_images": n_val, "params": n_params, "steps": step,
                              "wall_seconds": timer.elapsed(), "batch": args.batch, "lr": args.lr,
                              "steps_per_s": run.steps_per_s, "best": best,
                              "final": final, "map_only": map_only, "map": map_init, "onnx": info,
                              "history": history, "log": os.path.relpath(log_path, REPO_ROOT),
                              "torch": torch.__version__})
    print("wrote", os.path.splitext(args.out)[0] + ".json")


if __name__ == "__main__":
    main()
