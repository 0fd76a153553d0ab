"""The model compiler tests' models: :class:`Model` (built at test time in a converter environment by a script
of ``builders/``, run with :func:`in_env`), the source framework's own outputs (:func:`references`), and each
model packaged by panoflow's own ``add-raw-model`` into a Panorama application that calls it
(:func:`package_model`)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from panoflow.compiler import ENVIRONMENTS, CompileOptions
from panoflow.compiler.environments import python_of
from tests.support.apps import write_model_app
from tests.support.cli import run_panoflow

BUILDERS = Path(__file__).resolve().parent / "builders"


@dataclass(frozen=True)
class Model:
    """A built model: its folder, the framework and builder that made it, the descriptor's inputs, and the app
    preprocessing (``layout`` NCHW float in [0, 1], or NHWC uint8 pixels)."""

    key: str
    framework: str
    folder: Path
    builder: str
    kind: str
    input_name: str
    shape: tuple[int, ...]
    layout: str = "NCHW"
    dtype: str = "float32"
    fixed_output: tuple[np.ndarray, ...] = ()  # the framework's outputs on fixed_input(model)

    def descriptor(self, **changes: object) -> dict[str, object]:
        desc: dict[str, object] = {"envelopeVersion": "2021-01-01", "framework": self.framework,
                                   "inputs": [{"name": self.input_name, "shape": list(self.shape)}]}
        desc.update(changes)
        return {"mlModelDescriptor": desc}


def panoflow(*args: str, timeout: float = 600, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """``panoflow ARGS`` in a child process (JSON logs on stderr), with a compiler's time to finish."""
    return run_panoflow(*args, timeout=timeout, cwd=cwd)


