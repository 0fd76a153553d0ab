"""Conversion on demand: a decoded picture becomes BGR only when a consumer takes its frame, counted by the
source (``conversions`` in ``stats()``, ``panoflow_source_conversions_total``): with a slow consumer on a
``latest``
edge, conversions == frames delivered < frames decoded; the images are bit-exact with PyAV's own
conversion."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import anyio
import pytest

from panoflow.plugins.sources import FileSource, read_index
from tests.decode.decoders import FRAMES
from tests.decode.helpers import SlowConsumer, decode_units, digest
from tests.media import decode_bgr, make_clip
from tests.support.apps import write_app
from tests.support.cli import control_get

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """2 s of 320x240 H.264 at 30 fps (a keyframe each second)."""
    return make_clip(tmp_path_factory.mktemp("conversion") / "cam.mp4", frames=60, fps=30, seed=9)


async def _consume(uri: str, fps: float) -> tuple[FileSource, SlowConsumer]:
    source = FileSource(uri, stream_id="cam", options={})
    consumer = SlowConsumer(fps)
    try:
        await source.run(consumer)
        with anyio.fail_after(10):  # the last frame the source put may still wait for the consumer
            while consumer.inbox.stats.snapshot()["depth"]:
                await anyio.sleep(0.02)
    finally:
        consumer.close()
    return source, consumer


async def test_a_slow_consumer_converts_only_the_frames_it_takes(clip: Path) -> None:
    reference = decode_bgr(clip)
    source, consumer = await _consume(f"file://{clip}?realtime=1", fps=5)
    stats = source.stats()
    assert stats["frames_decoded"] == stats["frames"] == 60
    assert stats["conversions"] == consumer.delivered == len(consumer.taken)
    assert 2 <= stats["conversions"] <= 15 < stats["frames_decoded"]  # 5 of 30 frames a second, at most
    indices = [read_index(image) for image in consumer.images]
    assert indices == sorted(set(indices))  # the newest frame each time, never one twice
    assert [digest(image) for image in consumer.images] == [digest(reference[i]) for i in indices]


async def test_eager_conversion_converts_every_decoded_picture(clip: Path) -> None:
    source, consumer = await _consume(f"file://{clip}?realtime=1&convert=eager", fps=5)
    stats = source.stats()
    assert stats["conversions"] == stats["frames_decoded"] == 60 and consumer.delivered < 60


def test_a_camera_converts_only_the_frames_read(gop_clips: dict[str, Path]) -> None:
    reference = decode_bgr(gop_clips["h264"])
    frames, dec, _intake = decode_units(gop_clips["h264"], expect=FRAMES)
    assert len(frames) == FRAMES and dec.video.decoded == FRAMES
    assert [(f.width, f.height) for f in frames] == [(320, 240)] * FRAMES and dec.converter.conversions == 0
    read = frames[::3]
    assert [digest(f.image) for f in read] == [digest(reference[i]) for i in range(0, FRAMES, 3)]
    assert [f.image is f.image for f in read] == [True] * len(read)
    assert dec.converter.conversions == len(read)


def test_a_scaled_camera_picture_is_converted_at_its_delivered_size(gop_clips: dict[str, Path]) -> None:
    from panoflow.plugins.rtsp.decode import FrameDecoder, Intake, UnitQueue
    from tests.decode.helpers import access_units

    frames = []
    queue = UnitQueue(256)
    dec = FrameDecoder(stream_id="cam", stream_uri="rtsp://cam/x", emit=lambda f: frames.append(f) or True,
                       downscale=(160, 120), limit=3)
    intake = Intake(queue, dec.need_keyframe)
    intake.restart("h264")
    for data, key in access_units(gop_clips["h264"])[:3]:
        intake.offer(data, keyframe=key, intact=True, wall=time.time())
    dec.run(queue)  # returns at its limit of 3 frames
    assert [(f.width, f.height) for f in frames] == [(160, 120)] * 3 and dec.converter.conversions == 0
    assert frames[2].image.shape == (120, 160, 3) and dec.converter.conversions == 1


APP = """
import json
import time


