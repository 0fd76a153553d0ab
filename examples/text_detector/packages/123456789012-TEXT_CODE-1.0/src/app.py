"""Text detection as a classic Panorama application: get frames, call the model node, add boxes, put frames.

The model is PP-OCRv4's text detector (a DBNet): its output is a per-pixel text probability map at the input's
size. Lines of text are the connected regions above the threshold. Written with numpy only, as an appliance
app without OpenCV would be.
"""

import logging
from logging.handlers import RotatingFileHandler

import numpy as np

import panoramasdk

MODEL_W, MODEL_H = 512, 288
MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32) * 255
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32) * 255

logger = logging.getLogger("text_detector")
logger.setLevel(logging.INFO)
logger.addHandler(RotatingFileHandler("/opt/aws/panorama/logs/app.log", maxBytes=10_000_000, backupCount=1))


def preprocess(image):
    h, w = image.shape[:2]
    rows = (np.arange(MODEL_H) * h // MODEL_H)[:, None]
    cols = (np.arange(MODEL_W) * w // MODEL_W)[None, :]
    rgb = image[rows, cols, ::-1].astype(np.float32)
    return ((rgb - MEAN) / STD).transpose(2, 0, 1)[None]


def text_boxes(mask, cell=4):
    """Bounding boxes (x0, y0, x1, y1 in [0, 1]) of connected text regions in a boolean probability mask."""
    h, w = mask.shape
    grid = mask[: h - h % cell, : w - w % cell].reshape(h // cell, cell, w // cell, cell).any(axis=(1, 3))
    grid[:, 1:] |= grid[:, :-1]  # close small gaps between letters of one word
    seen = np.zeros_like(grid)
    gh, gw = grid.shape
    boxes = []
    for y, x in zip(*np.nonzero(grid)):
        if seen[y, x]:
            continue
        stack, y0, x0, y1, x1 = [(y, x)], y, x, y, x
        seen[y, x] = True
        while stack:
            cy, cx = stack.pop()
            y0, x0, y1, x1 = min(y0, cy), min(x0, cx), max(y1, cy), max(x1, cx)
            for ny, nx in ((cy - 1, cx), (cy + 1, cx), (cy, cx - 1), (cy, cx + 1)):
                if 0 <= ny < gh and 0 <= nx < gw and grid[ny, nx] and not seen[ny, nx]:
                    seen[ny, nx] = True
                    stack.append((ny, nx))
        if (y1 - y0 + 1) * (x1 - x0 + 1) >= 6:  # ignore specks
            # DBNet marks a shrunk core of each text line: grow it back by about half the line's height
            pad = 0.5 * (y1 - y0 + 1)
            boxes.append((max(0.0, (x0 - pad) / gw), max(0.0, (y0 - pad) / gh),
                          min(1.0, (x1 + 1 + pad) / gw), min(1.0, (y1 + 1 + pad) / gh)))
    return boxes


class Application(panoramasdk.node):
    def __init__(self):
        self.threshold = self.inputs.threshold.get()
        self.frames = 0

    def process_streams(self):
        streams = self.inputs.video_in.get()
        for stream in streams:
            if stream.is_cached:
                continue
            (prob,) = self.call({"x": preprocess(stream.image)}, "text_model")
            boxes = text_boxes(prob[0, 0] > self.threshold)
            for x0, y0, x1, y1 in boxes:
                stream.add_rect(x0, y0, x1, y1)
                stream.add_label("text", x0, max(0.0, y0 - 0.04))
            stream.add_label(f"{len(boxes)} text region(s)", 0.02, 0.96)
            self.frames += 1
            if self.frames % 30 == 0:
                logger.info("frame %d: %d text regions", self.frames, len(boxes))
        self.outputs.video_out.put(streams)


def main():
    app = Application()
    print("text detector started", flush=True)
    while True:
        app.process_streams()


main()
