"""Fill models/<name>.md from training/MODEL_CARD_TEMPLATE.md, the training log and its summary.

  /usr/bin/python3 training/write_card.py --name generator
  /usr/bin/python3 training/write_card.py --name verifier --out-dir models

Reads training/logs/<name>.summary.json (written by the trainers: arguments,
exact command(s), parameter count, steps, wall time, ONNX info, metrics) and
training/logs/<name>.csv (per-step / per-epoch log). The trainers call this
automatically at the end unless --no-card is given.
"""
from __future__ import annotations

import argparse
import csv
import datetime
import json
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import REPO_ROOT, TRAINING_DIR, run_files  # noqa: E402

GEN_DESC = """Text-conditional pixel-space **rectified-flow** (flow matching) model for 32×32 ShapeWorld
images (coloured shapes on a gray background). A U-Net (channels {channels}, GroupNorm+SiLU
res-blocks, sinusoidal time embedding) with a small transformer text encoder (token embedding +
learned positions + {text_layers} layers, width 128, key-padding mask on id 0); cross-attention
to the text tokens at 16×16 and 8×8, self-attention at 8×8. Trained with logit-normal t,
{p_null_pct}% null prompts for classifier-free guidance, EMA {ema} (exported weights are the EMA)."""

GEN_INTERFACE = """Inputs: `x` float32 [B,3,32,32] (NCHW RGB), `t` float32 [B] in [0,1], `tokens` int64 [B,{max_tokens}]
(ids = index in `vocab` of the json, padded with 0). Output: `v` float32 [B,3,32,32].

Convention: **{convention}**
- forward process: x_t = (1 − t)·x0 + t·ε, x0 = pixel/127.5 − 1 ∈ [−1, 1], ε ~ N(0, I)
- the network predicts the velocity v = ε − x0 (so x0̂ = x_t − t·v)
- sampling: x = ε at t = 1, Euler steps t_i = 1 − i/N → t_(i+1): x ← x + (t_(i+1) − t_i)·v(x, t_i); x at t = 0 is the image
- classifier-free guidance: v = v(x,t,null) + g·(v(x,t,prompt) − v(x,t,null)); the null prompt is token 1 (`<null>`) followed by padding 0
- suggested: {steps} steps, guidance {guidance}"""

VER_DESC = """Learned P(image matches prompt), a small NVILA-style yes/no verifier: a conv image encoder
(4 stages, channels {channels}, 32→4 px, learned 2-D positions at 8×8 and 4×4) and a small
transformer text encoder ({text_layers} layers, width 128), fused by FiLM (pooled text on the 8×8 map)
and two rounds of cross-attention of the text tokens over the image tokens, then a binary logit.
Trained with BCE on `labels.u8`{aux}; no augmentation (no flips: left/right matters)."""

VER_INTERFACE = """Inputs: `image` float32 [B,3,32,32] (NCHW RGB, pixel/127.5 − 1 ∈ [−1,1]), `tokens` int64 [B,{max_tokens}]
(ids = index in `vocab` of the json, padded with 0). Output: `logit` float32 [B];
P(match) = sigmoid(logit). Suggested decision threshold: {threshold}."""


MOD_DESC = """Learned P(image matches prompt), a small yes/no verifier built as a neural module network over the
prompt's parse. Image side: a conv net (channels {channels}, 32→8 px, with a 4×4 context stage) to an 8×8 object
map — per cell, the logit that an object's centre lies there, its class and colour logits, its in-cell offset and
size. Prompt side: the prompt is parsed to its GenEval spec (`src/backends/embedded/spec.ts`), which chooses the
modules: *find* (per cell P(centre)·P(class)·P(colour), binding the colour to the class), *count* (the exact
distribution of the number of found centres, P(N ≥ n)), *relate* (an MLP on the two found objects' expected centres
and sizes in the relation's own frame, shared by left/right/above/below); log P(match) sums the include clauses,
relations and (1 − P) of the exclude clauses, and a learned affine map gives the logit. Every module is shared across
classes and colours, so held-out combinations are judged from parts seen in training.
Trained with BCE on `labels.u8`{aux}; no augmentation (no flips: left/right matters)."""

MOD_INTERFACE = """Inputs: `image` float32 [B,3,32,32] (NCHW RGB, pixel/127.5 − 1 ∈ [−1,1]), `spec` int64 [B,{length}]
(the parse of the prompt, layout version {version} of `src/backends/embedded/spec.ts`: 4 include rows of class,
colour, count, relation, target and 4 exclude rows of class, count). Output: `logit` float32 [B];
P(match) = sigmoid(logit). Suggested decision threshold: {threshold}."""


