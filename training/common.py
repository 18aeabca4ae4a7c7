"""Shared pieces for the ShapeWorld offline training scripts.

Dataset loading, the small text encoder (used by generator and verifier),
attention helpers written with plain matmuls/1x1 convs (Debian's torch runs
Linear/matmul slowly, convolutions fast), EMA, ROC-AUC, PNG writing, logging
and ONNX export checks.

Run everything with /usr/bin/python3 (torch 1.13, onnx 1.12, numpy 1.24).
"""
from __future__ import annotations

import csv
import json
import math
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
import zlib
import struct

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

TRAINING_DIR = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.dirname(TRAINING_DIR)
LOG_DIR = os.path.join(TRAINING_DIR, "logs")
CKPT_DIR = os.path.join(TRAINING_DIR, "checkpoints")

PAD_ID = 0
NULL_ID = 1
MASK_NEG = -1e4  # additive attention mask value (finite: no NaN even if a row were fully masked)

# ShapeWorld's colours and background (src/shapeworld/shapes.ts PALETTE, BACKGROUND), in its order; selftest.py
# checks the twin
PALETTE = [("red", (220, 30, 30)), ("orange", (255, 140, 0)), ("yellow", (250, 225, 20)), ("green", (30, 160, 50)),
           ("blue", (30, 70, 230)), ("purple", (135, 40, 195)), ("pink", (255, 125, 200)), ("brown", (125, 70, 20)),
           ("black", (15, 15, 15)), ("white", (245, 245, 245))]
BACKGROUND = (128, 128, 128)


# ----------------------------------------------------------------------------
# misc
# ----------------------------------------------------------------------------

def setup_torch(seed: int, threads: int = 2) -> None:
    torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def stop_on_signals() -> dict:
    """SIGINT/SIGTERM set the returned flag: a training loop stops after its current step and still exports."""
    import signal
    stop = {"flag": False}

    def on_signal(signum, frame):
        print(f"signal {signum}: stopping after this step", flush=True)
        stop["flag"] = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    return stop


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def command_line() -> str:
    return "/usr/bin/python3 " + " ".join(_shell_quote(a) for a in sys.argv)


def _shell_quote(a: str) -> str:
    if a and all(c.isalnum() or c in "-_./=:,+" for c in a):
        return a
    return "'" + a.replace("'", "'\\''") + "'"


def model_name(out_path: str) -> str:
    return os.path.splitext(os.path.basename(out_path))[0]


def run_files(out_path: str, ckpt_dir: str) -> tuple:
    """(checkpoint, CSV log, summary) of a run writing `out_path`. A model written into the repository's models/
    keeps them where its card and later sessions look (`ckpt_dir`, training/logs/); any other output keeps them
    beside itself, so a scratch run (--out /tmp/x/name.onnx) never resumes from or writes over the shipped model's."""
    name = model_name(out_path)
    folder = os.path.dirname(os.path.abspath(out_path))
    if folder == os.path.join(REPO_ROOT, "models"):
        return os.path.join(ckpt_dir, f"{name}.pt"), os.path.join(LOG_DIR, f"{name}.csv"), \
            os.path.join(LOG_DIR, f"{name}.summary.json")
    return tuple(os.path.join(folder, f"{name}{ext}") for ext in (".pt", ".csv", ".summary.json"))


# ----------------------------------------------------------------------------
# dataset
# ----------------------------------------------------------------------------

