"""Train the ShapeWorld yes/no verifier (P(image matches prompt)) and export ONNX.

  /usr/bin/python3 training/train_verifier.py --data D --out models/verifier.onnx --minutes 15 --seed 0

D must contain labels.u8 (1 = image matches its prompt). A seeded 10% of D is
held out for validation; every epoch logs train loss, validation loss, ROC-AUC
and accuracy (logit > 0) to training/logs/<name>.csv and stdout. The exported
weights are those with the best validation AUC. No augmentation (flips would
change left/right relations, colour jitter would change colours).
--minutes is the total wall-clock budget including resumed time (--resume).
"""
from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # see train_generator.py

import argparse  # noqa: E402
import copy  # noqa: E402
import datetime  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import (CKPT_DIR, REPO_ROOT, CsvLog, Dataset, Timer, check_with_onnxruntime_node,  # noqa: E402
                    command_line, cosine_lr, count_params, export_onnx, images_to_float, model_name, optimizer_step,
                    roc_auc, run_files, save_checkpoint, setup_torch, stop_on_signals, write_json)
from nets import ModuleVerifier, Verifier, object_map_loss  # noqa: E402


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, help="dataset folder with labels.u8")
    ap.add_argument("--out", default="models/verifier.onnx")
    ap.add_argument("--minutes", type=float, default=15.0, help="total wall-clock training budget (incl. resumed time)")
    ap.add_argument("--max-epochs", type=int, default=0, help="also stop after this many epochs (0 = no limit)")
    ap.add_argument("--max-steps", type=int, default=0, help="also stop after this many steps (0 = no limit)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=3e-4)
    ap.add_argument("--weight-decay", type=float, default=0.05)
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument("--val-frac", type=float, default=0.1)
    ap.add_argument("--eval-every", type=float, default=3.0, help="also evaluate every this many minutes within an epoch")
    ap.add_argument("--channels", default=None, help="conv widths (default 32,64,128 for modules, 32,64,128,128 for tokens)")
    ap.add_argument("--text-layers", type=int, default=2)
    ap.add_argument("--dropout", type=float, default=0.1)
    ap.add_argument("--ckpt", default=None, help="checkpoint path (default training/checkpoints/<name>.pt for an --out in "
                    "models/, else beside --out)")
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--log-every", type=int, default=50, help="print train loss every N steps")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--aux-weight", type=float, default=0.5,
                    help="weight of the auxiliary per-cell class/colour loss when the data has aux.u8 (0 = off)")
    ap.add_argument("--no-film", action="store_true",
                    help="no FiLM of the image features by the pooled prompt: the prompt reaches the image only "
                         "token by token through cross-attention")
    ap.add_argument("--arch", choices=["modules", "tokens"], default="modules",
                    help="modules: the neural module network over the prompt's parse (needs spec.i32 and objects.f32 "
                         "from `dataset pairs`); tokens: the earlier token cross-attention verifier")
    ap.add_argument("--no-card", action="store_true")
    return ap.parse_args(argv)


def build_model(cfg):
    if cfg.get("arch") == "modules":
        return ModuleVerifier(ch=tuple(cfg["channels"]), include_slots=cfg["include_slots"],
                              exclude_slots=cfg["exclude_slots"], max_count=cfg["max_count"])
    return Verifier(cfg["vocab_size"], cfg["max_tokens"], ch=tuple(cfg["channels"]), text_layers=cfg["text_layers"],
                    dropout=cfg["dropout"], aux_outputs=cfg.get("aux_outputs", 0), film=cfg.get("film", True))


