"""The inference tests' unmodified-style Panorama application (:data:`PANORAMA_APP`: numpy preprocessing,
``self.call`` on its model node, results and frame hashes saved to its storage folder) and the hashes it
should record for a clip (:func:`frame_hashes`)."""

from __future__ import annotations

import hashlib
from pathlib import Path

from tests.media import decode_bgr

# An unmodified Panorama application: numpy preprocessing, self.call, results saved to its storage folder.
PANORAMA_APP = """
import hashlib
import json

import numpy as np
import panoramasdk

MEAN = np.array([0.485, 0.456, 0.406], np.float32)
STD = np.array([0.229, 0.224, 0.225], np.float32)


class Application(panoramasdk.node):
    def __init__(self):
        self.MODEL_NODE = "model_node"
        self.saved = {}
        self.frames = {}
        self.kinds = set()

    def preprocess(self, image):
        small = image[::10, ::10, ::-1].astype(np.float32) / 255.0
        return ((small - MEAN) / STD).transpose(2, 0, 1)[None].astype(np.float32)

    def process(self):
        streams = self.inputs.video_in.get()
        for stream in streams:
            if stream.is_cached:
                continue
            n = len(self.frames.setdefault(stream.stream_id, []))
            self.frames[stream.stream_id].append(hashlib.sha256(stream.image.tobytes()).hexdigest())
            x = self.preprocess(stream.image)
            results = self.call({"data": x}, self.MODEL_NODE)
            self.kinds.add((type(results).__name__, len(results), *(type(r).__name__ for r in results)))
            logits, features = results
            self.saved[f"{stream.stream_id}/{n}/in"] = x
            self.saved[f"{stream.stream_id}/{n}/logits"] = logits
            self.saved[f"{stream.stream_id}/{n}/features"] = features
        self.outputs.video_out.put(streams)

    def finish(self):
        try:
            self.call({"data": np.zeros((1, 3, 24, 32), np.float32)}, "no_such_model")
            unknown = "no error"
        except KeyError as exc:
            unknown = "KeyError: " + str(exc)
        np.savez("/opt/aws/panorama/storage/io.npz", **self.saved)
        with open("/opt/aws/panorama/storage/result.json", "w") as f:
            json.dump({"frames": self.frames, "kinds": sorted(self.kinds), "unknown": unknown}, f)


app = Application()
try:
    while True:
        app.process()
finally:
    app.finish()
"""


def frame_hashes(path: Path) -> list[str]:
    """The SHA-256 of every decoded BGR frame of ``path``: what the app records per camera."""
    return [hashlib.sha256(a.tobytes()).hexdigest() for a in decode_bgr(path)]
