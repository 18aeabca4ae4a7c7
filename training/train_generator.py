"""Train the ShapeWorld text-to-image generator (pixel-space rectified flow, 32x32) and export ONNX.

Convention (the TypeScript sampler depends on it):
  x_t = (1 - t) * x0 + t * eps,   x0 = image in [-1, 1],  eps ~ N(0, I)
  network predicts v = eps - x0
  sampling: start x = eps at t = 1, Euler steps to t = 0:  x <- x + (t_next - t) * v
  CFG: v = v_null + g * (v_cond - v_null); null prompt = [1, 0, 0, ...] (token 1 then padding)

  /usr/bin/python3 training/train_generator.py --data D --out models/generator.onnx --minutes 40 --seed 0
  /usr/bin/python3 training/train_generator.py --data D --out models/generator.onnx --minutes 80 --resume

--minutes is the total wall-clock training budget, including time spent in runs
that are resumed from the checkpoint (resume with a larger --minutes to extend).
"""
from __future__ import annotations

import os

# Passive OpenMP waiting: ~15% slower on an idle machine, but ~1.7x faster when the
# 2 cores are shared with other work (spinning threads fight the other processes).
# Override with OMP_WAIT_POLICY=ACTIVE in the environment.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import datetime
import signal
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import (CKPT_DIR, EMA, REPO_ROOT, CsvLog, Dataset, Timer, check_with_onnxruntime_node,  # noqa: E402
                    command_line, cosine_lr, count_params, export_onnx, images_to_float, model_name,
                    null_tokens, optimizer_step, onnx_state_dict, run_files, save_checkpoint, setup_torch, write_json)
from nets import FlowUNet  # noqa: E402

