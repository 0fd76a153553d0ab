"""Compile one model (an extracted PYTORCH, MXNET or TENSORFLOW archive) to ONNX: what SageMaker Neo did for
Panorama, on your hardware.

:class:`ModelCompiler` finds the model's files (:mod:`.sources`), makes sure the framework's converter
environment exists (:mod:`.environments`), runs the framework's worker script there (``workers/``: convert,
and run the source model on a deterministic input), checks the ONNX file against the source framework's
outputs with ONNX Runtime (:mod:`.verify`) and keeps the result under ``<cache>/<key>/``: ``model.onnx`` and
``verification.json`` (the measured difference, the converter and its versions). The key digests the archive's
SHA-256, what the descriptor says about the model (framework and inputs) and the converter version (its pinned
requirements and the worker scripts' text), so a second load compiles nothing.

Inputs are named and shaped by the descriptor's ``inputs`` (as Neo's DataInputConfig); the outputs keep the
source framework's order; the batch axis is made dynamic, and kept static when a batch of two does not give
two results.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog

from panoflow.compiler.environments import (
    ENVIRONMENTS,
    EnvSpec,
    PipSource,
    default_cache_dir,
    ensure_environment,
    locked,
    python_of,
)
from panoflow.compiler.sources import SourceModel, locate
from panoflow.compiler.verify import Verification, batch_problem, compare
from panoflow.exceptions import ModelError

__all__ = ["CompileOptions", "CompileRequest", "CompiledModel", "InputSpec", "ModelCompiler", "cache_key"]

log = structlog.get_logger(__name__)

_WORKERS = Path(__file__).resolve().parent / "workers"
_DONE = ".complete"
#: the ONNX opset each converter writes (MXNet 1.9.1 picks its own: that of its onnx package, 1.14)
OPSETS = {"PYTORCH": 17, "MXNET": 13, "TENSORFLOW": 17}
#: how long one conversion may take
WORKER_TIMEOUT_S = 1800


@dataclass(frozen=True)
class InputSpec:
    """One model input as the descriptor gives it (Neo's DataInputConfig)."""

    name: str
    shape: tuple[int, ...]
    type: str = ""


@dataclass(frozen=True)
class CompileRequest:
    """What to compile: the extracted archive ``model_dir`` of SHA-256 ``digest``, the descriptor's framework
    and inputs, and the names (archive, descriptor) every error message starts with."""

    model_dir: Path
    digest: str
    framework: str
    inputs: tuple[InputSpec, ...]
    archive_name: str
    descriptor_name: str

    @property
    def label(self) -> str:
        return f"model archive {self.archive_name} (descriptor {self.descriptor_name})"


@dataclass(frozen=True)
class CompileOptions:
    """``converters_dir``: where the converter environments live; ``pip``: where their wheels come from;
    ``tolerance``: the largest relative difference accepted; ``seed``: the sample input's."""

    converters_dir: Path = field(default_factory=lambda: default_cache_dir() / "converters")
    pip: PipSource = field(default_factory=PipSource.from_environment)
    tolerance: float = 1e-3
    seed: int = 0


@dataclass(frozen=True)
class CompiledModel:
    """The compiled ``model.onnx``, its ``verification.json`` (also as ``report``) and whether it came from
    the cache (nothing was compiled)."""

    path: Path
    report_path: Path
    report: dict[str, Any]
    cached: bool


def _converter_version(spec: EnvSpec) -> str:
    digest = hashlib.sha256()
    for name in ("_common.py", spec.worker):
        digest.update((_WORKERS / name).read_bytes())
    return f"{spec.name}:{digest.hexdigest()[:12]}"


def cache_key(request: CompileRequest) -> str:
    """The digest of the archive, the descriptor's framework and inputs, and the converter's version."""
    fw = request.framework.upper()
    spec = ENVIRONMENTS.get(fw)
    doc = {"archive": request.digest, "framework": fw,
           "inputs": [[i.name, list(i.shape), i.type or ""] for i in request.inputs],
           "converter": _converter_version(spec) if spec else "none", "opset": OPSETS.get(fw)}
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:32]


