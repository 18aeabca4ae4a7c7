"""Quick self-test of the training helpers (a few seconds, no dataset needed).

  /usr/bin/python3 training/selftest.py

- roc_auc against a brute-force pairwise count (with ties)
- the zlib PNG fallback writer (decoded back with PIL if available)
- ONNX export of both networks with *random non-zero* weights (the trainers'
  zero-initialised output layers make a fresh model's check trivial), dynamic
  batch, onnx.checker, and a numeric comparison with onnxruntime-node.
"""
from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import sys  # noqa: E402
import tempfile  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
from common import check_with_onnxruntime_node, export_onnx, null_tokens, roc_auc, setup_torch  # noqa: E402
from nets import FlowUNet, Verifier  # noqa: E402


def test_auc():
    rng = np.random.default_rng(0)
    for _ in range(20):
        n = int(rng.integers(2, 60))
        s = rng.integers(0, 5, n).astype(float)  # many ties
        y = rng.integers(0, 2, n)
        if y.min() == y.max():
            continue
        pos, neg = s[y == 1], s[y == 0]
        brute = ((pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()) / (len(pos) * len(neg))
        assert abs(roc_auc(s, y) - brute) < 1e-12, (roc_auc(s, y), brute)
    assert roc_auc(np.array([0.1, 0.9]), np.array([0, 1])) == 1.0
    print("auc ok")


def test_png():
    rgb = (np.arange(7 * 5 * 3) % 256).astype(np.uint8).reshape(7, 5, 3)
    with tempfile.TemporaryDirectory() as d:
        p = os.path.join(d, "x.png")
        import builtins
        real_import = builtins.__import__

        def no_pil(name, *a, **k):
            if name == "PIL" or name.startswith("PIL."):
                raise ImportError("simulated")
            return real_import(name, *a, **k)

        builtins.__import__ = no_pil
        try:
            common.write_png(p, rgb)
        finally:
            builtins.__import__ = real_import
        try:
            from PIL import Image
            back = np.asarray(Image.open(p).convert("RGB"))
            assert (back == rgb).all()
            print("png fallback ok (decoded with PIL)")
        except ImportError:
            assert open(p, "rb").read(8) == b"\x89PNG\r\n\x1a\n"
            print("png fallback ok (header only)")


def randomize(model):
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.05)


def test_onnx():
    with tempfile.TemporaryDirectory() as d:
        g = torch.Generator().manual_seed(0)
        tok = torch.zeros(3, 16, dtype=torch.long)
        tok[0, :6] = torch.tensor([2, 3, 4, 2, 9, 13])
        tok[1, :8] = torch.tensor([2, 9, 13, 5, 4, 2, 11, 14])
        tok[2:] = null_tokens(1, 16)
        m = FlowUNet(15, 16)
        randomize(m)
        m.eval()
        p = os.path.join(d, "g.onnx")
        export_onnx(m, (torch.randn(2, 3, 32, 32), torch.rand(2), tok[:2]), p, ["x", "t", "tokens"], ["v"])
        x, t = torch.randn(3, 3, 32, 32, generator=g), torch.tensor([1.0, 0.37, 0.0])
        with torch.no_grad():
            v = m(x, t, tok)
        print("generator |v| mean", float(v.abs().mean()))
        print("generator:", check_with_onnxruntime_node(p, {"x": x, "t": t, "tokens": tok}, {"v": v}, tol=1e-3))
        m = Verifier(15, 16)
        randomize(m)
        m.eval()
        p = os.path.join(d, "v.onnx")
        export_onnx(m, (torch.rand(2, 3, 32, 32) * 2 - 1, tok[:2]), p, ["image", "tokens"], ["logit"])
        img = torch.rand(3, 3, 32, 32, generator=g) * 2 - 1
        with torch.no_grad():
            lg = m(img, tok)
        print("verifier logits", lg.tolist())
        print("verifier:", check_with_onnxruntime_node(p, {"image": img, "tokens": tok}, {"logit": lg}, tol=1e-3))


if __name__ == "__main__":
    setup_torch(0, 2)
    test_auc()
    test_png()
    test_onnx()
    print("selftest ok")