def fmt_time(s: float) -> str:
    s = float(s or 0)
    if s < 120:
        return f"{s:.1f} s"
    if s < 7200:
        return f"{s / 60:.1f} min"
    return f"{s / 3600:.2f} h"


def fmt_num(x, nd=4):
    if x is None or x == "":
        return "n/a"
    try:
        return f"{float(x):.{nd}f}"
    except (TypeError, ValueError):
        return str(x)


def read_csv(path):
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return list(csv.DictReader(f))


def write_card(name: str, out_dir: str = None, template: str = None) -> str:
    out_dir = out_dir or os.path.join(REPO_ROOT, "models")
    template = template or os.path.join(TRAINING_DIR, "MODEL_CARD_TEMPLATE.md")
    _, log_path, sp = run_files(os.path.join(out_dir, f"{name}.onnx"), TRAINING_DIR)   # the run's own log
    with open(sp) as f:
        s = json.load(f)
    rows = read_csv(log_path)
    onnx_path = s.get("out", f"models/{name}.onnx")
    json_path = os.path.splitext(onnx_path)[0] + ".json"
    meta = {}
    if os.path.exists(json_path):
        with open(json_path) as f:
            meta = json.load(f)
    onnx = s.get("onnx", {})
    kind = s.get("kind", "generator")
    v = {
        "name": name,
        "onnx_file": os.path.relpath(os.path.abspath(onnx_path), REPO_ROOT),
        "json_file": os.path.relpath(os.path.abspath(json_path), REPO_ROOT),
        "onnx_mb": fmt_num(onnx.get("bytes", 0) / 1e6, 2),
        "opset": onnx.get("opset", 14),
        "params": f"{s.get('params', 0):,} ({s.get('params', 0) / 1e6:.2f}M)",
        "date": datetime.date.today().isoformat(),
        "torch": s.get("torch", "?"),
        "threads": s.get("threads", "?"),
        "data": ", ".join(os.path.relpath(d, REPO_ROOT) for d in ([s["data"]] if isinstance(s["data"], str) else s["data"]))
        if s.get("data") else "?",
        "data_count": s.get("data_count", "?"),
        "vocab_size": s.get("vocab_size", "?"),
        "max_tokens": s.get("max_tokens", "?"),
        "steps": s.get("steps", "?"),
        "batch": s.get("batch", "?"),
        "samples_seen": s.get("samples_seen", "?"),
        "epochs": s.get("epochs", "?"),
        "wall_time": fmt_time(s.get("wall_seconds", 0)),
        "steps_per_s": fmt_num(s.get("steps_per_s"), 2),
        "lr": s.get("lr", "?"),
        "seed": s.get("seed", "?"),
        "log": s.get("log", f"training/logs/{name}.csv"),
        "summary_file": f"training/logs/{name}.summary.json",
    }
    cmds = [h.get("command") for h in s.get("history", []) if h.get("command")] or [s.get("command", "")]
    v["commands"] = "\n".join(dict.fromkeys(cmds))
    check = onnx.get("check", "not run")
    if kind == "generator":
        v["kind_title"] = "text-to-image generator (rectified flow, pixel space 32×32)"
        v["description"] = GEN_DESC.format(channels="/".join(map(str, s.get("channels", []))),
                                           text_layers=2, p_null_pct=round(100 * s.get("p_null", 0.1)),
                                           ema=s.get("ema", 0.999))
        v["interface"] = GEN_INTERFACE.format(max_tokens=s.get("max_tokens"),
                                              convention=meta.get("convention", "?"),
                                              steps=meta.get("steps", "?"), guidance=meta.get("guidance", "?"))
        v["extra_rows"] = (f"| Conditioning dropout | {s.get('p_null')} (null prompt) |\n"
                           f"| EMA decay | {s.get('ema')} |")
        loss_rows = [r for r in rows if r.get("loss")]
        first = loss_rows[0]["loss"] if loss_rows else None
        v["results"] = (f"- training loss (MSE on v, mean of the last logging window): {fmt_num(s.get('final_loss'))}"
                        f" (first logged: {fmt_num(first)})\n"
                        f"- EMA model flow-matching loss on a fixed 256-sample subset (fixed noise/t): "
                        f"{fmt_num(s.get('eval_loss'))}\n"
                        f"- ONNX export: onnx.checker OK; numeric check vs torch: {check}")
        v["limitations"] = ("Toy model for ShapeWorld prompts only (fixed vocabulary, 32×32). Unknown words cannot be "
                            "encoded. Compositional prompts (counting, positions, colour binding) are imperfect; "
                            "that is what the verifier/reflection loop is for.")
    else:
        v["kind_title"] = "image–prompt verifier (P(image matches prompt))"
        aux = ""
        if s.get("aux_weight"):
            aux = (f", plus (training only, weight {s['aux_weight']}) a per-cell cross-entropy on an 8×8 map of\n"
                   "the class and colour the evaluator detected there (`aux.u8`), so the image encoder learns to see objects")
        if meta.get("prompt", {}).get("input") == "spec":
            if s.get("aux_weight"):
                aux = (f", plus (weight {s['aux_weight']}) a dense loss on the object map against the evaluator's "
                       "detections\n(`objects.f32`: centre-cell BCE, class and colour cross-entropy and box L1 at centre cells)")
            v["description"] = MOD_DESC.format(channels="/".join(map(str, s.get("channels", []))), aux=aux)
            v["interface"] = MOD_INTERFACE.format(length=meta["prompt"]["spec"]["length"],
                                                  version=meta["prompt"]["spec"]["version"],
                                                  threshold=fmt_num(meta.get("threshold", 0.0), 3))
        else:
            v["description"] = VER_DESC.format(channels="/".join(map(str, s.get("channels", []))), text_layers=2, aux=aux)
            v["interface"] = VER_INTERFACE.format(max_tokens=s.get("max_tokens"),
                                                  threshold=fmt_num(meta.get("threshold", 0.0), 3))
        v["extra_rows"] = (f"| Split | {s.get('train_count')} train / {s.get('val_count')} validation (held out, "
                           f"seeded) |\n| Positives | {fmt_num(s.get('pos_rate'), 3)} of the data |")
        ep_rows = [r for r in rows if r.get("val_auc")]
        table = ["| epoch | step | train loss | val loss | val AUC | val AUC (samples, own prompt) | val acc |",
                 "|---|---|---|---|---|---|---|"]
        for r in ep_rows[-12:]:
            table.append(f"| {r['epoch']} | {r['step']} | {fmt_num(r['train_loss'])} | {fmt_num(r['val_loss'])} | "
                         f"{fmt_num(r['val_auc'])} | {fmt_num(r.get('val_auc_focus') or r['val_auc'])} | "
                         f"{fmt_num(r['val_acc'])} |")
        best = s.get("best", {})
        v["results"] = (f"- final validation ROC-AUC: **{fmt_num(s.get('val_auc'))}** on all held-out pairs, "
                        f"**{fmt_num(s.get('val_auc_focus', s.get('val_auc')))}** on held-out generator samples with "
                        f"their own prompt; accuracy {fmt_num(s.get('val_acc'))} at threshold 0 (logit)\n"
                        f"- exported: the {s.get('exported', 'best validation AUC')} — step {best.get('step')}, "
                        f"AUC {fmt_num(best.get('val_auc'))} (samples, own prompt: {fmt_num(best.get('val_auc_focus'))})\n"
                        f"- ONNX export: onnx.checker OK; numeric check vs torch: {check}\n\n" + "\n".join(table))
        if meta.get("prompt", {}).get("input") == "spec":
            v["limitations"] = ("Reads only what the ShapeWorld parser reads (GenEval's templates and their paraphrases: "
                                "classes, colours, counts, four relations); a prompt outside that language is refused, "
                                "not guessed at. Its composition mirrors GenEval's clause logic, so agreement with the "
                                "evaluator mostly measures how well the learned object map sees what the evaluator's "
                                "detector sees; counting (sums over the map) is its weakest part. 32×32 input only. "
                                "The train loss column includes the object-map loss.")
        else:
            v["limitations"] = ("Only as good as the negatives in its training data: mismatch types not represented "
                                "(e.g. new attribute words) are not detected. 32×32 input only.")
    with open(template) as f:
        text = f.read()
    text = re.sub(r"\{\{(\w+)\}\}", lambda m: str(v.get(m.group(1), m.group(0))), text)
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, f"{name}.md")
    with open(path, "w") as f:
        f.write(text)
    print("wrote", path)
    return path


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--name", required=True, help="model name (generator, verifier, ...)")
    ap.add_argument("--out-dir", default=os.path.join(REPO_ROOT, "models"))
    ap.add_argument("--template", default=None)
    a = ap.parse_args()
    write_card(a.name, a.out_dir, a.template)


if __name__ == "__main__":
    main()
