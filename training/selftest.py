"""Quick self-test of the training helpers (a few seconds, no dataset needed).

  /usr/bin/python3 training/selftest.py

- roc_auc against a brute-force pairwise count (with ties)
- the zlib PNG fallback writer (decoded back with PIL if available)
- ONNX export of both networks with *random non-zero* weights (the trainers'
  zero-initialised output layers make a fresh model's check trivial), dynamic
  batch, onnx.checker, and a numeric comparison with onnxruntime-node.
- the module verifier's composition and the perception trainer's decoding on hand-made object maps
- the corrector's copy gate, edit region and colour hint; where a run keeps its log and checkpoint
"""
from __future__ import annotations

import math
import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import sys  # noqa: E402
import tempfile  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
from common import check_with_onnxruntime_node, export_onnx, null_tokens, roc_auc, setup_torch  # noqa: E402
from nets import FlowUNet, ModuleVerifier, Verifier, object_map_targets  # noqa: E402


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

        m = ModuleVerifier()
        randomize(m)
        m.eval()
        spec = torch.zeros(3, 28, dtype=torch.long)
        spec[0, :5] = torch.tensor([1, 1, 1, 0, 0])                          # a red circle
        spec[1, :10] = torch.tensor([2, 5, 1, 0, 0, 1, 0, 1, 1, 0])           # a circle left of a blue square
        spec[2, :5] = torch.tensor([4, 0, 3, 0, 0])                          # exactly three stars
        spec[2, 20:22] = torch.tensor([4, 4])
        p = os.path.join(d, "m.onnx")
        export_onnx(m, (torch.rand(2, 3, 32, 32) * 2 - 1, spec[:2]), p, ["image", "spec"], ["logit"])
        with torch.no_grad():
            lg = m(img, spec)
        print("module verifier:", check_with_onnxruntime_node(p, {"image": img, "spec": spec}, {"logit": lg}, tol=1e-3))


def test_modules():
    """The module verifier's find/count composition on a hand-made object map (centres known for sure)."""
    m = ModuleVerifier()
    objects = torch.zeros(1, 8, 6)
    objects[0, 0] = torch.tensor([1, 1, 0.15, 0.5, 0.2, 0.2])              # red circle, left
    objects[0, 1] = torch.tensor([2, 5, 0.85, 0.5, 0.2, 0.2])              # blue square, right
    objects[0, 2] = torch.tensor([4, 4, 0.5, 0.1, 0.1, 0.1])               # two green stars
    objects[0, 3] = torch.tensor([4, 4, 0.5, 0.9, 0.1, 0.1])
    centre, cls, col, box = object_map_targets(objects, 8)
    assert int(centre.sum()) == 4 and int((cls >= 0).sum()) == 4
    big = 12.0
    omap = torch.full((1, 21, 64), -big)
    omap[:, 0] = torch.where(centre > 0, big, -big)
    omap[:, 1:7] = -big + 2 * big * torch.nn.functional.one_hot(cls.clamp(min=0), 6).float().permute(0, 2, 1)
    omap[:, 7:17] = -big + 2 * big * torch.nn.functional.one_hot(col.clamp(min=0), 10).float().permute(0, 2, 1)
    m.object_map = lambda image: omap.reshape(1, 21, 8, 8).expand(image.shape[0], -1, -1, -1)

    def row(*includes, exclude=()):
        r = torch.zeros(28, dtype=torch.long)
        for i, inc in enumerate(includes):
            r[i * 5:i * 5 + len(inc)] = torch.tensor(inc)
        for i, exc in enumerate(exclude):
            r[20 + 2 * i:22 + 2 * i] = torch.tensor(exc)
        return r

    cases = {
        "a red circle": (row([1, 1, 1]), True),
        "a blue circle": (row([1, 5, 1]), False),
        "a red circle and a blue square": (row([1, 1, 1], [2, 5, 1]), True),
        "a blue circle and a red square": (row([1, 5, 1], [2, 1, 1]), False),
        "two stars": (row([4, 0, 2], exclude=[[4, 3]]), True),
        "three stars": (row([4, 0, 3], exclude=[[4, 4]]), False),
        "one star (exactly)": (row([4, 0, 1], exclude=[[4, 2]]), False),
        "a triangle": (row([3, 0, 1]), False),
    }
    with torch.no_grad():
        p = torch.sigmoid(m(torch.zeros(len(cases), 3, 32, 32), torch.stack([r for r, _ in cases.values()])))
    for (name, (_, want)), pv in zip(cases.items(), p.tolist()):
        assert (pv > 0.9) if want else (pv < 0.1), (name, pv)
    print("modules ok")


