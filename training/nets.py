"""Network definitions: the rectified-flow U-Net generator and the yes/no verifier."""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from common import (BACKGROUND, PALETTE, ChannelLayerNorm, CrossAttention2d, Dense, SelfAttention2d, TextEncoder,
                    group_norm)


def timestep_embedding(t: torch.Tensor, dim: int, scale: float = 1000.0) -> torch.Tensor:
    """Sinusoidal embedding of t in [0,1] (scaled by 1000), [B] -> [B,dim]."""
    half = dim // 2
    freqs = torch.exp(torch.arange(half, dtype=torch.float32, device=t.device) * (-math.log(10000.0) / half))
    a = (t.float() * scale)[:, None] * freqs[None, :]
    return torch.cat([torch.cos(a), torch.sin(a)], dim=1)


class ResBlock(nn.Module):
    def __init__(self, cin: int, cout: int, emb_dim: int, dropout: float = 0.0):
        super().__init__()
        self.n1 = group_norm(cin)
        self.c1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.emb = Dense(emb_dim, cout)
        self.n2 = group_norm(cout)
        self.drop = nn.Dropout(dropout)
        self.c2 = nn.Conv2d(cout, cout, 3, padding=1)
        nn.init.zeros_(self.c2.weight)
        nn.init.zeros_(self.c2.bias)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x, emb):
        h = self.c1(F.silu(self.n1(x)))
        h = h + self.emb(emb)[:, :, None, None]
        h = self.c2(self.drop(F.silu(self.n2(h))))
        return self.skip(x) + h


class Down(nn.Module):
    def __init__(self, ch: int):
        super().__init__()
        self.conv = nn.Conv2d(ch, ch, 3, stride=2, padding=1)

    def forward(self, x):
        return self.conv(x)


class Up(nn.Module):
    def __init__(self, ch: int):
        super().__init__()
        self.conv = nn.Conv2d(ch, ch, 3, padding=1)

    def forward(self, x):
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class FlowUNet(nn.Module):
    """Text-conditional velocity model v(x_t, t, tokens) for 32x32 RGB.

    Levels 32/16/8 px with channels (c0, c1, c2) = 32/64/128; cross-attention to
    text tokens at 16x16 and 8x8, self-attention at 8x8 (middle block). The time
    embedding plus the pooled text vector modulate every res-block.
    """

    def __init__(self, vocab_size: int, max_tokens: int, ch=(32, 64, 128), text_dim: int = 128,
                 text_layers: int = 2, emb_dim: int = 256, heads: int = 4, dropout: float = 0.0):
        super().__init__()
        c0, c1, c2 = ch
        self.text = TextEncoder(vocab_size, max_tokens, text_dim, text_layers, heads, 2 * text_dim)
        self.t_mlp = nn.Sequential(Dense(128, emb_dim), nn.SiLU(), Dense(emb_dim, emb_dim))
        self.txt_mlp = Dense(text_dim, emb_dim)
        self.stem = nn.Conv2d(3, c0, 3, padding=1)
        # encoder
        self.d0 = ResBlock(c0, c0, emb_dim, dropout)
        self.down0 = Down(c0)
        self.d1 = ResBlock(c0, c1, emb_dim, dropout)
        self.x1 = CrossAttention2d(c1, text_dim, heads)
        self.down1 = Down(c1)
        self.d2 = ResBlock(c1, c2, emb_dim, dropout)
        self.x2 = CrossAttention2d(c2, text_dim, heads)
        # middle (8x8)
        self.m1 = ResBlock(c2, c2, emb_dim, dropout)
        self.ms = SelfAttention2d(c2, heads)
        self.mx = CrossAttention2d(c2, text_dim, heads)
        self.m2 = ResBlock(c2, c2, emb_dim, dropout)
        # decoder
        self.u2 = ResBlock(c2 + c2, c2, emb_dim, dropout)
        self.ux2 = CrossAttention2d(c2, text_dim, heads)
        self.up1 = Up(c2)
        self.u1 = ResBlock(c2 + c1, c1, emb_dim, dropout)
        self.ux1 = CrossAttention2d(c1, text_dim, heads)
        self.up0 = Up(c1)
        self.u0 = ResBlock(c1 + c0, c0, emb_dim, dropout)
        self.out_norm = group_norm(c0)
        self.out = nn.Conv2d(c0, 3, 3, padding=1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: torch.Tensor, t: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        txt, bias, pooled = self.text(tokens)
        return self.unet(self.stem(x), t, txt, bias, pooled)

    def unet(self, h, t, txt, bias, pooled):
        """The U-Net after the stem: h is the stem's output, txt/bias the tokens every cross-attention reads."""
        return self.out(self.features(h, t, txt, bias, pooled))

    def features(self, h, t, txt, bias, pooled):
        """The last feature map (normalised and activated), which `out` turns into the velocity."""
        emb = F.silu(self.t_mlp(timestep_embedding(t, 128)) + self.txt_mlp(pooled))
        s0 = self.d0(h, emb)
        h = self.down0(s0)
        s1 = self.x1(self.d1(h, emb), txt, bias)
        h = self.down1(s1)
        s2 = self.x2(self.d2(h, emb), txt, bias)
        h = self.m1(s2, emb)
        h = self.mx(self.ms(h), txt, bias)
        h = self.m2(h, emb)
        h = self.ux2(self.u2(torch.cat([h, s2], 1), emb), txt, bias)
        h = self.up1(h)
        h = self.ux1(self.u1(torch.cat([h, s1], 1), emb), txt, bias)
        h = self.up0(h)
        h = self.u0(torch.cat([h, s0], 1), emb)
        return F.silu(self.out_norm(h))


class ConvBlock(nn.Module):
    def __init__(self, cin, cout, dilation: int = 1):
        super().__init__()
        self.c1 = nn.Conv2d(cin, cout, 3, padding=dilation, dilation=dilation)
        self.n1 = group_norm(cout)
        self.c2 = nn.Conv2d(cout, cout, 3, padding=dilation, dilation=dilation)
        self.n2 = group_norm(cout)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x):
        h = F.silu(self.n1(self.c1(x)))
        h = self.n2(self.c2(h))
        return F.silu(h + self.skip(x))


