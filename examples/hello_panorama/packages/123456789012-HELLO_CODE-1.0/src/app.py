"""A Panorama application as it would run on the appliance: nothing here knows about panoflow."""

import json
import logging
from logging.handlers import RotatingFileHandler

import panoramasdk

logger = logging.getLogger("hello")
logger.setLevel(logging.INFO)
handler = RotatingFileHandler("/opt/aws/panorama/logs/app.log", maxBytes=10_000_000, backupCount=1)
handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
logger.addHandler(handler)


class Application(panoramasdk.node):
    def __init__(self):
        self.greeting = self.inputs.greeting.get()
        self.box = self.inputs.box_size.get()
        with open("/panorama/labels.json") as f:
            self.labels = json.load(f)
        self.frames = {}

    def process_streams(self):
        streams = self.inputs.video_in.get()
        for stream in streams:
            if stream.is_cached:
                continue
            n = self.frames[stream.stream_id] = self.frames.get(stream.stream_id, 0) + 1
            x = (n % 100) / 100 * (1 - self.box)
            stream.add_rect(x, 0.5 - self.box / 2, x + self.box, 0.5 + self.box / 2)
            stream.add_label(f"{self.greeting} - {self.labels['camera']} {stream.stream_id} frame {n}", 0.02,
                             0.06)
        self.outputs.video_out.put(streams)

    def save(self):
        with open("/opt/aws/panorama/storage/frame_counts.json", "w") as f:
            json.dump(self.frames, f)


def main():
    app = Application()
    logger.info("started")
    print("hello_panorama started", flush=True)
    try:
        while True:
            app.process_streams()
    finally:
        app.save()
        logger.info("frames per camera: %s", app.frames)
        print(f"frames per camera: {app.frames}", flush=True)


main()