def test_perception():
    """train_perception's reading of an object map (the runtime's decoding), its scoring and the flip."""
    from train_perception import compare, decode, flip
    objects = torch.zeros(1, 8, 6)
    objects[0, 0] = torch.tensor([1, 1, 0.15, 0.5, 0.2, 0.2])              # red circle, left
    objects[0, 1] = torch.tensor([4, 4, 0.55, 0.12, 0.1, 0.1])             # green star, top
    centre, cls, col, box = object_map_targets(objects, 8)
    big = 12.0
    omap = torch.full((21, 64), -big)
    omap[0] = torch.where(centre[0] > 0, big, -big)
    omap[1:7] = -big + 2 * big * torch.nn.functional.one_hot(cls[0].clamp(min=0), 6).float().t()
    omap[7:17] = -big + 2 * big * torch.nn.functional.one_hot(col[0].clamp(min=0), 10).float().t()
    omap[17:21] = torch.logit(box[0].clamp(1e-4, 1 - 1e-4))
    found = decode(omap.reshape(21, 8, 8).numpy(), 8)
    assert [(c, k) for c, k, _, _ in found] == [(0, 0), (3, 3)] or [(c, k) for c, k, _, _ in found] == [(3, 3), (0, 0)]
    truth = [(0, 0, 0.15, 0.5), (3, 3, 0.55, 0.12)]
    assert compare(found, truth) == (True, True, True, 2), compare(found, truth)
    assert compare(found, [(0, 0, 0.15, 0.5), (3, 3, 0.55, 0.5)])[2] is False            # star misplaced
    assert compare(found[:1], truth)[:2] == (False, False)                                 # one missed
    assert compare(found, [(0, 2, 0.15, 0.5), (3, 3, 0.55, 0.12)])[0] is False            # wrong colour
    image = torch.arange(2 * 3 * 32 * 32, dtype=torch.float32).reshape(2, 3, 32, 32)
    cells = torch.zeros(2, 8, 8, dtype=torch.bool)
    cells[:, 2, 1] = True
    fi, fo, fc = flip(image, objects.expand(2, -1, -1), cells, torch.tensor([True, False]))
    assert torch.equal(fi[0], image[0].flip(-1)) and torch.equal(fi[1], image[1])
    assert bool(fc[0, 2, 6]) and not bool(fc[0, 2, 1]) and bool(fc[1, 2, 1])             # the cell map flips with it
    assert abs(float(fo[0, 0, 2]) - 0.85) < 1e-6 and float(fo[1, 0, 2]) == float(objects[0, 0, 2])
    assert float(fo[0, 2, 2]) == 0.0                                                       # empty rows stay empty
    print("perception ok")