def publish(tmp: Path, final: Path, note: str) -> None:
    """Mark the finished folder ``tmp`` complete and move it to ``final`` in one rename, replacing an
    unfinished one. When another process published ``final`` first, theirs is kept (it may hold more by now: a
    model's extraction folder also holds its compiled models) and ``tmp`` is left for the caller to remove."""
    (tmp / _DONE).write_text(note + "\n")
    if (final / _DONE).is_file():
        return
    if final.exists():
        shutil.rmtree(final, ignore_errors=True)
    try:
        os.replace(tmp, final)
    except OSError:
        if not (final / _DONE).is_file():
            raise


def _quiet(_: str) -> None:
    pass


class ModelCompiler:
    """Compiles model archives to ONNX in the converter environments; safe to share between threads and
    processes (environments and results appear atomically)."""

    def __init__(self, options: CompileOptions | None = None, progress: Callable[[str], None] | None = None):
        self.options = options or CompileOptions()
        self.progress = progress or _quiet

    def cached(self, request: CompileRequest, cache_dir: Path) -> CompiledModel | None:
        """The compiled model of ``request`` under ``cache_dir``, when it was compiled before."""
        folder = cache_dir / cache_key(request)
        if not (folder / _DONE).is_file():
            return None
        report = json.loads((folder / "verification.json").read_text())
        return CompiledModel(folder / "model.onnx", folder / "verification.json", report, True)

    def compile(self, request: CompileRequest, cache_dir: Path) -> CompiledModel:
        """The ONNX model of ``request``: from ``cache_dir`` when compiled before, else compiled there now.
        Raises :class:`ModelError` (its message starts with the archive and descriptor names)."""
        hit = self.cached(request, cache_dir)
        if hit is not None:
            log.debug("model_compile_cached", digest=request.digest[:12], folder=str(hit.path.parent))
            return hit
        fw = request.framework.upper()
        spec = ENVIRONMENTS.get(fw)
        if spec is None:
            raise ModelError(f"{request.label}: framework {request.framework!r} cannot be compiled; use "
                             "ONNX, PYTORCH, MXNET or TENSORFLOW")
        if not request.inputs:
            raise ModelError(f"{request.label}: the descriptor names no inputs; a {fw} model is compiled for "
                             "the inputs (name and shape) it lists")
        source = locate(request.model_dir, fw, request.label)
        env = ensure_environment(spec, self.options.converters_dir, self.options.pip, self.progress)
        folder = cache_dir / cache_key(request)
        with locked(cache_dir / f".{folder.name}.lock"):  # two model nodes, one model: compiled once
            hit = self.cached(request, cache_dir)
            if hit is not None:
                return hit
            for stale in cache_dir.glob(f".{folder.name[:12]}-*"):  # left by a process killed while compiling
                shutil.rmtree(stale, ignore_errors=True)
            tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name[:12]}-", dir=cache_dir))
            try:
                report = self._compile_into(request, spec, env, source, tmp)
                publish(tmp, folder, request.archive_name)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
        log.info("model_compiled", framework=fw, digest=request.digest[:12], folder=str(folder),
                 max_abs_diff=report["max_abs_diff"], max_rel_diff=report["max_rel_diff"],
                 seconds=report["seconds"])
        return CompiledModel(folder / "model.onnx", folder / "verification.json", report, False)

    def _compile_into(self, request: CompileRequest, spec: EnvSpec, env: Path, source: SourceModel,
                      tmp: Path) -> dict[str, Any]:
        started = time.monotonic()
        fw = spec.framework
        self.progress(f"converting {request.archive_name} ({fw}: {source.describe(request.model_dir)}) to "
                      f"ONNX in {env.name}")
        notes: list[str] = []
        result = self._run_worker(request, spec, env, source, tmp, dynamic=True)
        onnx_path, sample = tmp / "model.onnx", tmp / "sample.npz"
        dynamic = result.get("dynamic_batch", True) is not False  # the worker knows when the graph fixes it
        problem = batch_problem(onnx_path, sample) if dynamic else ""
        if problem:
            dynamic = False
            notes.append(f"batch axis kept at the descriptor's size: {problem}")
            self.progress(f"the batch axis cannot be dynamic ({problem}); converting again with the "
                          "descriptor's batch size")
            result = self._run_worker(request, spec, env, source, tmp, dynamic=False)
        try:
            measured = compare(onnx_path, sample, list(result.get("outputs") or []))
        except ValueError as exc:
            raise ModelError(
                f"{request.label}: the converted model does not match the {fw} model: {exc}"
            ) from None
        self._check(request, measured)
        report = {
            "framework": fw, "archive_sha256": request.digest, "source": source.describe(request.model_dir),
            "converter": spec.name, "requirements": list(spec.requirements),
            "converter_version": _converter_version(spec),
            "framework_version": result.get("framework_version"),
            "opset": OPSETS[fw], "inputs": [{"name": i.name, "shape": list(i.shape)} for i in request.inputs],
            "dynamic_batch": dynamic, "sample_seed": self.options.seed, "tolerance": self.options.tolerance,
            **measured.as_dict(), "notes": notes + list(result.get("notes") or []),
            "seconds": round(time.monotonic() - started, 2),
        }
        (tmp / "verification.json").write_text(json.dumps(report, indent=2) + "\n")
        sample.unlink()
        return report

    def _check(self, request: CompileRequest, measured: Verification) -> None:
        tol = self.options.tolerance
        if measured.max_rel_diff > tol:
            worst = max(measured.outputs, key=lambda o: o["max_rel_diff"])
            raise ModelError(
                f"{request.label}: the compiled ONNX model differs from the {request.framework.upper()} "
                f"model by {measured.max_abs_diff:.3g} absolute and {measured.max_rel_diff:.3g} relative "
                f"(output {worst['name']}), beyond the tolerance of {tol:g} relative; the converter cannot "
                "reproduce this model faithfully (raise --tolerance only if that difference is acceptable)")
        self.progress(f"verified: max abs diff {measured.max_abs_diff:.3g}, max rel diff "
                      f"{measured.max_rel_diff:.3g} (tolerance {tol:g} relative)")

    def _run_worker(self, request: CompileRequest, spec: EnvSpec, env: Path, source: SourceModel, tmp: Path,
                    *,
                    dynamic: bool) -> dict[str, Any]:
        req = {"files": {k: str(v) for k, v in source.files.items()},
               "inputs": [{"name": i.name, "shape": list(i.shape), "type": i.type} for i in request.inputs],
               "output": str(tmp / "model.onnx"), "sample": str(tmp / "sample.npz"), "dynamic_batch": dynamic,
               "seed": self.options.seed, "opset": OPSETS[spec.framework]}
        (tmp / "request.json").write_text(json.dumps(req))
        result_path = tmp / "result.json"
        result_path.unlink(missing_ok=True)
        child_env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR")}
        child_env.update({"PYTHONNOUSERSITE": "1", "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": ""})
        cmd = [str(python_of(env)), str(_WORKERS / spec.worker), str(tmp / "request.json"), str(result_path)]
        try:
            done = subprocess.run(cmd, check=False, capture_output=True, text=True, cwd=tmp, env=child_env,
                                  timeout=WORKER_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            raise ModelError(f"{request.label}: the {spec.framework} converter ran longer than "
                             f"{WORKER_TIMEOUT_S} s") from None
        result: dict[str, Any] = {}
        if result_path.is_file():
            result = json.loads(result_path.read_text())
        if done.returncode != 0 or "error" in result:
            if result.get("trace"):
                log.warning("model_converter_failed", framework=spec.framework, trace=result["trace"])
            why = result.get("error") or _last_lines(done.stderr) or f"exit status {done.returncode}"
            raise ModelError(f"{request.label}: the {spec.framework} converter refused the model: {why}")
        return result


def _last_lines(text: str, n: int = 3) -> str:
    lines: Sequence[str] = [ln for ln in text.splitlines() if ln.strip()]
    return " | ".join(lines[-n:])
