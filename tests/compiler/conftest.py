"""Fixtures for the model compiler tests: the three converter environments (created once per machine under the
default cache folder, as ``scripts/test`` does before pytest), the real models built in them at test time
(:mod:`tests.compiler.models`), and a clip."""

from __future__ import annotations

from pathlib import Path

import pytest

from panoflow.compiler import ENVIRONMENTS, CompileOptions
from panoflow.compiler.environments import ensure_environment
from tests.compiler.models import BUILDERS, Model, fixed_input, in_env, references


@pytest.fixture(scope="session")
def converter_envs() -> dict[str, Path]:
    """The three converter environments (created here only when ``scripts/test`` did not create them
    first)."""
    options = CompileOptions()
    return {fw: ensure_environment(spec, options.converters_dir, options.pip, print)
            for fw, spec in ENVIRONMENTS.items()}


@pytest.fixture(scope="session")
def models(converter_envs: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Model]:
    """The real models, built at test time in their converter environments with random weights."""
    root = tmp_path_factory.mktemp("models")
    in_env("PYTORCH", BUILDERS / "build_pytorch.py", "build", root / "squeezenet")
    in_env("MXNET", BUILDERS / "build_mxnet.py", "build", root / "mxnet")
    in_env("TENSORFLOW", BUILDERS / "build_tensorflow.py", "build", root / "tf")
    built = [
        Model("squeezenet", "PYTORCH", root / "squeezenet", "build_pytorch.py", "", "data", (1, 3, 224, 224)),
        Model("gluon", "MXNET", root / "mxnet" / "gluon", "build_mxnet.py", "gluon", "data", (1, 3, 64, 64)),
        Model("ssd_mxnet", "MXNET", root / "mxnet" / "ssd", "build_mxnet.py", "ssd", "data",
              (1, 3, 128, 128)),
        Model("ssd_tf", "TENSORFLOW", root / "tf" / "saved", "build_tensorflow.py", "saved", "image_tensor",
              (1, 96, 96, 3), "NHWC", "uint8"),
        Model("frozen_tf", "TENSORFLOW", root / "tf" / "frozen", "build_tensorflow.py", "frozen", "input",
              (1, 32, 32, 3), "NHWC"),
        Model("keras_tf", "TENSORFLOW", root / "tf" / "keras", "build_tensorflow.py", "keras", "pixels",
              (1, 32, 32, 3), "NHWC"),
    ]
    fixed = references([(m, {"x": fixed_input(m)}) for m in built], root / "fixed")
    return {m.key: Model(**{**m.__dict__, "fixed_output": tuple(f["x"])}) for m, f in zip(built, fixed)}


@pytest.fixture(scope="session")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real 320x240 H.264 clip of 8 frames."""
    from tests.media import make_clip

    return make_clip(tmp_path_factory.mktemp("clip") / "clip.mp4", frames=8, size=(320, 240), seed=3)

