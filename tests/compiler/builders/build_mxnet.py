"""Run in the MXNet converter environment; ``build ROOT`` writes both models.

- ROOT/gluon: a Gluon network exported with ``export`` (epoch 3): net-symbol.json + net-0003.params.
- ROOT/ssd: an SSD-shaped symbol with GluonCV's three outputs (class ids [N,K,1], scores [N,K,1], boxes
  [N,K,4]): ssd-symbol.json + ssd-0000.params.

``reference JOBS.json`` runs each job's model on every array of its inputs (outputs ``<key>/<k>``)."""

from __future__ import annotations

import sys
from pathlib import Path

import mxnet as mx
import numpy as np

ANCHORS_SIDE = 4  # a 4x4 feature map, 2 anchors per cell: K = 32
CLASSES = 3


def build_gluon(out: Path) -> None:
    mx.random.seed(0)
    np.random.seed(0)
    net = mx.gluon.nn.HybridSequential()
    net.add(mx.gluon.nn.Conv2D(16, 3, padding=1), mx.gluon.nn.BatchNorm(), mx.gluon.nn.Activation("relu"),
            mx.gluon.nn.MaxPool2D(2), mx.gluon.nn.Conv2D(32, 3, padding=1), mx.gluon.nn.Activation("relu"),
            mx.gluon.nn.GlobalAvgPool2D(), mx.gluon.nn.Dense(10))
    net.initialize(mx.init.Xavier())
    net.hybridize()
    net(mx.nd.random.uniform(shape=(1, 3, 64, 64)))
    out.mkdir(parents=True, exist_ok=True)
    net.export(str(out / "net"), epoch=3)


def build_ssd(out: Path) -> None:
    rng = np.random.default_rng(0)
    data = mx.sym.var("data")
    x = mx.sym.Convolution(data, num_filter=16, kernel=(3, 3), stride=(2, 2), pad=(1, 1), name="conv1")
    x = mx.sym.Activation(x, act_type="relu")
    x = mx.sym.Pooling(x, kernel=(2, 2), stride=(2, 2), pool_type="max")
    x = mx.sym.Convolution(x, num_filter=32, kernel=(3, 3), stride=(2, 2), pad=(1, 1), name="conv2")
    x = mx.sym.Activation(x, act_type="relu")
    x = mx.sym.Pooling(x, kernel=(4, 4), stride=(4, 4), pool_type="avg")  # 128 -> 4x4 feature map
    cls = mx.sym.Convolution(x, num_filter=2 * (CLASSES + 1), kernel=(1, 1), name="cls_pred")
    loc = mx.sym.Convolution(x, num_filter=2 * 4, kernel=(1, 1), name="loc_pred")
    cls = mx.sym.reshape(mx.sym.transpose(cls, axes=(0, 2, 3, 1)), shape=(0, -1, CLASSES + 1))
    probs = mx.sym.softmax(cls, axis=-1)
    fg = mx.sym.slice_axis(probs, axis=-1, begin=1, end=None)
    scores = mx.sym.max(fg, axis=-1, keepdims=True, name="scores")
    ids = mx.sym.argmax(fg, axis=-1, keepdims=True, name="ids")
    boxes = mx.sym.sigmoid(mx.sym.reshape(mx.sym.transpose(loc, axes=(0, 2, 3, 1)), shape=(0, -1, 4)),
                           name="bboxes")
    sym = mx.sym.Group([ids, scores, boxes])
    shapes, _, _ = sym.infer_shape(data=(1, 3, 128, 128))
    params = {f"arg:{n}": mx.nd.array(rng.normal(0, 0.2, size=s).astype(np.float32))
              for n, s in zip(sym.list_arguments(), shapes) if n != "data"}
    out.mkdir(parents=True, exist_ok=True)
    sym.save(str(out / "ssd-symbol.json"))
    mx.nd.save(str(out / "ssd-0000.params"), params)


def reference(kind: str, model_dir: Path, inputs: Path, out: Path) -> None:
    prefix = "net" if kind == "gluon" else "ssd"
    epoch = 3 if kind == "gluon" else 0
    block = mx.gluon.SymbolBlock.imports(str(model_dir / f"{prefix}-symbol.json"), ["data"],
                                         str(model_dir / f"{prefix}-{epoch:04d}.params"))
    results = {}
    with np.load(inputs) as data:
        for key in data.files:
            outs = block(mx.nd.array(data[key]))
            outs = outs if isinstance(outs, (list, tuple)) else [outs]
            results.update({f"{key}/{k}": o.asnumpy() for k, o in enumerate(outs)})
    np.savez(out, **results)


if __name__ == "__main__":
    if sys.argv[1] == "build":  # build ROOT: ROOT/gluon and ROOT/ssd
        build_gluon(Path(sys.argv[2]) / "gluon")
        build_ssd(Path(sys.argv[2]) / "ssd")
    else:  # reference JOBS.json: [{"kind", "model_dir", "inputs", "out"}], one process for all of them
        import json

        for job in json.loads(Path(sys.argv[2]).read_text()):
            reference(job["kind"], Path(job["model_dir"]), Path(job["inputs"]), Path(job["out"]))