@torch.no_grad()
def evaluate(model, ds: Dataset, idx: torch.Tensor, batch: int = 256, focus: torch.Tensor = None):
    was = model.training
    model.eval()
    logits = []
    for i in range(0, len(idx), batch):
        j = idx[i:i + batch]
        logits.append(model(images_to_float(ds.images[j]), prompt_input(model, ds, j)))
    model.train(was)
    lg = torch.cat(logits)
    y = ds.labels[idx]
    loss = F.binary_cross_entropy_with_logits(lg, y).item()
    lg_np, y_np = lg.numpy(), y.numpy()
    acc = float(((lg_np > 0) == (y_np > 0.5)).mean())
    out = {"val_loss": loss, "val_auc": roc_auc(lg_np, y_np), "val_acc": acc, "logits": lg_np, "labels": y_np}
    # focus: the pairs the verifier meets at inference (generator samples with their own prompt)
    f = focus.numpy().astype(bool) if focus is not None else None
    out["val_auc_focus"] = roc_auc(lg_np[f], y_np[f]) if f is not None and f.any() else out["val_auc"]
    return out


def prompt_input(model, ds: Dataset, j):
    """What the model reads of the prompt: the parse rows (module verifier) or the tokens."""
    return ds.spec[j] if isinstance(model, ModuleVerifier) else ds.tokens[j]


def best_threshold(logits: np.ndarray, labels: np.ndarray):
    """Logit threshold maximising validation accuracy (predict match iff logit > threshold)."""
    order = np.argsort(logits)
    s, y = logits[order], labels[order] > 0.5
    n = len(s)
    # threshold just below s[k]: predictions 1 for indices >= k
    best_acc, best_thr = float((y == 1).mean()), float(s[0] - 1.0) if n else 0.0
    neg_below = np.cumsum(~y)              # negatives among the first k+1
    pos_total = y.sum()
    for k in range(1, n):
        if s[k] == s[k - 1]:
            continue
        acc = (neg_below[k - 1] + (pos_total - (y[:k].sum()))) / n
        if acc > best_acc:
            best_acc, best_thr = float(acc), float(0.5 * (s[k] + s[k - 1]))
    return best_thr, best_acc