def test_shape_reader():
    """The shape reader's targets (class around an object's centre, a ring ignored, "no object" elsewhere), its reading
    in place of the map's class, and the two-output reflector that keeps the map's weights under their own names."""
    from nets import ObjectMapNet, ObjectMapWithShapes, shape_reader_targets
    from train_perception import decode
    objects = torch.zeros(1, 8, 6)
    objects[0, 0] = torch.tensor([5, 1, 0.5, 0.5, 0.2, 0.2])                 # red diamond in the middle
    t = shape_reader_targets(objects, 6, 16)[0]
    assert t[8, 8] == 4 and t[7, 9] == 4 and t[9, 7] == 4                   # the diamond's cells (class id 5 -> 4)
    assert t[10, 8] == -100 and t[6, 6] == -100                              # the ring: no target
    assert t[8, 11] == 6 and t[0, 0] == 6                                    # "no object" elsewhere
    from nets import shape_reader_soft_targets, soft_cross_entropy
    fits = torch.zeros(1, 8, 6)
    fits[0, 0] = torch.tensor([0.80, 0.50, 0.40, 0.40, 0.82, 0.60])         # a diamond, a circle a close second
    q, mask = shape_reader_soft_targets(objects, fits, 6, 16, temperature=0.03)
    assert torch.equal(mask[0], t != -100)                                   # the same cells taught, the ring not
    assert abs(float(q[0, :, 8, 8].sum()) - 1) < 1e-6 and float(q[0, 6, 8, 8]) == 0
    assert float(q[0, 4, 8, 8]) > float(q[0, 0, 8, 8]) > 0.3 > float(q[0, 5, 8, 8])   # diamond, circle close, cross far
    assert float(q[0, 6, 0, 0]) == 1                                         # "no object" one-hot elsewhere
    q0, _ = shape_reader_soft_targets(objects, fits, 6, 16, temperature=1e-4)
    assert torch.equal(q0.argmax(1)[mask], t[None][mask])                    # a cold temperature: the hard targets
    logits = torch.randn(1, 7, 16, 16)
    hard_loss = torch.nn.functional.cross_entropy(logits, t[None], ignore_index=-100)
    assert abs(float(soft_cross_entropy(logits, q0, mask)) - float(hard_loss)) < 1e-4
    omap = np.full((21, 8, 8), -12.0, np.float32)
    omap[0, 4, 4] = 12.0                                                     # one object centred in cell (4, 4)
    omap[1 + 3, 4, 4] = 12.0                                                 # the map reads a star
    omap[7, 4, 4] = 12.0                                                     # red
    shapes = np.zeros((7, 16, 16), np.float32)
    shapes[4, 7:10, 7:10] = 8.0                                              # the reader: a diamond around its centre (0.5, 0.5)
    assert [(c, k) for c, k, _, _ in decode(omap, 8)] == [(3, 0)]
    assert [(c, k) for c, k, _, _ in decode(omap, 8, shapes)] == [(4, 0)]
    shapes[6, 7:10, 7:10] = 9.0                                              # the reader: no object there
    assert decode(omap, 8, shapes) == []
    both = ObjectMapWithShapes()
    plain = ObjectMapNet().state_dict()
    assert all(k in both.state_dict() for k in plain)
    both.load_state_dict({**both.state_dict(), **plain})
    o, s = both(torch.zeros(2, 3, 32, 32))
    assert tuple(o.shape) == (2, 21, 8, 8) and tuple(s.shape) == (2, 7, 16, 16)
    from train_shape_reader import palette_pixels, recolor
    from common import BACKGROUND, PALETTE
    img = torch.tensor(BACKGROUND, dtype=torch.uint8).view(1, 3, 1, 1).repeat(1, 1, 4, 4)
    red = torch.tensor(PALETTE[0][1], dtype=torch.float32)
    img[0, :, 1, 1] = red.to(torch.uint8)                                                  # pure red
    img[0, :, 1, 2] = (0.5 * red + 0.5 * torch.tensor(BACKGROUND, dtype=torch.float32)).round().to(torch.uint8)
    lab, alpha = palette_pixels(img)
    assert lab[0, 1, 1] == 0 and lab[0, 1, 2] == 0 and lab[0, 0, 0] == -1
    assert abs(float(alpha[0, 1, 1]) - 1) < 1e-2 and abs(float(alpha[0, 1, 2]) - 0.5) < 2e-2
    out = recolor(img, lab, alpha, torch.tensor([True]), torch.Generator().manual_seed(1))
    lab2, alpha2 = palette_pixels(out)
    assert lab2[0, 1, 1] == lab2[0, 1, 2] and lab2[0, 1, 1] >= 0                             # one new colour for both
    assert abs(float(alpha2[0, 1, 2]) - 0.5) < 3e-2                                         # at the same blend weight
    assert torch.equal(out[0, :, 0, 0], img[0, :, 0, 0])                                   # background untouched
    assert torch.equal(recolor(img, lab, alpha, torch.tensor([False]), torch.Generator()), img)
    import re
    import train_perception
    with open(os.path.join(common.REPO_ROOT, "src", "backends", "embedded", "perception.ts")) as f:
        source = f.read()
    for name in ("CENTRE_THRESHOLD", "NO_OBJECT", "READER_WINDOW", "SAME_OBJECT"):   # the runtime's decoding, twinned
        assert float(re.search(rf"const {name} = ([0-9.]+);", source).group(1)) == getattr(train_perception, name), name
    from train_shape_reader import shift
    img = torch.tensor(BACKGROUND, dtype=torch.uint8).view(1, 3, 1, 1).repeat(2, 1, 32, 32)
    img[:, :, 10:14, 2:6] = red.to(torch.uint8).view(1, 3, 1, 1)            # a box 4 px wide, 2 px from the left
    objects = torch.zeros(2, 8, 6)
    objects[:, 0] = torch.tensor([2, 1, 4 / 32, 12 / 32, 4 / 32, 4 / 32])
    seen = set()
    for k in range(40):
        moved, obj = shift(img, objects, 3, torch.Generator().manual_seed(k))
        for b in range(2):
            ys, xs = torch.nonzero(moved[b, 0] == PALETTE[0][1][0], as_tuple=True)
            assert len(xs) == 16 and int(xs.min()) >= 1                             # whole, a pixel off the border
            assert abs(float(obj[b, 0, 2]) - (float(xs.float().mean()) + 0.5) / 32) < 1e-5  # its centre moved with it
            assert abs(float(obj[b, 0, 3]) - (float(ys.float().mean()) + 0.5) / 32) < 1e-5
            assert torch.equal(obj[b, 1:], objects[b, 1:])                        # empty rows untouched
            seen.add(int(xs.min()) - 2)
    assert seen == {-1, 0, 1, 2, 3}, seen                                           # left room: 1 px of 2 kept
    print("shape reader ok")


