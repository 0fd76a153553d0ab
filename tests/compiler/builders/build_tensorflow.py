"""Run in the TensorFlow converter environment; ``build ROOT`` writes the three models.

- ROOT/saved: an SSD-shaped SavedModel, uint8 ``image_tensor`` [N,96,96,3] -> detection_boxes [N,K,4],
  detection_classes [N,K], detection_scores [N,K], num_detections [N].
- ROOT/frozen: a frozen GraphDef model.pb, float ``input`` [1,32,32,3] -> ``logits``.
- ROOT/keras: a Keras model.h5, input ``pixels`` [N,32,32,3] -> 5 scores.

``reference JOBS.json`` runs each job's model on every array of its inputs (outputs ``<key>/<k>``, in the
order the model's signature gives them)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import tensorflow as tf

SIDE, K, CLASSES = 96, 36, 4


class Detector(tf.Module):
    """Conv features on a 6x6 grid, one anchor per cell: boxes, best class and its score per anchor."""

    def __init__(self) -> None:
        super().__init__()
        rng = np.random.default_rng(0)
        self.w1 = tf.Variable(rng.normal(0, 0.1, (3, 3, 3, 16)).astype(np.float32))
        self.w2 = tf.Variable(rng.normal(0, 0.1, (3, 3, 16, 32)).astype(np.float32))
        self.head = tf.Variable(rng.normal(0, 0.1, (1, 1, 32, 4 + CLASSES)).astype(np.float32))

    @tf.function(input_signature=[tf.TensorSpec([None, SIDE, SIDE, 3], tf.uint8, name="image_tensor")])
    def __call__(self, image_tensor: tf.Tensor) -> dict[str, tf.Tensor]:
        x = tf.cast(image_tensor, tf.float32) / 255.0
        x = tf.nn.relu(tf.nn.conv2d(x, self.w1, 2, "SAME"))
        x = tf.nn.max_pool2d(x, 4, 4, "SAME")
        x = tf.nn.relu(tf.nn.conv2d(x, self.w2, 2, "SAME"))  # 96 -> 48 -> 12 -> 6x6
        y = tf.reshape(tf.nn.conv2d(x, self.head, 1, "SAME"), [-1, K, 4 + CLASSES])
        boxes = tf.sigmoid(y[..., :4])
        probs = tf.nn.softmax(y[..., 4:], axis=-1)
        scores = tf.reduce_max(probs, axis=-1)
        classes = tf.cast(tf.argmax(probs, axis=-1), tf.float32) + 1.0
        count = tf.reduce_sum(tf.cast(scores > 0.3, tf.float32), axis=-1)
        return {"detection_boxes": boxes, "detection_classes": classes, "detection_scores": scores,
                "num_detections": count}


def build_saved(out: Path) -> None:
    module = Detector()
    tf.saved_model.save(module, str(out / "saved_model"), signatures={"serving_default": module.__call__})


def build_frozen(out: Path) -> None:
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    w = tf.constant(np.random.default_rng(1).normal(0, 0.2, (3, 3, 3, 8)).astype(np.float32))
    fc = tf.constant(np.random.default_rng(2).normal(0, 0.2, (8, 5)).astype(np.float32))

    @tf.function(input_signature=[tf.TensorSpec([1, 32, 32, 3], tf.float32, name="input")])
    def net(x: tf.Tensor) -> tf.Tensor:
        y = tf.reduce_mean(tf.nn.relu(tf.nn.conv2d(x, w, 1, "SAME")), axis=[1, 2])
        return tf.identity(tf.matmul(y, fc), name="logits")

    frozen = convert_variables_to_constants_v2(net.get_concrete_function())
    out.mkdir(parents=True, exist_ok=True)
    (out / "model.pb").write_bytes(frozen.graph.as_graph_def().SerializeToString())


def build_keras(out: Path) -> None:
    tf.keras.utils.set_random_seed(0)
    inp = tf.keras.Input((32, 32, 3), name="pixels")
    x = tf.keras.layers.Conv2D(8, 3, activation="relu")(inp)
    x = tf.keras.layers.GlobalAveragePooling2D()(x)
    model = tf.keras.Model(inp, tf.keras.layers.Dense(5, activation="softmax")(x))
    out.mkdir(parents=True, exist_ok=True)
    model.save(str(out / "model.h5"))


def _runner(kind: str, model_dir: Path):  # type: ignore[no-untyped-def]
    if kind == "saved":
        fn = tf.saved_model.load(str(model_dir / "saved_model")).signatures["serving_default"]
        return lambda x: [v for _, v in sorted(fn(image_tensor=tf.constant(x)).items())]
    if kind == "keras":
        model = tf.keras.models.load_model(str(model_dir / "model.h5"), compile=False)
        return lambda x: [model(tf.constant(x), training=False)]
    graph_def = tf.compat.v1.GraphDef()
    graph_def.ParseFromString((model_dir / "model.pb").read_bytes())
    wrapped = tf.compat.v1.wrap_function(lambda: tf.compat.v1.import_graph_def(graph_def, name=""), [])
    fn = wrapped.prune(wrapped.graph.as_graph_element("input:0"), wrapped.graph.as_graph_element("logits:0"))
    return lambda x: [fn(tf.constant(x))]


def reference(kind: str, model_dir: Path, inputs: Path, out: Path) -> None:
    run = _runner(kind, model_dir)
    results = {}
    with np.load(inputs) as data:
        for key in data.files:
            results.update({f"{key}/{k}": np.asarray(o) for k, o in enumerate(run(data[key]))})
    np.savez(out, **results)


if __name__ == "__main__":
    if sys.argv[1] == "build":  # build ROOT: ROOT/saved, ROOT/frozen, ROOT/keras
        for kind, build in (("saved", build_saved), ("frozen", build_frozen), ("keras", build_keras)):
            build(Path(sys.argv[2]) / kind)
    else:  # reference JOBS.json: [{"kind", "model_dir", "inputs", "out"}], one process for all of them
        import json

        for job in json.loads(Path(sys.argv[2]).read_text()):
            reference(job["kind"], Path(job["model_dir"]), Path(job["inputs"]), Path(job["out"]))