CONVENTION = "rectified-flow x_t=(1-t)x0+t*eps, v=eps-x0, t:1→0"


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, help="dataset folder (meta.json, images.u8, tokens.i32)")
    ap.add_argument("--out", default="models/generator.onnx")
    ap.add_argument("--minutes", type=float, default=40.0, help="total wall-clock training budget (incl. resumed time)")
    ap.add_argument("--max-steps", type=int, default=0, help="also stop after this many steps (0 = no limit)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=3e-4)
    ap.add_argument("--weight-decay", type=float, default=0.01)
    ap.add_argument("--warmup", type=int, default=200, help="linear LR warmup steps")
    ap.add_argument("--p-null", type=float, default=0.1, help="probability of replacing the prompt by the null prompt")
    ap.add_argument("--ema", type=float, default=0.999)
    ap.add_argument("--channels", default="32,64,128")
    ap.add_argument("--text-layers", type=int, default=2)
    ap.add_argument("--ckpt", default=None, help="checkpoint path (default training/checkpoints/<name>.pt for an --out in "
                    "models/, else beside --out)")
    ap.add_argument("--ckpt-every", type=float, default=3.0, help="minutes between checkpoints")
    ap.add_argument("--resume", action="store_true", help="resume from --ckpt if it exists")
    ap.add_argument("--export-only", action="store_true", help="load --ckpt and only export ONNX/json/card")
    ap.add_argument("--log-every", type=int, default=50)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--suggest-steps", type=int, default=20, help="Euler steps suggested in the json")
    ap.add_argument("--suggest-guidance", type=float, default=3.0, help="CFG scale suggested in the json")
    ap.add_argument("--no-card", action="store_true", help="do not write models/<name>.md")
    ap.add_argument("--init-onnx", default=None,
                    help="fine-tune: start from the weights of this exported generator (its .json beside it gives "
                         "its vocab); words and token positions new in --data start from learned rows")
    return ap.parse_args(argv)


def init_from_onnx(model: FlowUNet, onnx_path: str, vocab: list) -> dict:
    """Copy an exported generator's weights (ONNX initializers carry the state-dict names) into `model`, whose
    vocab and maxTokens may be larger: token rows are matched by word, a new word starts from the mean embedding,
    new positions from the last learned one. Returns what was copied, for the summary."""
    import json

    src = onnx_state_dict(onnx_path)
    with open(os.path.splitext(onnx_path)[0] + ".json") as f:
        old_vocab = json.load(f)["vocab"]
    sd = model.state_dict()
    missing = [k for k in sd if k not in src]
    if missing:
        raise SystemExit(f"--init-onnx {onnx_path}: no weights for {missing[:5]} (another architecture?)")
    new_words = []
    for k, v in sd.items():
        w = src[k]
        if k == "text.tok.weight":
            mean = w[2:].mean(0)
            rows = []
            for word in vocab:
                if word in old_vocab:
                    rows.append(w[old_vocab.index(word)])
                else:
                    rows.append(mean)
                    new_words.append(word)
            w = torch.stack(rows)
        elif k == "text.pos" and w.shape != v.shape:
            extra = v.shape[2] - w.shape[2]
            w = torch.cat([w, w[:, :, -1:].repeat(1, 1, extra)], 2)
        if w.shape != v.shape:
            raise SystemExit(f"--init-onnx {onnx_path}: {k} has shape {tuple(w.shape)}, the model {tuple(v.shape)}")
        sd[k] = w.to(v.dtype)
    model.load_state_dict(sd)
    return {"from": os.path.relpath(os.path.abspath(onnx_path), REPO_ROOT), "new_words": new_words,
            "old_vocab_size": len(old_vocab)}


def build_model(cfg: dict) -> FlowUNet:
    return FlowUNet(cfg["vocab_size"], cfg["max_tokens"], ch=tuple(cfg["channels"]), text_layers=cfg["text_layers"])


def sample_t(b: int, gen: torch.Generator) -> torch.Tensor:
    """Logit-normal(0, 1) timesteps in (0, 1)."""
    return torch.sigmoid(torch.randn(b, generator=gen))


def flow_loss(model, x0, tokens, t, eps):
    tb = t[:, None, None, None]
    xt = (1 - tb) * x0 + tb * eps
    v = model(xt, t, tokens)
    return F.mse_loss(v, eps - x0)


@torch.no_grad()
def eval_loss(model, ds: Dataset, n: int = 256, seed: int = 1234) -> float:
    """Flow-matching loss on a fixed subset / fixed noise / fixed t (comparable across runs)."""
    g = torch.Generator().manual_seed(seed)
    n = min(n, ds.count)
    idx = torch.randperm(ds.count, generator=g)[:n]
    was = model.training
    model.eval()
    tot = 0.0
    for i in range(0, n, 64):
        j = idx[i:i + 64]
        x0 = images_to_float(ds.images[j])
        eps = torch.randn(x0.shape, generator=g)
        t = sample_t(len(j), g)
        tot += flow_loss(model, x0, ds.tokens[j], t, eps).item() * len(j)
    model.train(was)
    return tot / n


def export(model_cfg: dict, ema_state: dict, args, ds: Dataset, summary: dict) -> None:
    model = build_model(model_cfg)
    model.load_state_dict(ema_state)
    model.eval()
    b = 2
    g = torch.Generator().manual_seed(0)
    dummy = (torch.randn(b, 3, ds.size, ds.size, generator=g), torch.rand(b, generator=g),
             ds.tokens[:b].clone())
    info = export_onnx(model, dummy, args.out, ["x", "t", "tokens"], ["v"])
    # numeric check at a different batch size (dynamic batch), incl. a null prompt
    b = 3
    x = torch.randn(b, 3, ds.size, ds.size, generator=g)
    t = torch.tensor([1.0, 0.5, 0.05])
    tok = torch.cat([ds.tokens[:2], null_tokens(1, ds.max_tokens)], 0)
    with torch.no_grad():
        v = model(x, t, tok)
    info["check"] = check_with_onnxruntime_node(args.out, {"x": x, "t": t, "tokens": tok}, {"v": v})
    print("onnx numeric check:", info["check"])
    summary["onnx"] = info
    meta = {
        "name": model_name(args.out),
        "kind": "generator",
        "size": ds.size,
        "maxTokens": ds.max_tokens,
        "vocab": ds.vocab,
        "padId": 0,
        "nullId": 1,
        "nullTokens": null_tokens(1, ds.max_tokens)[0].tolist(),
        "steps": args.suggest_steps,
        "guidance": args.suggest_guidance,
        "convention": CONVENTION,
        "conventionDetail": {
            "forward": "x_t = (1 - t) * x0 + t * eps, x0 in [-1, 1] (pixel/127.5 - 1), eps ~ N(0, I)",
            "prediction": "v = eps - x0",
            "sampling": "x = eps at t = 1; for i in 0..steps-1: t_i = 1 - i/steps, t_next = 1 - (i+1)/steps, "
                        "x <- x + (t_next - t_i) * v(x, t_i); x at t = 0 is the image in [-1, 1]",
            "cfg": "v = v(x, t, null) + guidance * (v(x, t, prompt) - v(x, t, null)); null = [1, 0, 0, ...]",
            "x0Prediction": "x0_hat = x_t - t * v",
        },
        "inputs": {"x": {"dtype": "float32", "shape": ["B", 3, ds.size, ds.size], "layout": "NCHW RGB"},
                   "t": {"dtype": "float32", "shape": ["B"], "range": "[0, 1], 1 = pure noise"},
                   "tokens": {"dtype": "int64", "shape": ["B", ds.max_tokens], "pad": 0}},
        "outputs": {"v": {"dtype": "float32", "shape": ["B", 3, ds.size, ds.size]}},
        "opset": 14,
        "params": summary.get("params"),
        "trainingSteps": summary.get("steps"),
        "trainingMinutes": round(summary.get("wall_seconds", 0) / 60, 2),
        "evalLoss": summary.get("eval_loss"),
        "seed": args.seed,
        "exported": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    write_json(os.path.splitext(args.out)[0] + ".json", meta)
    print("wrote", os.path.splitext(args.out)[0] + ".json")


def main(argv=None):
    args = parse_args(argv)
    setup_torch(args.seed, args.threads)
    name = model_name(args.out)
    ckpt_path, log_path, summary_path = run_files(args.out, CKPT_DIR)
    ckpt_path = args.ckpt or ckpt_path

    ds = Dataset(args.data)
    print(f"data: {args.data}: {ds.count} images {ds.size}x{ds.size}, vocab {len(ds.vocab)}, maxTokens {ds.max_tokens}")
    cfg = {"vocab_size": len(ds.vocab), "max_tokens": ds.max_tokens,
           "channels": [int(c) for c in args.channels.split(",")], "text_layers": args.text_layers}

    ck = None
    if args.resume or args.export_only:
        if os.path.exists(ckpt_path):
            ck = torch.load(ckpt_path, map_location="cpu")
            if ck["cfg"]["vocab_size"] != cfg["vocab_size"] or ck["cfg"]["max_tokens"] != cfg["max_tokens"]:
                raise SystemExit(f"checkpoint {ckpt_path} was trained on a different vocab/maxTokens")
            cfg = ck["cfg"]
            print(f"resuming from {ckpt_path}: step {ck['step']}, {ck['elapsed'] / 60:.1f} min trained")
        elif args.export_only:
            raise SystemExit(f"--export-only: no checkpoint at {ckpt_path}")
        else:
            print(f"--resume: no checkpoint at {ckpt_path}, starting fresh")

    model = build_model(cfg)
    n_params = count_params(model)
    print(f"model: FlowUNet channels {cfg['channels']}, {n_params / 1e6:.3f}M parameters "
          f"(text encoder {count_params(model.text) / 1e6:.3f}M)")
    init_info = None
    if ck is None and args.init_onnx:
        init_info = init_from_onnx(model, args.init_onnx, ds.vocab)
        print(f"initialised from {args.init_onnx}; new words: {' '.join(init_info['new_words']) or 'none'}")
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay, betas=(0.9, 0.99))
    ema = EMA(model, args.ema)
    step, elapsed0, epoch = 0, 0.0, 0
    gen = torch.Generator().manual_seed(args.seed)
    history = []
    if ck is not None:
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["opt"])
        ema.load_state_dict(ck["ema"])
        step, elapsed0, epoch = ck["step"], ck["elapsed"], ck.get("epoch", 0)
        history = ck.get("history", [])
        init_info = ck.get("init")
        gen.manual_seed(args.seed + 1000003 * step)  # fresh but deterministic stream after resume

    summary = {"kind": "generator", "name": name, "command": command_line(), "data": os.path.abspath(args.data),
               "data_count": ds.count, "vocab_size": len(ds.vocab), "max_tokens": ds.max_tokens,
               "params": n_params, "channels": cfg["channels"], "batch": args.batch, "lr": args.lr,
               "minutes_budget": args.minutes, "seed": args.seed, "ema": args.ema, "p_null": args.p_null,
               "torch": torch.__version__, "threads": args.threads, "out": args.out,
               "history": history, "init": init_info}

    def checkpoint():
        save_checkpoint(ckpt_path, {"cfg": cfg, "model": model.state_dict(), "opt": opt.state_dict(),
                                    "ema": ema.state_dict(), "step": step, "elapsed": timer.elapsed(),
                                    "epoch": epoch, "args": vars(args), "vocab": ds.vocab, "init": init_info,
                                    "history": history})
        print(f"checkpoint: {ckpt_path} (step {step})")

    timer = Timer(offset=elapsed0)
    budget = args.minutes * 60.0
    if not args.export_only:
        log = CsvLog(log_path, ["step", "epoch", "elapsed_s", "loss", "lr", "steps_per_s", "eval_loss"],
                     append=ck is not None)
        stop = {"flag": False}

        def on_signal(signum, frame):
            print(f"signal {signum}: stopping after this step", flush=True)
            stop["flag"] = True

        old_int = signal.signal(signal.SIGINT, on_signal)
        old_term = signal.signal(signal.SIGTERM, on_signal)
        run_start_step, run_start = step, time.time()
        history.append({"start_step": step, "start_elapsed": round(elapsed0, 1), "command": command_line()})
        model.train()
        perm = torch.randperm(ds.count, generator=gen)
        pos = 0
        loss_acc, n_acc, last_log_t, last_log_step = 0.0, 0, time.time(), step
        last_ckpt = time.time()
        while not stop["flag"] and timer.elapsed() < budget and (args.max_steps <= 0 or step < args.max_steps):
            if pos + args.batch > ds.count:
                perm = torch.randperm(ds.count, generator=gen)
                pos = 0
                epoch += 1
            idx = perm[pos:pos + args.batch] if ds.count >= args.batch else \
                torch.randint(0, ds.count, (args.batch,), generator=gen)
            pos += args.batch
            x0 = images_to_float(ds.images[idx])
            tokens = ds.tokens[idx].clone()
            drop = torch.rand(len(idx), generator=gen) < args.p_null
            if drop.any():
                tokens[drop] = null_tokens(int(drop.sum()), ds.max_tokens)
            t = sample_t(len(idx), gen)
            eps = torch.randn(x0.shape, generator=gen)
            progress = timer.elapsed() / budget if budget > 0 else 1.0
            if args.max_steps > 0:
                progress = max(progress, step / args.max_steps)
            lr = cosine_lr(args.lr, progress, step, args.warmup)
            for gparam in opt.param_groups:
                gparam["lr"] = lr
            loss = flow_loss(model, x0, tokens, t, eps)
            lv = optimizer_step(model, opt, loss, step + 1)
            step += 1
            ema.update(model, step)
            loss_acc += lv
            n_acc += 1
            if step % args.log_every == 0:
                now = time.time()
                sps = (step - last_log_step) / max(now - last_log_t, 1e-9)
                row = {"step": step, "epoch": epoch, "elapsed_s": round(timer.elapsed(), 1),
                       "loss": round(loss_acc / n_acc, 5), "lr": f"{lr:.3e}", "steps_per_s": round(sps, 3),
                       "eval_loss": ""}
                log.write(row)
                print(f"step {step} ep {epoch} {timer.elapsed() / 60:.1f}min loss {loss_acc / n_acc:.4f} "
                      f"lr {lr:.2e} {sps:.2f} it/s", flush=True)
                summary["final_loss"] = loss_acc / n_acc
                loss_acc, n_acc, last_log_t, last_log_step = 0.0, 0, now, step
            if time.time() - last_ckpt >= args.ckpt_every * 60:
                checkpoint()
                last_ckpt = time.time()
        signal.signal(signal.SIGINT, old_int)
        signal.signal(signal.SIGTERM, old_term)
        run_secs = time.time() - run_start
        run_steps = step - run_start_step
        if n_acc:
            summary["final_loss"] = loss_acc / n_acc
        # EMA eval loss
        eval_model = build_model(cfg)
        eval_model.load_state_dict(ema.state_dict())
        summary["eval_loss"] = eval_loss(eval_model, ds)
        log.write({"step": step, "epoch": epoch, "elapsed_s": round(timer.elapsed(), 1),
                   "loss": round(summary.get("final_loss", float("nan")), 5), "lr": "",
                   "steps_per_s": round(run_steps / max(run_secs, 1e-9), 3),
                   "eval_loss": round(summary["eval_loss"], 5)})
        log.close()
        history[-1].update({"end_step": step, "seconds": round(run_secs, 1)})
        print(f"done: {run_steps} steps in {run_secs:.1f}s this run ({run_steps / max(run_secs, 1e-9):.2f} steps/s "
              f"at batch {args.batch}); total {step} steps; EMA eval loss {summary['eval_loss']:.4f}")
        summary["steps_per_s"] = run_steps / max(run_secs, 1e-9)
        checkpoint()
    summary.update({"steps": step, "epochs": epoch, "wall_seconds": timer.elapsed() if not args.export_only else elapsed0,
                    "samples_seen": step * args.batch, "checkpoint": ckpt_path,
                    "log": os.path.relpath(log_path, REPO_ROOT)})
    if args.export_only and os.path.exists(summary_path):
        import json
        with open(summary_path) as f:
            prev = json.load(f)
        for k in ("final_loss", "eval_loss", "steps_per_s"):
            if k in prev:
                summary[k] = prev[k]
    summary["history"] = history
    export(cfg, ema.state_dict(), args, ds, summary)
    write_json(summary_path, summary)
    if not args.no_card:
        from write_card import write_card
        write_card(name, out_dir=os.path.dirname(os.path.abspath(args.out)))


if __name__ == "__main__":
    main()