def test_symmetries():
    """Up-down flips and transposes move an image, its detections and its cells together, and only images made of
    classes that are their own mirror image that way are moved."""
    from train_perception import symmetries
    img = torch.zeros(4, 1, 32, 32)
    img[:, 0, 4:8, 20:30] = 1.0                                              # a block 10 wide, 4 high, upper right
    objects = torch.zeros(4, 8, 6)
    objects[:, 0] = torch.tensor([2, 1, 25 / 32, 6 / 32, 10 / 32, 4 / 32])  # a square (class id 2)
    objects[3, 1] = torch.tensor([3, 1, 0.2, 0.8, 0.1, 0.1])                # image 3 also holds a triangle
    cells = torch.zeros(4, 8, 8, dtype=torch.bool)
    cells[:, 1, 6] = True
    seen = set()
    for k in range(30):
        im, ob, ce = symmetries(img, objects, cells, torch.Generator().manual_seed(k), transpose=True)
        assert torch.equal(im[3], img[3]) and torch.equal(ob[3], objects[3])  # a triangle: never moved
        for b in range(3):
            ys, xs = torch.nonzero(im[b, 0] > 0, as_tuple=True)
            cx, cy = (float(xs.float().mean()) + 0.5) / 32, (float(ys.float().mean()) + 0.5) / 32
            assert abs(float(ob[b, 0, 2]) - cx) < 1e-5 and abs(float(ob[b, 0, 3]) - cy) < 1e-5
            w, h = (int(xs.max() - xs.min()) + 1) / 32, (int(ys.max() - ys.min()) + 1) / 32
            assert abs(float(ob[b, 0, 4]) - w) < 1e-5 and abs(float(ob[b, 0, 5]) - h) < 1e-5
            gy, gx = torch.nonzero(ce[b], as_tuple=True)
            assert int(gx) == min(int(cx * 8), 7) and int(gy) == min(int(cy * 8), 7)   # the cell moved alike
            seen.add((round(cx, 3), round(cy, 3)))
    assert len(seen) == 4, seen                                              # as it was, flipped, transposed, both
    for k in range(10):
        _, ob, _ = symmetries(img, objects, cells, torch.Generator().manual_seed(k), transpose=False)
        assert torch.equal(ob[:, 0, 4:], objects[:, 0, 4:])                  # no transpose asked: sizes unchanged
    diamond = objects.clone()
    diamond[:, 0, 0] = 5
    moved = {tuple(symmetries(img, diamond, cells, torch.Generator().manual_seed(k), transpose=True)[1][0, 0, 2:4]
                   .tolist()) for k in range(20)}
    assert all(abs(x - 25 / 32) < 1e-6 for x, _ in moved) and len(moved) == 2   # a diamond: flipped, never transposed
    print("symmetries ok")