class Verifier(nn.Module):
    """P(image matches prompt): conv image encoder + text encoder + fusion -> logit.

    Image: 4 stages (32/64/128/128 channels) at 32/16/8/4 px, with a learned
    2-D position embedding added to the 4x4 and 8x8 maps so spatial relations
    (left/right, above/below) are visible. Fusion: FiLM of the 8x8 map by the
    pooled text, then text tokens cross-attend over the 4x4+8x8 image tokens
    (2 rounds), masked-mean pooled -> MLP -> one logit.
    """

    def __init__(self, vocab_size: int, max_tokens: int, ch=(32, 64, 128, 128), text_dim: int = 128,
                 text_layers: int = 2, heads: int = 4, dropout: float = 0.1, aux_outputs: int = 0,
                 film: bool = True):
        super().__init__()
        self.use_film = film
        c0, c1, c2, c3 = ch
        # auxiliary dense head (training only): per 8x8 cell, logits of what the evaluator detected there
        self.aux = nn.Conv2d(c2, aux_outputs, 1) if aux_outputs > 0 else None
        self.heads = heads
        self.text = TextEncoder(vocab_size, max_tokens, text_dim, text_layers, heads, 2 * text_dim)
        self.stem = nn.Conv2d(3, c0, 3, padding=1)
        self.s0 = ConvBlock(c0, c0)                    # 32
        self.s1 = ConvBlock(c0, c1)                    # 16
        self.s2 = ConvBlock(c1, c2)                    # 8
        self.s3 = ConvBlock(c2, c3)                    # 4
        self.film = Dense(text_dim, 2 * c2)
        nn.init.zeros_(self.film.weight)
        nn.init.zeros_(self.film.bias)
        self.pos8 = nn.Parameter(torch.zeros(1, c2, 8, 8))
        self.pos4 = nn.Parameter(torch.zeros(1, c3, 4, 4))
        nn.init.normal_(self.pos8, std=0.02)
        nn.init.normal_(self.pos4, std=0.02)
        self.img8 = nn.Conv2d(c2, text_dim, 1)
        self.img4 = nn.Conv2d(c3, text_dim, 1)
        self.scale = 1.0 / math.sqrt(text_dim // heads)
        self.rounds = nn.ModuleList()
        for _ in range(2):
            self.rounds.append(nn.ModuleDict({
                "ln_q": ChannelLayerNorm(text_dim), "ln_kv": ChannelLayerNorm(text_dim),
                "q": Dense(text_dim, text_dim), "kv": Dense(text_dim, 2 * text_dim),
                "o": Dense(text_dim, text_dim),
                "ln_ff": ChannelLayerNorm(text_dim),
                "ff1": Dense(text_dim, 2 * text_dim), "ff2": Dense(2 * text_dim, text_dim),
            }))
        self.head_ln = ChannelLayerNorm(2 * text_dim)
        self.head1 = Dense(2 * text_dim, text_dim)
        self.head_drop = nn.Dropout(dropout)
        self.head2 = Dense(text_dim, 1)

    def forward(self, image: torch.Tensor, tokens: torch.Tensor, with_aux: bool = False):
        txt, _bias, pooled = self.text(tokens)                 # txt B,D,T
        h = self.s0(self.stem(image))
        h = self.s1(F.avg_pool2d(h, 2))
        h8 = self.s2(F.avg_pool2d(h, 2))
        aux = self.aux(h8) if with_aux and self.aux is not None else None
        if self.use_film:
            g = self.film(pooled)[:, :, None, None]
            gamma, beta = g.chunk(2, dim=1)
            h8 = h8 * (1 + gamma) + beta
        h4 = self.s3(F.avg_pool2d(h8, 2))
        b = image.shape[0]
        f8 = self.img8(h8 + self.pos8).flatten(2)       # B,D,64
        f4 = self.img4(h4 + self.pos4).flatten(2)       # B,D,16
        img = torch.cat([f8, f4], 2)                    # B,D,80
        d = txt.shape[1]
        h = self.heads
        hd = d // h
        q_tokens = txt
        for r in self.rounds:
            q = r["q"](r["ln_q"](q_tokens)).reshape(b, h, hd, -1)               # B,h,hd,T
            kv = r["kv"](r["ln_kv"](img)).reshape(b, 2, h, hd, -1)              # B,2,h,hd,80
            att = torch.matmul(q.transpose(-1, -2), kv[:, 0]) * self.scale      # B,h,T,80
            y = torch.matmul(kv[:, 1], att.softmax(-1).transpose(-1, -2))       # B,h,hd,T
            q_tokens = q_tokens + r["o"](y.reshape(b, d, -1))
            q_tokens = q_tokens + r["ff2"](F.gelu(r["ff1"](r["ln_ff"](q_tokens))))
        keep = (tokens != 0).float().unsqueeze(1)                               # B,1,T
        fused = (q_tokens * keep).sum(2) / keep.sum(2).clamp(min=1.0)
        gpool = img.mean(2)
        z = self.head1(self.head_ln(torch.cat([fused, gpool], 1)))
        logit = self.head2(self.head_drop(F.gelu(z)))[:, 0]
        return (logit, aux) if with_aux else logit


class PaletteFeatures(nn.Module):
    """Each pixel's colour in the palette's terms, beside its RGB: for every palette colour, how far along the line
    from the background to that colour the pixel lies (clamped to [0, 1]) and how far off that line it is. A blob
    the generator drew in a colour between two palette colours lies off every line; the evaluator reads such pixels
    as no object, and from RGB alone a small conv net learns that boundary poorly (it read them as objects).
    Fixed, not learned; input and output in the model's [-1, 1] units: [B, 3, H, W] -> [B, 3 + 2K, H, W]."""

    def __init__(self):
        super().__init__()
        bg = torch.tensor(BACKGROUND, dtype=torch.float32) / 127.5 - 1
        d = torch.tensor([rgb for _, rgb in PALETTE], dtype=torch.float32) / 127.5 - 1 - bg
        self.register_buffer("bg", bg.view(1, 3, 1, 1))
        self.register_buffer("d", d.view(-1, 3, 1, 1))
        self.register_buffer("n2", (d * d).sum(1).view(1, -1, 1, 1))
        self.channels = 3 + 2 * len(PALETTE)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        v = x - self.bg
        vd = F.conv2d(v, self.d)
        a = torch.clamp(vd / self.n2, 0.0, 1.0)
        off = (v * v).sum(1, keepdim=True) - 2 * a * vd + a * a * self.n2
        return torch.cat([x, a, torch.sqrt(torch.clamp(off, min=0.0) + 1e-6)], 1)


class ObjectMapNet(nn.Module):
    """Pixels -> an 8x8 object map: per cell, the logit that an object's centre lies in the cell, class and colour
    logits of that object, its centre offset inside the cell and its size (channels 1 + K + C + 4).
    The module verifier's image side, and on its own the embedded reflector's perception model."""

    def __init__(self, n_classes: int = 6, n_colors: int = 10, ch=(32, 64, 128), grid: int = 8,
                 palette_input: bool = False):
        super().__init__()
        c0, c1, c2 = ch
        self.n_classes, self.n_colors, self.grid = n_classes, n_colors, grid
        self.palette = PaletteFeatures() if palette_input else None
        self.stem = nn.Conv2d(self.palette.channels if self.palette else 3, c0, 3, padding=1)
        self.s0 = ConvBlock(c0, c0)                    # 32
        self.s1 = ConvBlock(c0, c1)                    # 16
        self.s2 = ConvBlock(c1, c2)                    # 8
        self.s3 = ConvBlock(c2, c2)                    # 4 (context)
        self.s4 = ConvBlock(2 * c2, c2)                # 8, with the 4x4 context
        self.head = nn.Conv2d(c2, 1 + n_classes + n_colors + 4, 1)

    def object_map(self, image: torch.Tensor) -> torch.Tensor:
        h = self.s0(self.stem(self.palette(image) if self.palette is not None else image))
        h = self.s1(F.avg_pool2d(h, 2))
        h8 = self.s2(F.avg_pool2d(h, 2))
        h4 = self.s3(F.avg_pool2d(h8, 2))
        h8 = self.s4(torch.cat([h8, F.interpolate(h4, scale_factor=2.0, mode="nearest")], 1))
        return self.head(h8)                           # B, 1+K+C+4, g, g

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.object_map(image)


class ShapeReader(nn.Module):
    """Pixels -> a 16x16 map of shape logits (the K classes, then "no object"), read where the object map puts an
    object's centre. The object map decides class from 8x8 cells, each of which must describe whichever object
    centres anywhere in it; this reader keeps half the input resolution and is asked about one centred object, which
    is what tells blurred circles, diamonds and crosses apart. Dilated blocks let each cell see the whole image."""

    def __init__(self, n_classes: int = 6, ch=(32, 64)):
        super().__init__()
        c0, c1 = ch
        self.n_classes = n_classes
        self.stem = nn.Conv2d(3, c0, 3, padding=1)
        self.s0 = ConvBlock(c0, c0)                    # 32
        self.s1 = ConvBlock(c0, c1)                    # 16
        self.s2 = ConvBlock(c1, c1, dilation=2)
        self.s3 = ConvBlock(c1, c1, dilation=4)
        self.head = nn.Conv2d(c1, n_classes + 1, 1)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        h = self.s0(self.stem(image))
        h = self.s1(F.avg_pool2d(h, 2))
        return self.head(self.s3(self.s2(h)))       # B, K+1, 16, 16


class ObjectMapWithShapes(ObjectMapNet):
    """The reflector's perception: the object map (its weights named as ObjectMapNet's, so either loads the other)
    and a ShapeReader beside it; two outputs, one pass."""

    def __init__(self, reader_ch=(32, 64), **kw):
        super().__init__(**kw)
        self.shapes = ShapeReader(self.n_classes, ch=tuple(reader_ch))

    def forward(self, image: torch.Tensor):
        return self.object_map(image), self.shapes(image)


def shape_reader_owners(objects: torch.Tensor, size: int = 16) -> torch.Tensor:
    """Which detection row (class, colour, cx, cy, w, h; class 0 = empty) teaches each of ShapeReader's cells
    (B, size, size): the row whose object's centre cell is within one cell (the object map's centre is off by a pixel
    or two), -2 on the ring one further out (no target), -1 everywhere else ("no object" — blends the evaluator makes
    no object of included)."""
    b = objects.shape[0]
    owner = torch.full((b, size, size), -1, dtype=torch.long)
    gx = (objects[:, :, 2] * size).floor().clamp(0, size - 1).long()
    gy = (objects[:, :, 3] * size).floor().clamp(0, size - 1).long()
    ys = torch.arange(size).view(1, size, 1)
    xs = torch.arange(size).view(1, 1, size)
    for radius, ring in ((2, True), (1, False)):
        # rows come most confident first: write them last so they win a shared cell
        for r in range(objects.shape[1] - 1, -1, -1):
            present = objects[:, r, 0] > 0
            if not present.any():
                continue
            near = ((ys - gy[:, r].view(b, 1, 1)).abs() <= radius) & ((xs - gx[:, r].view(b, 1, 1)).abs() <= radius)
            owner = torch.where(near & present.view(b, 1, 1), -2 if ring else r, owner)
    return owner


def shape_reader_targets(objects: torch.Tensor, n_classes: int, size: int = 16, ignore: int = -100) -> torch.Tensor:
    """Dense targets of ShapeReader (B, size, size): each cell's owning row's class (`shape_reader_owners`), `ignore`
    on the ring, "no object" (n_classes) elsewhere."""
    owner = shape_reader_owners(objects, size)
    cls = (objects[:, :, 0].long() - 1).gather(1, owner.clamp(min=0).flatten(1)).view_as(owner)
    return torch.where(owner >= 0, cls, torch.where(owner == -1, n_classes, ignore))


def shape_reader_soft_targets(objects: torch.Tensor, fits: torch.Tensor, n_classes: int, size: int = 16,
                              temperature: float = 0.03):
    """`shape_reader_targets` as distributions (B, n_classes + 1, size, size) and the mask of cells that have one:
    on an object's cells softmax(fit / temperature) over the classes, from each class's soft IoU fitted to the
    object by the evaluator (`fits`, B x rows x n_classes; its best is the evaluator's class), so a shape it found
    close between two classes is taught as close; "no object" one-hot elsewhere; the ring masked out."""
    owner = shape_reader_owners(objects, size)
    soft = F.pad(torch.softmax(fits / temperature, dim=-1), (0, 1))            # B, rows, n_classes + 1
    b, rows, k = soft.shape
    taught = soft.gather(1, owner.clamp(min=0).flatten(1)[..., None].expand(b, size * size, k))
    taught = taught.view(b, size, size, k).permute(0, 3, 1, 2)
    nothing = F.one_hot(torch.tensor(n_classes), k).float().view(1, k, 1, 1)
    return torch.where((owner >= 0)[:, None], taught, nothing), owner != -2


def soft_cross_entropy(logits: torch.Tensor, q: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of logits (B, C, H, W) against distributions q (B, C, H, W), averaged over the masked cells."""
    return -(q * F.log_softmax(logits, dim=1)).sum(1)[mask].mean()


class ModuleVerifier(ObjectMapNet):
    """P(image matches prompt) as a neural module network over the prompt's parse.

    Image side (learned): a conv net to an 8x8 object map; per cell, the logit that an object's centre lies in
    the cell, class and colour logits of that object, its centre offset inside the cell and its size.
    Prompt side: the parse (spec rows, layout in src/backends/embedded/spec.ts) picks the modules:
      find(class, colour)  per cell P(centre) * P(class) * P(colour)   (a conjunction: binds colour to class)
      count(>= n)          exact count distribution of those cells (independent Bernoullis), saturating at max
      relate(rel)          a small MLP on the two found objects' expected centres and sizes, put in the
                           relation's own frame so one module serves left/right/above/below
    and log P(match) sums log P(each include clause) + log P(each relation) + log(1 - P(each exclude clause)),
    then a learned affine map turns it into the output logit. Every module is shared across classes and colours,
    which is what lets held-out combinations be judged from parts seen in training.
    """

    def __init__(self, n_classes: int = 6, n_colors: int = 10, ch=(32, 64, 128), grid: int = 8,
                 include_slots: int = 4, exclude_slots: int = 4, max_count: int = 9, rel_hidden: int = 32):
        super().__init__(n_classes, n_colors, ch, grid)
        self.include_slots, self.exclude_slots, self.max_count = include_slots, exclude_slots, max_count
        self.rel1 = nn.Linear(6, rel_hidden)
        self.rel2 = nn.Linear(rel_hidden, 1)
        self.out_scale = nn.Parameter(torch.ones(()))
        self.out_bias = nn.Parameter(torch.zeros(()))
        g = grid
        ys, xs = torch.meshgrid(torch.arange(g, dtype=torch.float32), torch.arange(g, dtype=torch.float32), indexing="ij")
        self.register_buffer("cell_x", xs.reshape(1, 1, g * g), persistent=False)
        self.register_buffer("cell_y", ys.reshape(1, 1, g * g), persistent=False)
        # tail[k, n] = 1 where k >= n: P(N >= n) = dist @ tail
        k = torch.arange(max_count + 1)
        self.register_buffer("tail", (k[:, None] >= k[None, :]).float(), persistent=False)
        # relation frames (rows: none, left of, right of, above, below): along = (dx, dy) . A, across = (dx, dy) . C
        self.register_buffer("rel_along", torch.tensor([[0., 0.], [-1., 0.], [1., 0.], [0., -1.], [0., 1.]]), persistent=False)
        self.register_buffer("rel_across", torch.tensor([[0., 0.], [0., 1.], [0., 1.], [1., 0.], [1., 0.]]), persistent=False)

    def forward(self, image: torch.Tensor, spec: torch.Tensor, with_map: bool = False):
        b = image.shape[0]
        g2 = self.grid * self.grid
        m = self.object_map(image).flatten(2)          # B, ch, g*g
        k, c = self.n_classes, self.n_colors
        centre = torch.sigmoid(m[:, 0:1])                                   # B,1,N
        p_cls = torch.softmax(m[:, 1:1 + k], 1)                              # B,K,N
        p_col = torch.softmax(m[:, 1 + k:1 + k + c], 1)                      # B,C,N
        off = torch.sigmoid(m[:, 1 + k + c:3 + k + c])                       # B,2,N
        size = torch.sigmoid(m[:, 3 + k + c:5 + k + c])                      # B,2,N
        xs = (self.cell_x + off[:, 0:1]) / self.grid
        ys = (self.cell_y + off[:, 1:2]) / self.grid

        si, se = self.include_slots, self.exclude_slots
        inc = spec[:, :si * 5].reshape(b, si, 5)
        exc = spec[:, si * 5:si * 5 + se * 2].reshape(b, se, 2)
        cls = torch.cat([inc[:, :, 0], exc[:, :, 0]], 1)                     # B,S
        col = torch.cat([inc[:, :, 1], torch.zeros_like(exc[:, :, 0])], 1)  # 0 = any colour
        count = torch.cat([inc[:, :, 2], exc[:, :, 1]], 1).clamp(1, self.max_count)
        used = (cls > 0).float()
        cls_1h = F.one_hot((cls - 1).clamp(min=0), k).float()               # B,S,K
        col_1h = F.one_hot(col, c + 1).float()                               # B,S,C+1
        p_col_any = torch.cat([torch.ones_like(p_col[:, :1]), p_col], 1)     # B,C+1,N
        found = centre * torch.matmul(cls_1h, p_cls) * torch.matmul(col_1h, p_col_any)   # B,S,N

        # count: distribution of the number of found centres, states 0..max_count (the last one: max_count or more)
        s = found.shape[1]
        dist = F.one_hot(torch.zeros(b, s, dtype=torch.long), self.max_count + 1).float()
        zero = torch.zeros_like(dist[:, :, :1])
        for n in range(g2):
            q = found[:, :, n:n + 1]
            moved = torch.cat([zero, dist[:, :, :-2], dist[:, :, -2:-1] + dist[:, :, -1:]], 2)
            dist = dist * (1 - q) + moved * q
        at_least = torch.matmul(dist, self.tail)                             # B,S,max+1: P(N >= n)
        p_count = (at_least * F.one_hot(count, self.max_count + 1).float()).sum(2)   # B,S
        eps = 1e-6
        log_inc = torch.log(p_count[:, :si].clamp(eps, 1.0)) * used[:, :si]
        log_exc = torch.log((1 - p_count[:, si:]).clamp(eps, 1.0)) * used[:, si:]

        # relate: expected centre and size of each include clause's found objects
        w = found[:, :si]
        mass = w.sum(2)                                                      # B,Si
        wn = w / (mass.unsqueeze(2) + eps)
        cx, cy = (wn * xs).sum(2), (wn * ys).sum(2)
        sw, sh = (wn * size[:, 0:1]).sum(2), (wn * size[:, 1:2]).sum(2)
        rel = inc[:, :, 3]
        tgt_1h = F.one_hot(inc[:, :, 4].clamp(0, si - 1), si).float()       # B,Si,Si
        tx, ty = (tgt_1h * cx.unsqueeze(1)).sum(2), (tgt_1h * cy.unsqueeze(1)).sum(2)
        tw, th = (tgt_1h * sw.unsqueeze(1)).sum(2), (tgt_1h * sh.unsqueeze(1)).sum(2)
        tm = (tgt_1h * mass.unsqueeze(1)).sum(2)
        rel_1h = F.one_hot(rel, 5).float()                                   # B,Si,5
        along_w = torch.matmul(rel_1h, self.rel_along)                       # B,Si,2
        across_w = torch.matmul(rel_1h, self.rel_across)
        dx, dy = cx - tx, cy - ty
        along = along_w[..., 0] * dx + along_w[..., 1] * dy
        across = (across_w[..., 0] * dx + across_w[..., 1] * dy).abs()
        size_along = along_w[..., 0].abs() * (sw + tw) + along_w[..., 1].abs() * (sh + th)
        size_across = across_w[..., 0] * (sw + tw) + across_w[..., 1] * (sh + th)
        feats = torch.stack([along * 4, across * 4, size_along * 4, size_across * 4,
                             mass.clamp(max=4.0), tm.clamp(max=4.0)], 2)     # B,Si,6 (scaled to ~unit range)
        rel_logit = self.rel2(F.gelu(self.rel1(feats)))[..., 0]              # B,Si
        has_rel = (rel > 0).float() * used[:, :si]
        log_rel = F.logsigmoid(rel_logit) * has_rel

        log_p = (log_inc.sum(1) + log_exc.sum(1) + log_rel.sum(1)).clamp(max=-eps)
        z = log_p - torch.log((1 - torch.exp(log_p)).clamp(min=1e-7))     # logit of P
        logit = self.out_scale * z + self.out_bias
        return (logit, m) if with_map else logit


def object_map_targets(objects: torch.Tensor, grid: int):
    """Dense targets of ModuleVerifier's object map from detection rows (class, colour, cx, cy, w, h; class 0 =
    empty): centre cell flags, class/colour ids there (-100 elsewhere), in-cell centre offsets and sizes."""
    b, o, _ = objects.shape
    n = grid * grid
    centre = torch.zeros(b, n)
    cls = torch.full((b, n), -100, dtype=torch.long)
    col = torch.full((b, n), -100, dtype=torch.long)
    box = torch.zeros(b, 4, n)
    gx = (objects[:, :, 2] * grid).floor().clamp(0, grid - 1)
    gy = (objects[:, :, 3] * grid).floor().clamp(0, grid - 1)
    cell = (gy * grid + gx).long()
    # rows come most confident first: write them last so they win a shared cell
    for r in range(o - 1, -1, -1):
        bi = torch.nonzero(objects[:, r, 0] > 0)[:, 0]
        if len(bi) == 0:
            continue
        ci = cell[bi, r]
        centre[bi, ci] = 1.0
        cls[bi, ci] = objects[bi, r, 0].long() - 1
        col[bi, ci] = objects[bi, r, 1].long() - 1
        box[bi, 0, ci] = objects[bi, r, 2] * grid - gx[bi, r]
        box[bi, 1, ci] = objects[bi, r, 3] * grid - gy[bi, r]
        box[bi, 2, ci] = objects[bi, r, 4]
        box[bi, 3, ci] = objects[bi, r, 5]
    return centre, cls, col, box


def object_map_loss(m: torch.Tensor, objects: torch.Tensor, n_classes: int, n_colors: int, grid: int,
                    negative_weight: torch.Tensor | None = None, positive_weight: float = 4.0):
    """Centre BCE + class/colour cross-entropy and box L1 at centre cells; m is the flattened map (B, ch, g*g).
    `negative_weight` (B, g*g): the centre loss's weight at cells where no object is centred (1 where absent);
    `positive_weight`: the centre loss's weight at cells where one is (against a miss)."""
    centre, cls, col, box = object_map_targets(objects, grid)
    k, c = n_classes, n_colors
    weight = None if negative_weight is None else torch.where(centre > 0, torch.ones_like(centre), negative_weight)
    loss = F.binary_cross_entropy_with_logits(m[:, 0], centre, weight=weight, pos_weight=torch.tensor(float(positive_weight)))
    pos = centre > 0
    if pos.any():
        loss = loss + F.cross_entropy(m[:, 1:1 + k], cls, ignore_index=-100)
        loss = loss + F.cross_entropy(m[:, 1 + k:1 + k + c], col, ignore_index=-100)
        pred = torch.sigmoid(m[:, 1 + k + c:5 + k + c])                      # B,4,N
        loss = loss + 5.0 * (pred - box).abs().sum(1)[pos].mean()
    return loss


class CorrectorUNet(FlowUNet):
    """Image-conditioned velocity model v(x_t, t, tokens, image) of the generator's family (the corrector).

    `tokens` is the instruction `refined prompt [Reflexion]: reflection`, `image` the previous image in [-1, 1].
    Two ways to see the previous image (`cond`):
      channels  the image is stacked onto x_t at the stem (6 input channels): pixel-aligned, so copying what
                stays is easy; moving something needs the U-Net's receptive field
      tokens    a small conv encoder turns the image into 8x8 = 64 tokens with positions, appended to the text
                tokens that every cross-attention block reads (the paper's one sequence of text and image tokens):
                any place of x_t can look at any place of the previous image
    Initialised from the generator: with the image's stem weights (channels) or its tokens' output (tokens) at
    zero the corrector starts as the text-to-image generator.

    `gate` adds a per-pixel copy gate g in (0, 1): the predicted clean image is g * image + (1 - g) * the U-Net's
    own, so v = (1 - g) * v_net + g * (x_t - image) / t. An edit changes a few dozen of 1,024 pixels; without the
    gate the U-Net must redraw every unchanged pixel through the flow, and it kept under a third of the objects an
    edit should leave alone. The gate starts shut (`gate_bias`, -6: g ~ 0.0025), so step 0 is the model without
    it. Measured (models/corrector.md): it stays shut — from -6 it reached ~0.005 in 2,000 steps, restarted at -2
    with 10x its learning rate it fell from 0.12 to 0.06 in 1,000: the U-Net already copies through the flow.

    `region` adds a seventh input channel: 1 inside the boxes where the edit should change the image (the objects it
    takes away or changes, and where it puts new ones), 0 elsewhere; all zeros when unknown. Measured without it, the
    corrector kept 91 % of unedited pixels but brought only a quarter of the edited ones to the target: it knew how
    to copy, not where to change. The embedded backend grounds the reflection on its own perception to draw the
    boxes (src/backends/embedded/region.ts). `region=2` splits it in two channels: the boxes of what the edit takes
    away or changes (erase) and of what it draws (draw) — a move marks its old box in the first and its new box in
    the second, where one channel left the model to guess which box the object leaves and which it goes to.
    """

    GATE_MIN_T = 0.02   # (x_t - image) / t is exact for copied pixels; the clamp only bounds it for t near 0

    def __init__(self, vocab_size: int, max_tokens: int, cond: str = "channels", gate: bool = False,
                 gate_bias: float = -6.0, region: int = 0, **kw):
        super().__init__(vocab_size, max_tokens, **kw)
        if cond not in ("channels", "tokens"):
            raise ValueError(f"cond must be channels or tokens, got {cond}")
        if region and cond != "channels":
            raise ValueError("an edit region is an input channel: it needs cond channels")
        self.cond = cond
        self.region = int(region)     # edit-region input channels: 0, 1 (one mask) or 2 (erase, draw)
        self.gate = None
        if gate:
            self.gate = nn.Conv2d(self.out.in_channels, 1, 3, padding=1)
            nn.init.zeros_(self.gate.weight)
            nn.init.constant_(self.gate.bias, gate_bias)
        c0 = self.stem.out_channels
        text_dim = self.text.tok.embedding_dim
        if cond == "channels":
            self.stem = nn.Conv2d(6 + self.region, c0, 3, padding=1)
        else:
            self.img_enc = nn.Sequential(
                nn.Conv2d(3, 32, 3, padding=1), nn.SiLU(),
                nn.Conv2d(32, 64, 3, stride=2, padding=1), nn.SiLU(),
                nn.Conv2d(64, 128, 3, stride=2, padding=1), nn.SiLU(),
                nn.Conv2d(128, 128, 3, padding=1))
            self.img_pos = nn.Parameter(torch.zeros(1, 128, 8, 8))
            nn.init.normal_(self.img_pos, std=0.02)
            self.img_ln = ChannelLayerNorm(128)
            self.img_proj = Dense(128, text_dim)

    def forward(self, x, t, tokens, image, region=None):
        txt, bias, pooled = self.text(tokens)
        if self.cond == "tokens":
            f = self.img_enc(image) + self.img_pos
            img = self.img_proj(self.img_ln(f.flatten(2)))                      # B,D,64
            txt = torch.cat([txt, img], 2)
            bias = torch.cat([bias, torch.zeros_like(bias[..., :1]).expand(-1, -1, -1, img.shape[2])], 3)
            h = self.stem(x)
        else:
            h = self.stem(torch.cat([x, image] + ([region] if self.region else []), 1))
        f = self.features(h, t, txt, bias, pooled)
        v = self.out(f)
        if self.gate is None:
            return v
        g = torch.sigmoid(self.gate(f))
        copy = (x - image) / t.clamp(min=self.GATE_MIN_T)[:, None, None, None]
        return v + g * (copy - v)