class App(panoramasdk.node):
    def __init__(self):
        pass


app = App()
fresh = 0
for _ in range(12):  # 12 requests at 5 fps against a 30 fps camera, then the app is done
    for s in app.inputs.video_in.get():
        fresh += not s.is_cached
        assert s.image.shape == (240, 320, 3) and str(s.image.dtype) == "uint8"
    time.sleep(0.2)
with open("/opt/aws/panorama/storage/taken.json", "w") as f:
    json.dump({"fresh": fresh}, f)
"""


@pytest.mark.skipif(sys.platform != "linux", reason="needs Linux namespaces")
def test_an_app_process_gets_only_its_frames_converted(tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "c.mp4", frames=30, fps=30)
    app = write_app(tmp_path / "app", code=APP)
    sock = tmp_path / "control.sock"
    summary = tmp_path / "summary.json"
    proc = subprocess.Popen(
        [sys.executable, "-m", "panoflow", "--log-format", "json", "run", str(app),
         "--camera", f"camera_node=file://{clip}?loop=1&realtime=1", "--state-dir", str(tmp_path / "s"),
         "--control", f"unix:{sock}", "--summary-json", str(summary)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    metrics: dict[str, float] = {}
    try:
        deadline = time.monotonic() + 90
        while proc.poll() is None and time.monotonic() < deadline:  # the app is running: read /metrics
            try:
                text = control_get(sock, "/metrics") if sock.exists() else ""
            except OSError:  # the instance is shutting down
                break
            wanted = ("panoflow_source_conversions_total{", "panoflow_source_decoded_frames_total{")
            for ln in (ln for ln in text.splitlines() if ln.startswith(wanted)):
                metrics[ln.split("{", 1)[0]] = float(ln.rsplit(" ", 1)[1])
            time.sleep(0.2)
        _out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err[-3000:]
    taken = json.loads((tmp_path / "s" / "storage" / "taken.json").read_text())["fresh"]
    stream = json.loads(summary.read_text())["streams"]["camera_node"]
    ended = [json.loads(ln) for ln in err.splitlines() if ln.startswith("{") and '"decode_summary"' in ln]
    assert len(ended) == 1, err[-3000:]
    # every frame the app took was converted once (from the decoded picture into its segment); no other one
    assert ended[0]["conversions"] == stream["delivered"] == taken
    assert taken < ended[0]["frames_decoded"] and ended[0]["frames_decoded"] >= 2 * taken
    assert metrics["panoflow_source_conversions_total"] <= taken
    assert metrics["panoflow_source_decoded_frames_total"] > metrics["panoflow_source_conversions_total"]
    assert taken >= 6  # 12 requests: at 5 fps every one finds a fresh frame (a loaded machine: still most)


async def test_a_native_node_gets_its_frames_converted_off_the_event_loop() -> None:
    import threading
    from types import SimpleNamespace

    import numpy as np

    from panoflow.core.bus import Inbox
    from panoflow.core.frame import DeferredImage, Frame
    from panoflow.core.ports import MediaInput
    from panoflow.plugins.native_runner import NativeNode

    threads: list[threading.Thread] = []

    def convert() -> np.ndarray:
        threads.append(threading.current_thread())
        return np.zeros((4, 6, 3), np.uint8)

    inbox: Inbox[Frame] = Inbox("code_node.video_in", "block(4)", ["cam"])
    inbox.put("cam", Frame(DeferredImage(convert, (4, 6, 3)), "cam", 0, (0, 0)))
    inbox.end_stream("cam")
    io = SimpleNamespace(node_id="code_node", inputs={"video_in": MediaInput("video_in", inbox, ["cam"])},
                         outputs={})
    node = NativeNode(SimpleNamespace(io=io, storage_dir="/nonexistent", logs_dir="/nonexistent"))
    batches = [batch async for batch in node.frames()]
    assert [f.pixels.converted for f in batches[0]] == [True]
    assert threads and threads[0] is not threading.main_thread()  # the loop runs in the main thread here