def test_blob_cells():
    """The pixels no object explains, as the evaluator classes them: a palette colour and its blend with the background
    are explained, the background is, a colour off every blend line is not; the loss weighs such empty cells more."""
    import re
    from nets import object_map_loss
    from train_perception import BG_TOLERANCE, BLEND_TOLERANCE, unexplained_cells
    with open(os.path.join(common.REPO_ROOT, "src", "shapeworld", "evaluate.ts")) as f:
        source = f.read()
    assert int(re.search(r"const BG_TOLERANCE = (\d+);", source).group(1)) == BG_TOLERANCE
    assert int(re.search(r"const BLEND_TOLERANCE = (\d+);", source).group(1)) == BLEND_TOLERANCE
    img = torch.zeros(1, 3, 32, 32, dtype=torch.uint8)
    img[:] = torch.tensor(common.BACKGROUND, dtype=torch.uint8).view(3, 1, 1)
    red = torch.tensor(common.PALETTE[0][1], dtype=torch.float32)
    half = ((red + torch.tensor(common.BACKGROUND, dtype=torch.float32)) / 2).round().to(torch.uint8)
    img[0, :, 0:4, 0:4] = red.to(torch.uint8).view(3, 1, 1)                  # cell (0, 0): red
    img[0, :, 0:4, 4:8] = half.view(3, 1, 1)                                  # cell (0, 1): red half blended
    img[0, :, 8:10, 12:13] = torch.tensor([40, 200, 200], dtype=torch.uint8).view(3, 1, 1)  # cell (2, 3): 2 teal pixels
    cells = unexplained_cells(img, 8)
    assert cells.shape == (1, 8, 8)
    assert int(cells[0, 2, 3]) == 2 and int(cells.sum()) == 2, cells
    m = torch.zeros(1, 21, 64)
    objects = torch.zeros(1, 8, 6)
    objects[0, 0] = torch.tensor([1, 1, 0.05, 0.05, 0.1, 0.1])                # an object centred in cell 0
    plain = object_map_loss(m, objects, 6, 10, 8)
    weight = torch.ones(1, 64)
    weight[0, 0] = 9.0                                                        # an object's cell: not a negative
    assert torch.allclose(object_map_loss(m, objects, 6, 10, 8, weight), plain)
    weight[0, 19] = 9.0
    assert float(object_map_loss(m, objects, 6, 10, 8, weight)) > float(plain)
    # the positive weight scales the centre loss at the object's cell only: at logit 0 that term is w * log 2
    lighter = object_map_loss(m, objects, 6, 10, 8, positive_weight=1.0)
    assert abs((float(plain) - float(lighter)) * 64 - 3 * math.log(2)) < 1e-4, (plain, lighter)
    print("blob cells ok")


def test_palette_input():
    """The palette features: a palette colour lies on its own line (along 1, off 0) and the background on none;
    a model given them starts, from a model without, as exactly that model."""
    from nets import ObjectMapNet, PaletteFeatures
    from train_perception import init_weight
    feats = PaletteFeatures()
    k = len(common.PALETTE)
    px = torch.tensor([[c / 127.5 - 1 for c in common.PALETTE[2][1]], [c / 127.5 - 1 for c in common.BACKGROUND]])
    f = feats(px.t().reshape(1, 3, 2, 1))[0, :, :, 0]
    assert f.shape[0] == 3 + 2 * k
    assert abs(float(f[3 + 2, 0]) - 1) < 1e-5 and float(f[3 + k + 2, 0]) < 1e-2      # yellow: along 1, off ~0
    assert float(f[3:3 + k, 1].abs().max()) < 1e-5                                     # the background: along none
    plain, fed = ObjectMapNet(), ObjectMapNet(palette_input=True)
    src = plain.state_dict()
    fed.load_state_dict({n: init_weight(n, v, src) for n, v in fed.state_dict().items()})
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        assert torch.allclose(plain(x), fed(x), atol=1e-5)
    print("palette input ok")


def test_corrector_gate():
    """The copy gate: shut, the corrector is the model without it; open, it returns the previous image's flow
    exactly (v = eps - image wherever x_t was noised from the image)."""
    from nets import CorrectorUNet
    torch.manual_seed(0)
    plain, gated = CorrectorUNet(40, 16, gate=False), CorrectorUNet(40, 16, gate=True)
    randomize(plain)
    gated.load_state_dict(plain.state_dict(), strict=False)
    image = torch.rand(2, 3, 32, 32) * 2 - 1
    eps = torch.randn(2, 3, 32, 32)
    t = torch.tensor([0.9, 0.3])
    xt = (1 - t[:, None, None, None]) * image + t[:, None, None, None] * eps
    tok = torch.randint(2, 40, (2, 16))
    with torch.no_grad():
        torch.nn.init.constant_(gated.gate.bias, -30.0)
        assert torch.allclose(gated(xt, t, tok, image), plain(xt, t, tok, image), atol=1e-5)
        torch.nn.init.constant_(gated.gate.bias, 30.0)
        assert torch.allclose(gated(xt, t, tok, image), eps - image, atol=1e-4)
    print("corrector gate ok")


