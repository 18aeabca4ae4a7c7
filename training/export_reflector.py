"""Export the embedded reflector's perception model: the verifier's object-map trunk, cut out of the shipped verifier.

The module verifier (train_verifier.py --arch modules) learns an 8x8 object map from pixels (per cell: object-centre
logit, class logits, colour logits, in-cell centre offset and size), trained densely against the evaluator's
detections. The reflector reads that same map as a list of objects and compares it with the prompt's parse, so its
weights are the verifier's: this script extracts the sub-graph image -> object map into models/reflector.onnx and
writes models/reflector.json. Run it after every verifier training:

  /usr/bin/python3 training/export_reflector.py --verifier models/verifier.onnx --out models/reflector.onnx
"""
from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import os
import sys

import onnx
from onnx import helper

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import REPO_ROOT, command_line  # noqa: E402

HEAD_WEIGHT = "head.weight"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--verifier", default=os.path.join(REPO_ROOT, "models", "verifier.onnx"))
    ap.add_argument("--out", default=os.path.join(REPO_ROOT, "models", "reflector.onnx"))
    args = ap.parse_args(argv)

    model = onnx.load(args.verifier)
    heads = [n for n in model.graph.node if HEAD_WEIGHT in n.input]
    if len(heads) != 1 or heads[0].op_type != "Conv":
        raise SystemExit(f"{args.verifier}: no object-map head conv ({HEAD_WEIGHT}); is it a --arch modules verifier?")
    head_out = heads[0].output[0]
    # keep the nodes the object map depends on (a backward walk), rename its tensor, drop the prompt input
    need, keep = {head_out}, []
    for n in reversed(model.graph.node):
        if any(o in need for o in n.output):
            keep.append(n)
            need.update(i for i in n.input if i)
    keep.reverse()
    for n in keep:
        n.output[:] = ["objects" if o == head_out else o for o in n.output]
    inits = [i for i in model.graph.initializer if i.name in need]
    image = next(i for i in model.graph.input if i.name == "image")
    with open(os.path.splitext(args.verifier)[0] + ".json") as f:
        vmeta = json.load(f)
    layout = vmeta["promptLayout"] if "promptLayout" in vmeta else None
    n_ch = next(i for i in model.graph.initializer if i.name == "head.bias").dims[0]
    out = helper.make_tensor_value_info("objects", onnx.TensorProto.FLOAT, ["B", n_ch, 8, 8])
    graph = helper.make_graph(keep, "reflector_perception", [image], [out], inits)
    sub = helper.make_model(graph, opset_imports=model.opset_import, producer_name="export_reflector.py")
    sub.ir_version = model.ir_version
    onnx.checker.check_model(sub)
    tmp = args.out + ".tmp"
    onnx.save(sub, tmp)
    os.replace(tmp, args.out)
    with open(args.verifier, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()[:16]
    meta = {
        "name": "reflector",
        "kind": "reflector",
        "size": vmeta["size"],
        "inputs": {"image": vmeta["inputs"]["image"]},
        "outputs": {"objects": {
            "dtype": "float32", "shape": ["B", n_ch, 8, 8],
            "channels": "0: object-centre logit; 1..6: class logits (circle, square, triangle, star, diamond, cross); "
                        "7..16: colour logits (GenEval order); 17, 18: sigmoid = centre offset x, y in the cell; "
                        "19, 20: sigmoid = width, height (of the image side)",
        }},
        "grid": 8,
        "classes": ["circle", "square", "triangle", "star", "diamond", "cross"],
        "colors": ["red", "orange", "yellow", "green", "blue", "purple", "pink", "brown", "black", "white"],
        "from": {"verifier": os.path.relpath(os.path.abspath(args.verifier), REPO_ROOT), "sha256_16": digest,
                 "trainingSteps": vmeta.get("trainingSteps")},
        "command": command_line(),
        "opset": vmeta.get("opset"),
        "exported": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    if layout:
        meta["promptLayout"] = layout
    with open(os.path.splitext(args.out)[0] + ".json", "w") as f:
        json.dump(meta, f, indent=2)
        f.write("\n")
    print(f"wrote {args.out} ({os.path.getsize(args.out) / 1e6:.2f} MB) and its json")


if __name__ == "__main__":
    main()
