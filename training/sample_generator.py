"""Quick visual check of a generator checkpoint: Euler sampling with CFG, written as a PNG grid.

  /usr/bin/python3 training/sample_generator.py --model-ckpt training/checkpoints/generator.pt \
      --data D --n 64 --steps 20 --guidance 3 --out grid.png

Uses the first --n prompts of D (or a random subset with --shuffle), the EMA weights
(--raw for the raw weights), and exactly the sampler the TypeScript side implements:
x = eps at t = 1; x <- x + (t_next - t) * v for t = 1, 1-1/N, ..., 1/N;
v = v_null + g * (v_cond - v_null). With --with-real the grid alternates
generated / dataset image for each prompt. Prompts are printed with their grid index.
"""
from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import sys  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import Dataset, float_to_images, image_grid, null_tokens, setup_torch, write_png  # noqa: E402
from nets import FlowUNet  # noqa: E402


@torch.no_grad()
def sample(model, tokens: torch.Tensor, steps: int, guidance: float, gen: torch.Generator, size: int = 32,
           batch: int = 64) -> torch.Tensor:
    """tokens [N,T] -> images [N,3,size,size] in [-1,1] (Euler, rectified flow, CFG)."""
    outs = []
    for i in range(0, tokens.shape[0], batch):
        tok = tokens[i:i + batch]
        b = tok.shape[0]
        x = torch.randn(b, 3, size, size, generator=gen)
        nul = null_tokens(b, tok.shape[1])
        for k in range(steps):
            t = 1.0 - k / steps
            t_next = 1.0 - (k + 1) / steps
            tt = torch.full((b,), t)
            if guidance == 1.0:
                v = model(x, tt, tok)
            elif guidance == 0.0:
                v = model(x, tt, nul)
            else:
                vv = model(torch.cat([x, x]), torch.cat([tt, tt]), torch.cat([tok, nul]))
                vc, vu = vv[:b], vv[b:]
                v = vu + guidance * (vc - vu)
            x = x + (t_next - t) * v
        outs.append(x)
    return torch.cat(outs)


def load_model(path: str, raw: bool = False):
    ck = torch.load(path, map_location="cpu")
    cfg = ck["cfg"]
    model = FlowUNet(cfg["vocab_size"], cfg["max_tokens"], ch=tuple(cfg["channels"]), text_layers=cfg["text_layers"])
    model.load_state_dict(ck["model"] if raw else ck["ema"])
    model.eval()
    return model, ck


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model-ckpt", required=True)
    ap.add_argument("--data", required=True, help="dataset folder (prompts and vocab)")
    ap.add_argument("--n", type=int, default=64)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--guidance", type=float, default=3.0)
    ap.add_argument("--out", default="grid.png")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--scale", type=int, default=3, help="nearest-neighbour upscaling of each tile")
    ap.add_argument("--cols", type=int, default=8)
    ap.add_argument("--shuffle", action="store_true", help="random prompts instead of the first n")
    ap.add_argument("--with-real", action="store_true", help="interleave the dataset image of each prompt")
    ap.add_argument("--raw", action="store_true", help="use raw (non-EMA) weights")
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    setup_torch(a.seed, a.threads)
    ds = Dataset(a.data)
    model, ck = load_model(a.model_ckpt, a.raw)
    if ck["vocab"] != ds.vocab:
        print("warning: dataset vocab differs from the checkpoint's vocab", file=sys.stderr)
    gen = torch.Generator().manual_seed(a.seed)
    n = min(a.n, ds.count)
    idx = torch.randperm(ds.count, generator=gen)[:n] if a.shuffle else torch.arange(n)
    imgs = float_to_images(sample(model, ds.tokens[idx], a.steps, a.guidance, gen, ds.size))
    for j, i in enumerate(idx.tolist()):
        print(f"{j:3d}  {ds.prompt_text(i)}")
    if a.with_real:
        real = ds.images[idx].permute(0, 2, 3, 1).numpy()
        imgs = np.stack([imgs, real], 1).reshape(-1, *imgs.shape[1:])
    write_png(a.out, image_grid(imgs, a.cols * (2 if a.with_real else 1), a.scale))
    print(f"wrote {a.out} ({n} samples, step {ck['step']}, {a.steps} steps, guidance {a.guidance})")


if __name__ == "__main__":
    main()