def test_corrector_region():
    """The edit region's boxes: one per connected region where the images differ, specks left out; a region channel
    added with zero weights leaves the corrector as it was."""
    from nets import CorrectorUNet
    from train_corrector import edit_regions, grown_boxes
    a = torch.zeros(2, 3, 32, 32, dtype=torch.uint8)
    b = a.clone()
    b[0, 0, 4:7, 5:9] = 200           # a changed object ...
    b[0, 2, 20:22, 20:22] = 90        # ... a second one ...
    b[0, 1, 30, 30] = 90              # ... and a one-pixel speck
    boxes, _ = edit_regions(a, b)
    want = torch.zeros(2, 1, 32, 32, dtype=torch.uint8)
    want[0, 0, 4:7, 5:9] = 1
    want[0, 0, 20:22, 20:22] = 1
    assert torch.equal(boxes, want), boxes.nonzero()
    grown = grown_boxes(boxes, torch.tensor([2, 1]))
    assert grown[0, 0, 2:9, 3:11].min() == 1 and grown[0].sum() == 7 * 8 + 6 * 6 and grown[1].sum() == 0
    torch.manual_seed(0)
    plain, regional = CorrectorUNet(40, 16), CorrectorUNet(40, 16, region=True)
    randomize(plain)
    sd = plain.state_dict()
    w = torch.zeros_like(regional.stem.weight)
    w[:, :6] = sd["stem.weight"]
    regional.load_state_dict({**sd, "stem.weight": w})
    x, image, t, tok = torch.randn(2, 3, 32, 32), torch.rand(2, 3, 32, 32), torch.tensor([0.9, 0.3]), torch.randint(2, 40, (2, 16))
    with torch.no_grad():
        assert torch.allclose(regional(x, t, tok, image, grown), plain(x, t, tok, image), atol=1e-5)
    print("corrector region ok")


def test_corrector_region_split():
    """Erase and draw: a move's old box in the first channel, its new box in the second, a recolour's box in both;
    a one-channel model's weights copied to both channels give the same model wherever the boxes do not overlap."""
    from nets import CorrectorUNet
    from train_corrector import edit_regions
    a = torch.full((2, 3, 32, 32), 128, dtype=torch.uint8)
    b = a.clone()
    a[0, :, 4:8, 4:8] = 20            # image 0: an object moved from (4..7, 4..7) ...
    b[0, :, 20:24, 10:14] = 20        # ... to (20..23, 10..13)
    a[1, 0, 10:14, 10:14] = 230       # image 1: an object recoloured in place
    b[1, 2, 10:14, 10:14] = 230
    boxes, none = edit_regions(a, b, split=True)
    assert none is None
    assert boxes.shape == (2, 2, 32, 32)
    assert boxes[0, 0].sum() == 16 and boxes[0, 0, 4:8, 4:8].min() == 1
    assert boxes[0, 1].sum() == 16 and boxes[0, 1, 20:24, 10:14].min() == 1
    assert torch.equal(boxes[1, 0], boxes[1, 1]) and boxes[1, 0].sum() == 16
    assert torch.equal(edit_regions(a, b)[0], (boxes.amax(1, keepdim=True)))
    torch.manual_seed(0)
    one, two = CorrectorUNet(40, 16, region=1), CorrectorUNet(40, 16, region=2)
    randomize(one)
    sd = one.state_dict()
    two.load_state_dict({**sd, "stem.weight": torch.cat([sd["stem.weight"], sd["stem.weight"][:, 6:7]], 1)})
    x, image, t, tok = torch.randn(1, 3, 32, 32), torch.rand(1, 3, 32, 32), torch.tensor([0.7]), torch.randint(2, 40, (1, 16))
    with torch.no_grad():
        split = boxes[:1].float()
        assert torch.allclose(two(x, t, tok, image, split), one(x, t, tok, image, split.amax(1, keepdim=True)), atol=1e-5)
    print("corrector region split ok")


def test_silhouette():
    """A recolour's object becomes flat gray inside its box; a move's pixels (erase only) and the background stay."""
    from train_corrector import SILHOUETTE, edit_regions, silhouette
    a = torch.full((2, 3, 32, 32), 128, dtype=torch.uint8)
    b = a.clone()
    a[0, :, 4:8, 4:8] = 20            # image 0: moved
    b[0, :, 20:24, 10:14] = 20
    a[1, 0, 10:14, 10:14] = 230       # image 1: recoloured in place (a 2-pixel-wide margin of background in its box)
    b[1, 2, 10:14, 10:14] = 230
    region = edit_regions(a, b, split=True)[0].float()
    region[1, :, 8:16, 8:16] = 1.0     # the box grown by 2: background inside it stays
    image = a.float() / 127.5 - 1.0
    out = silhouette(image, a, region)
    gray = SILHOUETTE / 127.5 - 1.0
    assert torch.equal(out[0], image[0])
    assert torch.allclose(out[1, :, 10:14, 10:14], torch.full((3, 4, 4), gray))
    keep = torch.ones(32, 32, dtype=torch.bool)
    keep[10:14, 10:14] = False
    assert torch.equal(out[1][:, keep], image[1][:, keep])
    print("silhouette ok")