def run_app(app: Path, clip: Path, state: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """``panoflow run APP`` on ``clip`` with ``env`` added, in a child process (a compiler's time to
    finish)."""
    return subprocess.run(
        [sys.executable, "-m", "panoflow", "--log-format", "json", "run", str(app), "--camera",
         f"camera_node={clip}", "--state-dir", str(state)],
        check=False, capture_output=True, text=True, timeout=600,
        env={**os.environ, "PYTHONUNBUFFERED": "1", **env})


def in_env(framework: str, *args: str | Path) -> None:
    """Run a builder script in ``framework``'s converter environment; fail the test with its stderr."""
    env = CompileOptions().converters_dir / ENVIRONMENTS[framework].name
    done = subprocess.run([str(python_of(env)), *map(str, args)], check=False, capture_output=True, text=True,
                          timeout=600, env={"PATH": os.environ.get("PATH", ""),
                                            "HOME": os.environ.get("HOME", "/"), "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert done.returncode == 0, done.stderr[-3000:]


def references(jobs: list[tuple[Model, dict[str, np.ndarray]]],
               work: Path) -> list[dict[str, list[np.ndarray]]]:
    """The source framework's outputs on each job's inputs (key -> outputs in order), one process per
    builder."""
    work.mkdir(parents=True, exist_ok=True)
    by_builder: dict[str, list[dict[str, str]]] = {}
    for n, (model, inputs) in enumerate(jobs):
        np.savez(work / f"in{n}.npz", **inputs)
        by_builder.setdefault(model.builder, []).append(
            {"kind": model.kind, "model_dir": str(model.folder), "inputs": str(work / f"in{n}.npz"),
             "out": str(work / f"out{n}.npz")})
    frameworks = {m.builder: m.framework for m, _ in jobs}
    for builder, entries in by_builder.items():
        (work / f"{builder}.json").write_text(json.dumps(entries))
        in_env(frameworks[builder], BUILDERS / builder, "reference", work / f"{builder}.json")
    results = []
    for n, (_, inputs) in enumerate(jobs):
        with np.load(work / f"out{n}.npz") as data:
            results.append({key: [data[f"{key}/{k}"] for k in range(sum(1 for f in data.files
                                                                        if f.startswith(f"{key}/")))]
                            for key in inputs})
    return results


def fixed_input(model: Model, seed: int = 123) -> np.ndarray:
    """A fixed input of the model's descriptor shape: uniform [0, 1) floats, or 0..255 pixels."""
    rng = np.random.default_rng(seed)
    if model.dtype == "uint8":
        return rng.integers(0, 256, size=model.shape).astype(np.uint8)
    return rng.random(model.shape).astype(np.float32)


def tar_folder(folder: Path, dest: Path) -> Path:
    """A .tar.gz of the folder's contents, as a user packs a model for add-raw-model."""
    with tarfile.open(dest, "w:gz") as tar:
        for path in sorted(folder.rglob("*")):
            tar.add(path, arcname=str(path.relative_to(folder)), recursive=False)
    return dest


@dataclass(frozen=True)
class Packaged:
    """A project whose model package add-raw-model made: the archive and descriptor in assets/."""

    project: Path
    package: Path
    archive: Path
    descriptor: Path


def package_model(model: Model, project: Path, *, descriptor: dict[str, object] | None = None,
                  archive: Path | None = None) -> Packaged:
    """A Panorama application (camera -> code -> HDMI, and ``model_node``; its code, :data:`APP`, calls the
    model on every frame and saves inputs and results to its storage) whose model package gets ``model`` (or
    the given archive file) with its descriptor (or the given one) through panoflow's own
    ``add-raw-model``."""
    work = project.parent / f"{project.name}-src"
    work.mkdir(parents=True)
    archive = archive or tar_folder(model.folder, work / "model.tar.gz")
    desc_path = work / "descriptor.json"
    desc_path.write_text(json.dumps(descriptor or model.descriptor(), indent=2))
    write_model_app(project, APP)  # its placeholder ONNX model package gets the real model below
    code = project / "packages" / "123456789012-MODEL_CODE-1.0" / "src"
    (code / "model_input.json").write_text(json.dumps(
        {"name": model.input_name, "shape": list(model.shape), "layout": model.layout, "dtype": model.dtype}))
    pkg = project / "packages" / "123456789012-TEST_MODEL-1.0"
    done = panoflow("add-raw-model", "--model-asset-name", "model_asset", "--model-local-path", str(archive),
                    "--descriptor-path", str(desc_path), "--packages-path", str(pkg.relative_to(project)),
                    "--project-dir", str(project))
    assert done.returncode == 0, done.stderr
    impl = json.loads((pkg / "package.json").read_text())["nodePackage"]["assets"][0]["implementations"][0]
    # the placeholder's files are gone: the package is what add-raw-model made of this model
    assert sorted(p.name for p in (project / "assets").iterdir()) == sorted([impl["assetUri"],
                                                                              impl["descriptorUri"]])
    assets = project / "assets"
    return Packaged(project, pkg, assets / impl["assetUri"], assets / impl["descriptorUri"])


APP = """
import json

import numpy as np
import panoramasdk

SPEC = json.load(open("/panorama/model_input.json"))


class Application(panoramasdk.node):
    def __init__(self):
        self.saved = {}
        self.count = 0

    def preprocess(self, image):
        shape = SPEC["shape"]
        h, w = (shape[2], shape[3]) if SPEC["layout"] == "NCHW" else (shape[1], shape[2])
        rows = np.linspace(0, image.shape[0] - 1, h).astype(int)
        cols = np.linspace(0, image.shape[1] - 1, w).astype(int)
        small = image[rows][:, cols, ::-1]
        if SPEC["layout"] == "NCHW":
            return (small.astype(np.float32) / 255.0).transpose(2, 0, 1)[None].copy()
        if SPEC["dtype"] == "uint8":
            return small[None].copy()
        return (small.astype(np.float32) / 255.0)[None].copy()

    def process(self):
        streams = self.inputs.video_in.get()
        for stream in streams:
            if stream.is_cached:
                continue
            x = self.preprocess(stream.image)
            results = self.call({SPEC["name"]: x}, "model_node")
            self.saved[f"{self.count}/in"] = x
            for k, r in enumerate(results):
                self.saved[f"{self.count}/out{k}"] = r
            self.count += 1
        self.outputs.video_out.put(streams)


app = Application()
try:
    while True:
        app.process()
finally:
    np.savez("/opt/aws/panorama/storage/io.npz", **app.saved)
    json.dump({"frames": app.count}, open("/opt/aws/panorama/storage/result.json", "w"))
"""