class Dataset:
    """In-memory view of a dataset folder written by the TypeScript side."""

    def __init__(self, folder: str, need_labels: bool = False):
        self.folder = folder
        with open(os.path.join(folder, "meta.json")) as f:
            self.meta = json.load(f)
        self.count = int(self.meta["count"])
        self.size = int(self.meta["size"])
        self.vocab = list(self.meta["vocab"])
        self.max_tokens = int(self.meta["maxTokens"])
        if len(self.vocab) < 2 or self.vocab[0] != "<pad>" or self.vocab[1] != "<null>":
            print(f"warning: vocab[0:2] = {self.vocab[:2]}, expected ['<pad>', '<null>']", file=sys.stderr)
        n, s, m = self.count, self.size, self.max_tokens
        img = np.fromfile(os.path.join(folder, "images.u8"), dtype=np.uint8)
        if img.size != n * s * s * 3:
            raise ValueError(f"images.u8 has {img.size} bytes, expected {n}x{s}x{s}x3")
        tok = np.fromfile(os.path.join(folder, "tokens.i32"), dtype="<i4")
        if tok.size != n * m:
            raise ValueError(f"tokens.i32 has {tok.size} ints, expected {n}x{m}")
        tok = tok.reshape(n, m)
        if tok.min() < 0 or tok.max() >= len(self.vocab):
            raise ValueError(f"token ids out of range [0, {len(self.vocab)})")
        # images kept as uint8 NCHW; converted per batch
        self.images = torch.from_numpy(img.reshape(n, s, s, 3).transpose(0, 3, 1, 2).copy())
        self.tokens = torch.from_numpy(tok.astype(np.int64))
        self.labels = None
        lp = os.path.join(folder, "labels.u8")
        if os.path.exists(lp):
            lab = np.fromfile(lp, dtype=np.uint8)
            if lab.size != n:
                raise ValueError(f"labels.u8 has {lab.size} bytes, expected {n}")
            self.labels = torch.from_numpy(lab.astype(np.float32))
        elif need_labels:
            raise ValueError(f"{folder} has no labels.u8 (needed for the verifier)")
        # pair sets (`dataset pairs`): source image of each pair, own-prompt flag, 8x8 detection map per pair
        self.groups = self._optional(folder, "groups.i32", "<i4", n)
        self.own = self._optional(folder, "own.u8", np.uint8, n)
        aux = self._optional(folder, "aux.u8", np.uint8, None)
        if aux is not None:
            if aux.numel() % n != 0 or (aux.numel() // n) % 2 != 0:
                raise ValueError(f"aux.u8 has {aux.numel()} bytes, not a multiple of 2x{n}")
            g = int(round(((aux.numel() // n) // 2) ** 0.5))
            aux = aux.reshape(n, 2, g, g).long()
        self.aux = aux
        # module-verifier inputs and targets: each pair's parsed prompt (spec.i32, layout in meta["spec"]) and the
        # image's detections (objects.f32: rows of class, colour, cx, cy, w, h; class 0 = empty row)
        self.spec = None
        if "spec" in self.meta:
            length = int(self.meta["spec"]["length"])
            sp = self._optional(folder, "spec.i32", "<i4", n * length)
            self.spec = sp.reshape(n, length) if sp is not None else None
        self.objects = self._rows(folder, "objects", n, len(self.meta["objects"]["fields"])) \
            if "objects" in self.meta else None
        # each class's soft IoU fitted to each of those objects (fits.f32: the same rows, SHAPES order)
        self.fits = self._rows(folder, "fits", n, len(self.meta["fits"]["classes"])) if "fits" in self.meta else None
        self.records = []
        rp = os.path.join(folder, "records.jsonl")
        if os.path.exists(rp):
            with open(rp) as f:
                for line in f:
                    line = line.strip()
                    if line:
                        try:
                            self.records.append(json.loads(line))
                        except json.JSONDecodeError:
                            self.records.append({})

    def _rows(self, folder, name, n, width):
        """`<name>.f32` as (n, meta[name]["slots"], width) float rows, or None without the file."""
        path = os.path.join(folder, f"{name}.f32")
        if not os.path.exists(path):
            return None
        slots = int(self.meta[name]["slots"])
        a = np.fromfile(path, dtype="<f4")
        if a.size != n * slots * width:
            raise ValueError(f"{name}.f32 has {a.size} floats, expected {n}x{slots}x{width}")
        return torch.from_numpy(a.reshape(n, slots, width).copy())

    @staticmethod
    def _optional(folder, name, dtype, n):
        p = os.path.join(folder, name)
        if not os.path.exists(p):
            return None
        a = np.fromfile(p, dtype=dtype)
        if n is not None and a.size != n:
            raise ValueError(f"{name} has {a.size} entries, expected {n}")
        return torch.from_numpy(a.astype(np.int64))

    def prompt_text(self, i: int) -> str:
        if i < len(self.records):
            r = self.records[i]
            for k in ("prompt", "text", "caption"):
                if isinstance(r.get(k), str):
                    return r[k]
        return decode_tokens(self.tokens[i].tolist(), self.vocab)


def decode_tokens(ids, vocab) -> str:
    return " ".join(vocab[i] for i in ids if i != PAD_ID)


def images_to_float(u8: torch.Tensor) -> torch.Tensor:
    """uint8 [B,3,H,W] -> float32 in [-1, 1]."""
    return u8.float().div_(127.5).sub_(1.0)


def float_to_images(x: torch.Tensor) -> np.ndarray:
    """float [B,3,H,W] in [-1,1] -> uint8 [B,H,W,3]."""
    x = ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return x.permute(0, 2, 3, 1).cpu().numpy()


def null_tokens(batch: int, max_tokens: int) -> torch.Tensor:
    t = torch.zeros(batch, max_tokens, dtype=torch.long)
    t[:, 0] = NULL_ID
    return t


# ----------------------------------------------------------------------------
# layers
# ----------------------------------------------------------------------------

def key_padding_bias(tokens: torch.Tensor) -> torch.Tensor:
    """tokens [B,T] -> additive bias [B,1,1,T]: 0 for real tokens, MASK_NEG for padding (id 0)."""
    return (tokens == PAD_ID).float().mul(MASK_NEG)[:, None, None, :]


class Dense(nn.Conv2d):
    """Linear layer computed as a 1x1 convolution on channel-first tensors.

    Accepts [B,C], [B,C,T] or [B,C,H,W]. On Debian's torch 1.13 CPU build a 1x1
    conv is 10-50x faster than nn.Linear / addmm for these sizes.
    """

    def __init__(self, cin: int, cout: int, bias: bool = True):
        super().__init__(cin, cout, 1, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 2:
            return super().forward(x[:, :, None, None])[:, :, 0, 0]
        if x.dim() == 3:
            return super().forward(x.unsqueeze(2)).squeeze(2)
        return super().forward(x)


class ChannelLayerNorm(nn.Module):
    """LayerNorm over the channel dim of a channel-first tensor [B,C,T] (or [B,C])."""

    def __init__(self, ch: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(ch))
        self.bias = nn.Parameter(torch.zeros(ch))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mu = x.mean(1, keepdim=True)
        xc = x - mu
        var = (xc * xc).mean(1, keepdim=True)
        y = xc / torch.sqrt(var + self.eps)
        shape = (1, -1) + (1,) * (x.dim() - 2)
        return y * self.weight.reshape(shape) + self.bias.reshape(shape)


class TokenAttention(nn.Module):
    """Multi-head self-attention over a short channel-first token sequence [B,D,T]."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.scale = 1.0 / math.sqrt(dim // heads)
        self.qkv = Dense(dim, 3 * dim)
        self.proj = Dense(dim, dim)

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        b, d, t = x.shape
        h = self.heads
        qkv = self.qkv(x).reshape(b, 3, h, d // h, t)
        q, k, v = qkv[:, 0], qkv[:, 1], qkv[:, 2]                       # B,h,hd,T
        att = torch.matmul(q.transpose(-1, -2), k) * self.scale + bias  # B,h,T,T
        att = att.softmax(dim=-1)
        y = torch.matmul(v, att.transpose(-1, -2))                       # B,h,hd,T
        return self.proj(y.reshape(b, d, t))


class TransformerLayer(nn.Module):
    """Pre-norm transformer encoder layer on [B,D,T] (hand-written: plain ONNX ops, 1x1-conv linears)."""

    def __init__(self, dim: int, heads: int, ff: int):
        super().__init__()
        self.ln1 = ChannelLayerNorm(dim)
        self.attn = TokenAttention(dim, heads)
        self.ln2 = ChannelLayerNorm(dim)
        self.ff1 = Dense(dim, ff)
        self.ff2 = Dense(ff, dim)

    def forward(self, x, bias):
        x = x + self.attn(self.ln1(x), bias)
        return x + self.ff2(F.gelu(self.ff1(self.ln2(x))))


class TextEncoder(nn.Module):
    """Token embedding + learned positions + N pre-norm transformer layers.

    Returns (token features [B,D,T] channel-first, additive key-padding bias
    [B,1,1,T], masked-mean pooled vector [B,D]).
    """

    def __init__(self, vocab_size: int, max_tokens: int, dim: int = 128, layers: int = 2,
                 heads: int = 4, ff: int = 256):
        super().__init__()
        self.tok = nn.Embedding(vocab_size, dim)
        self.pos = nn.Parameter(torch.zeros(1, dim, max_tokens))
        nn.init.normal_(self.tok.weight, std=0.02)
        nn.init.normal_(self.pos, std=0.02)
        self.layers = nn.ModuleList([TransformerLayer(dim, heads, ff) for _ in range(layers)])
        self.ln = ChannelLayerNorm(dim)

    def forward(self, tokens: torch.Tensor):
        bias = key_padding_bias(tokens)
        x = self.tok(tokens).transpose(1, 2) + self.pos                  # B,D,T
        for layer in self.layers:
            x = layer(x, bias)
        x = self.ln(x)
        keep = (tokens != PAD_ID).float().unsqueeze(1)                   # B,1,T
        pooled = (x * keep).sum(2) / keep.sum(2).clamp(min=1.0)
        return x, bias, pooled


def group_norm(ch: int) -> nn.GroupNorm:
    return nn.GroupNorm(min(8, ch), ch)


class CrossAttention2d(nn.Module):
    """Image feature map [B,C,H,W] attends to text tokens [B,D,T] (residual).

    All projections are 1x1 convolutions (fast on this torch build).
    """

    def __init__(self, ch: int, text_dim: int, heads: int = 4, zero_init: bool = True):
        super().__init__()
        self.heads = heads
        self.scale = 1.0 / math.sqrt(ch // heads)
        self.norm = group_norm(ch)
        self.q = nn.Conv2d(ch, ch, 1)
        self.kv = Dense(text_dim, 2 * ch)
        self.proj = nn.Conv2d(ch, ch, 1)
        if zero_init:
            nn.init.zeros_(self.proj.weight)
            nn.init.zeros_(self.proj.bias)

    def forward(self, x, text, bias):
        b, c, hh, ww = x.shape
        h = self.heads
        hd = c // h
        t = text.shape[2]
        q = self.q(self.norm(x)).reshape(b, h, hd, hh * ww)              # B,h,hd,N
        kv = self.kv(text).reshape(b, 2, h, hd, t)
        k, v = kv[:, 0], kv[:, 1]                                        # B,h,hd,T
        att = torch.matmul(q.transpose(-1, -2), k) * self.scale          # B,h,N,T
        att = (att + bias).softmax(dim=-1)
        y = torch.matmul(v, att.transpose(-1, -2))                       # B,h,hd,N
        return x + self.proj(y.reshape(b, c, hh, ww))


class SelfAttention2d(nn.Module):
    """Self-attention over the pixels of a (small) feature map, residual."""

    def __init__(self, ch: int, heads: int = 4):
        super().__init__()
        self.heads = heads
        self.scale = 1.0 / math.sqrt(ch // heads)
        self.norm = group_norm(ch)
        self.qkv = nn.Conv2d(ch, 3 * ch, 1)
        self.proj = nn.Conv2d(ch, ch, 1)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def forward(self, x):
        b, c, hh, ww = x.shape
        h = self.heads
        hd = c // h
        n = hh * ww
        qkv = self.qkv(self.norm(x)).reshape(b, 3, h, hd, n)
        q, k, v = qkv[:, 0], qkv[:, 1], qkv[:, 2]                      # B,h,hd,N
        att = torch.matmul(q.transpose(-1, -2), k) * self.scale              # B,h,N,N
        att = att.softmax(dim=-1)
        y = torch.matmul(v, att.transpose(-1, -2))                      # B,h,hd,N
        return x + self.proj(y.reshape(b, c, hh, ww))


# ----------------------------------------------------------------------------
# EMA
# ----------------------------------------------------------------------------

class EMA:
    """Exponential moving average of parameters (and buffers copied).

    Effective decay is min(decay, (1 + step) / (10 + step)) so very short runs
    still export something close to the trained weights.
    """

    def __init__(self, model: nn.Module, decay: float = 0.999):
        self.decay = decay
        self.shadow = {k: v.detach().clone() for k, v in model.state_dict().items()}

    @torch.no_grad()
    def update(self, model: nn.Module, step: int) -> None:
        d = min(self.decay, (1.0 + step) / (10.0 + step))
        for k, v in model.state_dict().items():
            s = self.shadow[k]
            if v.dtype.is_floating_point:
                s.mul_(d).add_(v.detach(), alpha=1.0 - d)
            else:
                s.copy_(v)

    def state_dict(self):
        return self.shadow

    def load_state_dict(self, sd):
        self.shadow = {k: v.clone() for k, v in sd.items()}


# ----------------------------------------------------------------------------
# schedule
# ----------------------------------------------------------------------------

def optimizer_step(model: nn.Module, opt, loss: torch.Tensor, step: int) -> float:
    """Back-propagate `loss`, clip the gradients to norm 1 and step `opt`; the loss's value, which must be finite
    (`step` names the step in the message)."""
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    lv = loss.item()
    if not math.isfinite(lv):
        raise SystemExit(f"non-finite loss at step {step}")
    return lv


def cosine_lr(base: float, progress: float, step: int, warmup: int, floor: float = 0.05) -> float:
    """Linear warmup over `warmup` steps, then cosine from base to floor*base over progress 0..1."""
    p = min(max(progress, 0.0), 1.0)
    lr = base * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * p)))
    if step < warmup:
        lr *= (step + 1) / warmup
    return lr


# ----------------------------------------------------------------------------
# metrics
# ----------------------------------------------------------------------------

def roc_auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """ROC-AUC via the Mann-Whitney U statistic with average ranks for ties."""
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels).astype(bool)
    n_pos = int(labels.sum())
    n_neg = labels.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(scores, kind="mergesort")
    s = scores[order]
    ranks = np.empty(s.size, dtype=np.float64)
    i = 0
    while i < s.size:
        j = i
        while j + 1 < s.size and s[j + 1] == s[i]:
            j += 1
        ranks[i:j + 1] = 0.5 * (i + j) + 1.0
        i = j + 1
    r = np.empty_like(ranks)
    r[order] = ranks
    return float((r[labels].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


# ----------------------------------------------------------------------------
# logging
# ----------------------------------------------------------------------------

class CsvLog:
    def __init__(self, path: str, fields, append: bool):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        exists = os.path.exists(path) and os.path.getsize(path) > 0
        self.f = open(path, "a" if append else "w", newline="")
        self.w = csv.DictWriter(self.f, fieldnames=fields)
        if not (append and exists):
            self.w.writeheader()
        self.f.flush()

    def write(self, row: dict) -> None:
        self.w.writerow(row)
        self.f.flush()

    def close(self):
        self.f.close()


def write_json(path: str, obj) -> None:
    d = os.path.dirname(path)
    if d:
        os.makedirs(d, exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=2)
        f.write("\n")
    os.replace(tmp, path)


def opt_state_compact(opt) -> dict:
    """Adam's moments in bfloat16 (new tensors: the optimizer's own state stays float32)."""
    st = opt.state_dict()
    st["state"] = {pid: {k: (v.to(torch.bfloat16) if k in ("exp_avg", "exp_avg_sq") else v) for k, v in s.items()}
                   for pid, s in st["state"].items()}
    return st


def opt_state_restore(opt, st) -> None:
    """Load what opt_state_compact saved, the moments back in float32."""
    for s in st["state"].values():
        for k in ("exp_avg", "exp_avg_sq"):
            s[k] = s[k].float()
    opt.load_state_dict(st)


def save_checkpoint(path: str, obj) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + ".tmp"
    torch.save(obj, tmp)
    os.replace(tmp, path)


# ----------------------------------------------------------------------------
# PNG
# ----------------------------------------------------------------------------

def write_png(path: str, rgb: np.ndarray) -> None:
    """Write uint8 [H,W,3] as PNG (PIL if available, else a minimal zlib writer)."""
    rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
    try:
        from PIL import Image  # type: ignore
        Image.fromarray(rgb, "RGB").save(path)
        return
    except ImportError:
        pass
    h, w, _ = rgb.shape
    raw = b"".join(b"\x00" + rgb[y].tobytes() for y in range(h))

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
    png += chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")
    with open(path, "wb") as f:
        f.write(png)


def image_grid(imgs: np.ndarray, cols: int, scale: int = 1, pad: int = 1) -> np.ndarray:
    """uint8 [N,H,W,3] -> one grid image (white separators), optional nearest upscaling."""
    n, h, w, _ = imgs.shape
    if scale > 1:
        imgs = imgs.repeat(scale, axis=1).repeat(scale, axis=2)
        h, w = h * scale, w * scale
    rows = (n + cols - 1) // cols
    out = np.full((rows * (h + pad) + pad, cols * (w + pad) + pad, 3), 255, dtype=np.uint8)
    for i in range(n):
        r, c = divmod(i, cols)
        out[pad + r * (h + pad):pad + r * (h + pad) + h, pad + c * (w + pad):pad + c * (w + pad) + w] = imgs[i]
    return out


# ----------------------------------------------------------------------------
# ONNX export / check
# ----------------------------------------------------------------------------

def export_onnx(module: nn.Module, args: tuple, path: str, input_names, output_names,
                max_mb: float = 15.0) -> dict:
    """Export with dynamic batch (opset 14), run onnx.checker, check size.

    Returns info dict {bytes, opset, nodes}.
    """
    import onnx
    module.eval()
    os.makedirs(os.path.dirname(os.path.abspath(path)) or ".", exist_ok=True)
    dyn = {n: {0: "batch"} for n in list(input_names) + list(output_names)}
    with torch.no_grad():
        torch.onnx.export(module, args, path, input_names=list(input_names),
                          output_names=list(output_names), dynamic_axes=dyn,
                          opset_version=14, do_constant_folding=True)
    m = onnx.load(path)
    onnx.checker.check_model(m)
    size = os.path.getsize(path)
    if size > max_mb * 1024 * 1024:
        raise RuntimeError(f"{path} is {size / 1e6:.1f} MB > {max_mb} MB")
    ops = sorted({n.op_type for n in m.graph.node})
    print(f"onnx: wrote {path} ({size / 1e6:.2f} MB, {len(m.graph.node)} nodes), checker OK; ops: {' '.join(ops)}")
    return {"bytes": size, "opset": 14, "nodes": len(m.graph.node), "ops": ops}


def onnx_state_dict(onnx_path: str) -> dict:
    """The weights of a model exported by export_onnx, by state-dict name (ONNX initializers carry those names)."""
    import onnx
    from onnx import numpy_helper
    graph = onnx.load(onnx_path).graph
    src = {i.name: torch.from_numpy(numpy_helper.to_array(i).copy()) for i in graph.initializer}
    # the exporter decomposes LayerNorm/GroupNorm and names their affine constants onnx::Mul_N / onnx::Add_N; the
    # node that applies one is named after the module ("/d0/n1/Mul"): Mul is its weight, Add its bias
    for n in graph.node:
        if n.op_type in ("Mul", "Add"):
            for i in n.input:
                if i.startswith("onnx::") and i in src:
                    module = n.name.strip("/").rsplit("/", 1)[0].replace("/", ".")
                    src.setdefault(module + (".weight" if n.op_type == "Mul" else ".bias"), src[i].flatten())
    return src


def check_with_onnxruntime_node(path: str, inputs: dict, outputs: dict, tol: float = 1e-3) -> str:
    """Numerically compare the exported graph against torch using onnxruntime-node.

    onnxruntime is not available in Python here, but the repo depends on
    onnxruntime-node; if `node` and node_modules/onnxruntime-node exist we run
    training/check_onnx.mjs on reference tensors. Returns "ok ...", "skipped ..." or raises.
    """
    node = shutil.which("node")
    if node is None or not os.path.isdir(os.path.join(REPO_ROOT, "node_modules", "onnxruntime-node")):
        return "skipped (node or onnxruntime-node not installed)"
    tmp = tempfile.mkdtemp(prefix="onnxcheck-")
    try:
        spec = {"model": os.path.abspath(path), "tol": tol, "inputs": {}, "outputs": {}}
        for kind, tensors in (("inputs", inputs), ("outputs", outputs)):
            for name, t in tensors.items():
                arr = t.detach().cpu().numpy()
                dtype = {np.dtype("float32"): "float32", np.dtype("int64"): "int64"}[arr.dtype]
                f = os.path.join(tmp, f"{kind}_{name}.bin")
                arr.astype(arr.dtype.newbyteorder("<")).tofile(f)
                spec[kind][name] = {"file": f, "dtype": dtype, "dims": list(arr.shape)}
        sp = os.path.join(tmp, "spec.json")
        write_json(sp, spec)
        r = subprocess.run([node, os.path.join(TRAINING_DIR, "check_onnx.mjs"), sp],
                           cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
        msg = (r.stdout + r.stderr).strip()
        if r.returncode != 0:
            raise RuntimeError(f"onnxruntime-node check failed: {msg}")
        return msg
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


class Timer:
    def __init__(self, offset: float = 0.0):
        self.start = time.time() - offset

    def elapsed(self) -> float:
        return time.time() - self.start