def test_color_hint():
    """Each drawn box is filled with the palette colour most of its new pixels are nearest to: a recolour's box with the
    new colour, an added object's with its colour, the object a move leaves (erase only) with none; the hint's
    zero-weight stem channels leave the model as it was."""
    from train_corrector import HINT_RGB, PALETTE, edit_regions, hint_rgb
    names = [n for n, _ in PALETTE]
    a = torch.full((2, 3, 32, 32), 128, dtype=torch.uint8)
    b = a.clone()
    a[0, :, 10:14, 10:14] = torch.tensor((220, 30, 30), dtype=torch.uint8).view(3, 1, 1)     # red, recoloured ...
    b[0, :, 10:14, 10:14] = torch.tensor((30, 70, 230), dtype=torch.uint8).view(3, 1, 1)     # ... blue
    b[0, :, 20:25, 2:7] = torch.tensor((30, 160, 50), dtype=torch.uint8).view(3, 1, 1)       # a green one added
    b[0, :, 20, 2] = torch.tensor((100, 128, 128), dtype=torch.uint8)                         # an edge pixel: no vote
    a[1, :, 4:8, 4:8] = 15                                                                    # a black one moved:
    b[1, :, 20:24, 20:24] = 15                                                                # only the new box
    boxes, h = edit_regions(a, b, split=True, hints=True)
    assert torch.equal(boxes, edit_regions(a, b, split=True)[0])
    assert torch.equal(boxes[:, 1:2] > 0, h > 0)        # a hint in every drawn box, and only there
    assert h.shape == (2, 1, 32, 32)
    assert (h[0, 0, 10:14, 10:14] == names.index("blue") + 1).all()
    assert (h[0, 0, 20:25, 2:7] == names.index("green") + 1).all()
    assert (h[1, 0, 20:24, 20:24] == names.index("black") + 1).all() and h[1, 0, 4:8, 4:8].max() == 0
    assert int((h > 0).sum()) == 16 + 25 + 16
    rgb = hint_rgb(h)
    assert rgb.shape == (2, 3, 32, 32) and torch.allclose(rgb[0, :, 11, 11], HINT_RGB[names.index("blue") + 1])
    assert rgb[0, :, 0, 0].abs().max() == 0
    check_added_channels(2, rgb[:1])
    print("colour hint ok")


def check_added_channels(before: int, extra: torch.Tensor):
    """A corrector with region channels added after its `before` ones, their stem weights zero, is the same model
    whatever they read (`extra`, [1,C,32,32])."""
    from nets import CorrectorUNet
    torch.manual_seed(0)
    small, big = CorrectorUNet(40, 16, region=before), CorrectorUNet(40, 16, region=before + extra.shape[1])
    randomize(small)
    sd = small.state_dict()
    w = sd["stem.weight"]
    big.load_state_dict({**sd, "stem.weight": torch.cat([w, torch.zeros(w.shape[0], extra.shape[1], *w.shape[2:])], 1)})
    x, image, t, tok = torch.randn(1, 3, 32, 32), torch.rand(1, 3, 32, 32), torch.tensor([0.7]), torch.randint(2, 40, (1, 16))
    region = torch.rand(1, before, 32, 32).round()
    with torch.no_grad():
        assert torch.allclose(big(x, t, tok, image, torch.cat([region, extra], 1)), small(x, t, tok, image, region), atol=1e-5)