def main(argv=None):
    args = parse_args(argv)
    setup_torch(args.seed, args.threads)
    name = model_name(args.out)
    ckpt_path, log_path, summary_path = run_files(args.out, CKPT_DIR)
    ckpt_path = args.ckpt or ckpt_path

    ds = Dataset(args.data, need_labels=True)
    pos_rate = float(ds.labels.mean())
    print(f"data: {args.data}: {ds.count} pairs, {pos_rate:.3f} positive, vocab {len(ds.vocab)}, "
          f"maxTokens {ds.max_tokens}")
    split_gen = torch.Generator().manual_seed(args.seed)
    if ds.groups is not None:
        # hold out whole source images: all prompts of a validation image are validation pairs
        uniq = torch.unique(ds.groups)
        held = uniq[torch.randperm(len(uniq), generator=split_gen)[:max(1, int(round(len(uniq) * args.val_frac)))]]
        is_val = torch.isin(ds.groups, held)
        val_idx, train_idx = torch.nonzero(is_val)[:, 0], torch.nonzero(~is_val)[:, 0]
        train_idx = train_idx[torch.randperm(len(train_idx), generator=split_gen)]
    else:
        perm = torch.randperm(ds.count, generator=split_gen)
        n_val = max(1, int(round(ds.count * args.val_frac)))
        val_idx, train_idx = perm[:n_val].sort().values, perm[n_val:]
    n_val = len(val_idx)
    focus = None
    if ds.own is not None:
        sampled = int(ds.meta.get("sampledImages", ds.count))
        focus_all = (ds.own == 1) & (ds.groups < sampled if ds.groups is not None else True)
        focus = focus_all[val_idx]
        print(f"validation focus: {int(focus.sum())} generator samples with their own prompt")
    modules = args.arch == "modules"
    if modules and (ds.spec is None or ds.objects is None):
        raise SystemExit(f"{args.data} has no spec.i32/objects.f32: write it with `reflectionflow dataset pairs` "
                         f"(or train --arch tokens)")
    aux_on = (ds.objects is not None if modules else ds.aux is not None) and args.aux_weight > 0
    n_cls = len(ds.meta.get("aux", {}).get("classes", [])) if aux_on and not modules else 0
    n_col = len(ds.meta.get("aux", {}).get("colors", [])) if aux_on and not modules else 0
    cfg = {"vocab_size": len(ds.vocab), "max_tokens": ds.max_tokens,
           "channels": [int(c) for c in (args.channels or ("32,64,128" if modules else "32,64,128,128")).split(",")],
           "text_layers": args.text_layers,
           "dropout": args.dropout, "aux_outputs": n_cls + n_col, "film": not args.no_film, "arch": args.arch}
    if modules:
        sp = ds.meta["spec"]
        cfg.update(include_slots=int(sp["includeSlots"]), exclude_slots=int(sp["excludeSlots"]),
                   max_count=int(sp["maxCount"]))

    ck = None
    if args.resume and os.path.exists(ckpt_path):
        ck = torch.load(ckpt_path, map_location="cpu")
        if ck["cfg"]["vocab_size"] != cfg["vocab_size"] or ck["cfg"]["max_tokens"] != cfg["max_tokens"]:
            raise SystemExit(f"checkpoint {ckpt_path} was trained on a different vocab/maxTokens")
        if ck["cfg"].get("arch", "tokens") != args.arch:
            raise SystemExit(f"checkpoint {ckpt_path} is a --arch {ck['cfg'].get('arch', 'tokens')} model, not {args.arch}")
        cfg = ck["cfg"]
        print(f"resuming from {ckpt_path}: step {ck['step']}, epoch {ck['epoch']}, {ck['elapsed'] / 60:.1f} min")
    elif args.resume:
        print(f"--resume: no checkpoint at {ckpt_path}, starting fresh")

    model = build_model(cfg)
    n_params = count_params(model)
    print(f"model: {type(model).__name__} channels {cfg['channels']}, {n_params / 1e6:.3f}M parameters; "
          f"split {len(train_idx)} train / {n_val} val")
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    step, epoch, elapsed0 = 0, 0, 0.0
    best = {"val_auc": -1.0}
    best_state = None
    history = []
    gen = torch.Generator().manual_seed(args.seed + 1)
    if ck is not None:
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["opt"])
        step, epoch, elapsed0 = ck["step"], ck["epoch"], ck["elapsed"]
        best, best_state, history = ck["best"], ck["best_state"], ck.get("history", [])
        gen.manual_seed(args.seed + 1 + 1000003 * step)

    timer = Timer(offset=elapsed0)
    budget = args.minutes * 60.0
    log = CsvLog(log_path, ["epoch", "step", "elapsed_s", "lr", "train_loss", "val_loss", "val_auc", "val_acc",
                            "steps_per_s", "val_auc_focus"], append=ck is not None)
    stop = stop_on_signals()
    history.append({"start_step": step, "start_elapsed": round(elapsed0, 1), "command": command_line()})
    run_start, run_start_step = time.time(), step
    last = {"t": time.time(), "step": step}
    summary = {"kind": "verifier", "name": name, "command": command_line(), "data": os.path.abspath(args.data),
               "data_count": ds.count, "train_count": len(train_idx), "val_count": n_val, "pos_rate": pos_rate,
               "vocab_size": len(ds.vocab), "max_tokens": ds.max_tokens, "params": n_params,
               "channels": cfg["channels"], "batch": args.batch, "lr": args.lr, "minutes_budget": args.minutes,
               "seed": args.seed, "torch": torch.__version__, "threads": args.threads, "out": args.out}

    def do_eval(train_loss):
        nonlocal best, best_state
        r = evaluate(model, ds, val_idx, focus=focus)
        now = time.time()
        sps = (step - last["step"]) / max(now - last["t"], 1e-9)
        last.update(t=now, step=step)
        log.write({"epoch": epoch, "step": step, "elapsed_s": round(timer.elapsed(), 1),
                   "lr": f"{opt.param_groups[0]['lr']:.3e}",
                   "train_loss": "" if train_loss is None else round(train_loss, 5),
                   "val_loss": round(r["val_loss"], 5), "val_auc": round(r["val_auc"], 5),
                   "val_auc_focus": round(r["val_auc_focus"], 5),
                   "val_acc": round(r["val_acc"], 5), "steps_per_s": round(sps, 3)})
        print(f"eval epoch {epoch} step {step}: train loss {train_loss if train_loss is not None else float('nan'):.4f} "
              f"val loss {r['val_loss']:.4f} AUC {r['val_auc']:.4f} (focus {r['val_auc_focus']:.4f}) acc {r['val_acc']:.4f} "
              f"({timer.elapsed() / 60:.1f} min)", flush=True)
        # selection on the focus pairs (all pairs when the data marks none); also true for the first (NaN-safe)
        if not (r["val_auc_focus"] <= best.get("val_auc_focus", -1.0)):
            best = {k: r[k] for k in ("val_loss", "val_auc", "val_acc", "val_auc_focus")}
            best.update(step=step, epoch=epoch)
            best["threshold"], best["threshold_acc"] = best_threshold(r["logits"], r["labels"])
            best_state = copy.deepcopy(model.state_dict())
        return r

    def checkpoint():
        save_checkpoint(ckpt_path, {"cfg": cfg, "model": model.state_dict(), "opt": opt.state_dict(),
                                    "step": step, "epoch": epoch, "elapsed": timer.elapsed(), "best": best,
                                    "best_state": best_state, "args": vars(args), "vocab": ds.vocab,
                                    "history": history})
        print(f"checkpoint: {ckpt_path} (step {step})")

    def done():
        return (stop["flag"] or timer.elapsed() >= budget or (args.max_steps > 0 and step >= args.max_steps)
                or (args.max_epochs > 0 and epoch >= args.max_epochs))

    model.train()
    r = None
    last_eval = time.time()
    while not done():
        order = train_idx[torch.randperm(len(train_idx), generator=gen)]
        tot, cnt, win, wcnt = 0.0, 0, 0.0, 0
        for i in range(0, len(order) - args.batch + 1 if len(order) >= args.batch else 1, args.batch):
            if done():
                break
            j = order[i:i + args.batch]
            x = images_to_float(ds.images[j])
            progress = timer.elapsed() / budget if budget > 0 else 1.0
            if args.max_steps > 0:
                progress = max(progress, step / args.max_steps)
            lr = cosine_lr(args.lr, progress, step, args.warmup)
            for g in opt.param_groups:
                g["lr"] = lr
            if aux_on and modules:
                logit, omap = model(x, ds.spec[j], with_map=True)
                dense = object_map_loss(omap, ds.objects[j], model.n_classes, model.n_colors, model.grid)
                loss = F.binary_cross_entropy_with_logits(logit, ds.labels[j]) + args.aux_weight * dense
            elif aux_on:
                logit, aux = model(x, ds.tokens[j], with_aux=True)
                target = ds.aux[j]                                           # B,2,g,g
                aux_loss = 0.5 * (F.cross_entropy(aux[:, :n_cls], target[:, 0])
                                  + F.cross_entropy(aux[:, n_cls:], target[:, 1]))
                loss = F.binary_cross_entropy_with_logits(logit, ds.labels[j]) + args.aux_weight * aux_loss
            else:
                loss = F.binary_cross_entropy_with_logits(model(x, prompt_input(model, ds, j)), ds.labels[j])
            lv = optimizer_step(model, opt, loss, step + 1)
            step += 1
            tot, cnt, win, wcnt = tot + lv, cnt + 1, win + lv, wcnt + 1
            if step % args.log_every == 0:
                print(f"step {step} ep {epoch} loss {win / wcnt:.4f} lr {lr:.2e} ({timer.elapsed() / 60:.1f} min)",
                      flush=True)
                win, wcnt = 0.0, 0
            if time.time() - last_eval >= args.eval_every * 60:
                r = do_eval(tot / cnt)
                checkpoint()
                last_eval = time.time()
        else:
            epoch += 1
            r = do_eval(tot / max(cnt, 1))
            summary["train_loss"] = tot / max(cnt, 1)
            checkpoint()
            last_eval = time.time()
            continue
        # broke out mid-epoch (time / step budget / signal)
        if cnt:
            r = do_eval(tot / cnt)
            summary["train_loss"] = tot / cnt
        break
    if r is None:
        r = do_eval(None)
    run_secs = time.time() - run_start
    history[-1].update({"end_step": step, "seconds": round(run_secs, 1)})
    checkpoint()
    log.close()
    summary.update({"steps": step, "epochs": epoch, "wall_seconds": timer.elapsed(), "samples_seen": step * args.batch,
                    "steps_per_s": (step - run_start_step) / max(run_secs, 1e-9),
                    "val_auc": r["val_auc"], "val_acc": r["val_acc"], "val_loss": r["val_loss"],
                    "val_auc_focus": r["val_auc_focus"], "arch": cfg.get("arch", "tokens"), "aux_weight": args.aux_weight if aux_on else 0,
                    "best_val_auc": best["val_auc"], "best": best, "exported": "best validation AUC on the focus pairs (generator samples, own prompt) when the data marks them",
                    "checkpoint": ckpt_path, "log": os.path.relpath(log_path, REPO_ROOT), "history": history})
    print(f"done: {step} steps, {epoch} epochs, {timer.elapsed() / 60:.1f} min; final val AUC {r['val_auc']:.4f} "
          f"acc {r['val_acc']:.4f}; best AUC {best['val_auc']:.4f} at step {best['step']} (exported)")

    # export the best weights
    model = build_model(cfg)
    model.load_state_dict(best_state)
    model.eval()
    b = 2
    prompt_name = "spec" if modules else "tokens"
    dummy = (images_to_float(ds.images[val_idx[:b]]), prompt_input(model, ds, val_idx[:b]).clone())
    info = export_onnx(model, dummy, args.out, ["image", prompt_name], ["logit"])
    j = val_idx[:5]
    with torch.no_grad():
        ref = model(images_to_float(ds.images[j]), prompt_input(model, ds, j))
    info["check"] = check_with_onnxruntime_node(args.out, {"image": images_to_float(ds.images[j]),
                                                           prompt_name: prompt_input(model, ds, j)}, {"logit": ref})
    print("onnx numeric check:", info["check"])
    summary["onnx"] = info
    meta = {
        "name": name,
        "kind": "verifier",
        "size": ds.size,
        **({} if modules else {"maxTokens": ds.max_tokens, "vocab": ds.vocab, "padId": 0}),
        "inputs": {"image": {"dtype": "float32", "shape": ["B", 3, ds.size, ds.size],
                             "layout": "NCHW RGB", "range": "[-1, 1] = pixel/127.5 - 1"},
                   **({"spec": {"dtype": "int64", "shape": ["B", ds.meta["spec"]["length"]],
                                "layout": "src/backends/embedded/spec.ts, version " + str(ds.meta["spec"]["version"])}}
                      if modules else {"tokens": {"dtype": "int64", "shape": ["B", ds.max_tokens], "pad": 0}})},
        "outputs": {"logit": {"dtype": "float32", "shape": ["B"], "meaning": "P(match) = sigmoid(logit)"}},
        "prompt": {"input": prompt_name, **({"spec": {k: ds.meta["spec"][k] for k in ("version", "length")}}
                                            if modules else {})},
        "threshold": 0.0,
        "bestThreshold": best.get("threshold"),
        "valAuc": best["val_auc"],
        "valAucFocus": best.get("val_auc_focus"),
        "valAcc": best["val_acc"],
        "valAccAtBestThreshold": best.get("threshold_acc"),
        "opset": 14,
        "params": n_params,
        "trainingSteps": step,
        "trainingMinutes": round(timer.elapsed() / 60, 2),
        "seed": args.seed,
        "exported": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    write_json(os.path.splitext(args.out)[0] + ".json", meta)
    print("wrote", os.path.splitext(args.out)[0] + ".json")
    write_json(summary_path, summary)
    if not args.no_card:
        from write_card import write_card
        write_card(name, out_dir=os.path.dirname(os.path.abspath(args.out)))


if __name__ == "__main__":
    main()
