"""Network definitions: the rectified-flow U-Net generator and the yes/no verifier."""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from common import ChannelLayerNorm, CrossAttention2d, Dense, SelfAttention2d, TextEncoder, group_norm


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
        emb = F.silu(self.t_mlp(timestep_embedding(t, 128)) + self.txt_mlp(pooled))
        h = self.stem(x)
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
        return self.out(F.silu(self.out_norm(h)))


class ConvBlock(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.c1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.n1 = group_norm(cout)
        self.c2 = nn.Conv2d(cout, cout, 3, padding=1)
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