def test_class_hint():
    """The class of each drawn box: from the reflection's drawn objects when they are one class, else matched by the
    colour hint; none when neither tells; the hint's zero-weight stem channels leave the model as it was."""
    from train_corrector import CLASSES, class_hints, class_onehot, drawn_refs
    assert drawn_refs("x [Reflexion]: Add a triangle above the red square\nRemove the blue star\n"
                      "Replace the black cross with a white cross\nMove the circle below the square\n"
                      "Move the pink diamond to the left of the star\nAdd an orange star") == [
        ("triangle", None), ("cross", "white"), ("circle", None), ("diamond", "pink"), ("star", "orange")]
    draw = torch.zeros(3, 1, 32, 32, dtype=torch.uint8)
    color = torch.zeros(3, 1, 32, 32, dtype=torch.uint8)
    draw[:, 0, 2:6, 2:6] = 1
    draw[:, 0, 20:25, 20:25] = 1
    color[1, 0, 2:6, 2:6] = 5            # blue
    color[1, 0, 20:25, 20:25] = 4        # green
    texts = ["a [Reflexion]: Add a star\nAdd a star",
             "b [Reflexion]: Replace the red circle with a blue square\nAdd a green star above the blue square",
             "c [Reflexion]: Add a star\nAdd a circle"]
    k = class_hints(draw, color, texts)
    assert (k[0][draw[0] > 0] == CLASSES.index("star") + 1).all() and int(k[0].gt(0).sum()) == 16 + 25
    assert (k[1, 0, 2:6, 2:6] == CLASSES.index("square") + 1).all()
    assert (k[1, 0, 20:25, 20:25] == CLASSES.index("star") + 1).all() and int(k[1].gt(0).sum()) == 16 + 25
    assert k[2].max() == 0
    onehot = class_onehot(k)
    assert onehot.shape == (3, 6, 32, 32) and onehot[0, CLASSES.index("star"), 3, 3] == 1 and onehot[0, :, 3, 3].sum() == 1
    assert onehot[2].abs().max() == 0 and onehot[0, :, 10, 10].abs().max() == 0
    check_added_channels(5, onehot[1:2])
    print("class hint ok")


def test_palette_twin():
    """The trainers' palette, background and classes are ShapeWorld's (src/shapeworld/shapes.ts), in its order: the hints' indices
    and values are read against them at run time."""
    import re
    from common import PALETTE
    with open(os.path.join(common.REPO_ROOT, "src", "shapeworld", "shapes.ts")) as f:
        source = f.read()
    block = re.search(r"export const PALETTE[^{]*\{(.*?)\};", source, re.S).group(1)
    ts = [(n, (int(r), int(g), int(b))) for n, r, g, b in re.findall(r"(\w+): \[(\d+), (\d+), (\d+)\]", block)]
    assert ts == PALETTE, f"training/common.py PALETTE {PALETTE} differs from shapes.ts {ts}"
    bg = re.search(r"export const BACKGROUND: RGB = \[(\d+), (\d+), (\d+)\]", source).groups()
    assert tuple(int(c) for c in bg) == common.BACKGROUND, f"training/common.py BACKGROUND differs from shapes.ts {bg}"
    from train_corrector import CLASSES
    shapes = re.search(r"export const SHAPES = \[([^\]]*)\]", source).group(1)
    assert re.findall(r"'(\w+)'", shapes) == CLASSES, f"train_corrector.py CLASSES {CLASSES} differs from shapes.ts SHAPES"
    print("palette twin ok")


def test_op_weight():
    """A triplet is drawn by the largest weight among its edits; an Add with a relation also counts as add-rel."""
    from train_corrector import op_weight
    w = {"replace": 2.0, "move": 3.0, "add-rel": 4.0}
    assert op_weight("a cross [Reflexion]: Add a cross", w) == 1.0
    assert op_weight("a cross above a star [Reflexion]: Add a cross above the red star", w) == 4.0
    assert op_weight("x [Reflexion]: Replace the red star with a blue star\nAdd a cross to the left of the blue star", w) == 4.0
    assert op_weight("x [Reflexion]: Replace the red star with a blue star\nAdd a cross", w) == 2.0
    assert op_weight("a star [Reflexion]: ", w) == 1.0
    print("op weight ok")


def test_run_files():
    """A model written into models/ keeps its log and checkpoint where the card looks; a scratch output keeps its own."""
    ck, log, summary = common.run_files(os.path.join(common.REPO_ROOT, "models", "corrector.onnx"), "/ck")
    assert (ck, log, summary) == ("/ck/corrector.pt", os.path.join(common.LOG_DIR, "corrector.csv"),
                                  os.path.join(common.LOG_DIR, "corrector.summary.json"))
    assert common.run_files("/tmp/x/corrector.onnx", "/ck") == ("/tmp/x/corrector.pt", "/tmp/x/corrector.csv",
                                                                "/tmp/x/corrector.summary.json")
    print("run files ok")


if __name__ == "__main__":
    setup_torch(0, 2)
    test_auc()
    test_png()
    test_onnx()
    test_modules()
    test_perception()
    test_shape_reader()
    test_symmetries()
    test_corrector_gate()
    test_corrector_region()
    test_corrector_region_split()
    test_silhouette()
    test_color_hint()
    test_class_hint()
    test_palette_twin()
    test_palette_input()
    test_blob_cells()
    test_op_weight()
    test_run_files()
    print("selftest ok")
