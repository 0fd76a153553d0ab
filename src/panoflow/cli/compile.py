"""``panoflow compile-model``: a PyTorch, MXNet or TensorFlow model package to ONNX, as SageMaker Neo compiled
it for Panorama (the flags of ``add-raw-model``); and ``panoflow converter-envs``, which creates the converter
environments ahead of time (CI, or a device given a wheelhouse).

Progress goes to stderr (creating an environment and converting are slow: each step says what it does), the
result and the measured difference to stdout. The compiled model's ``verification.json`` lies next to it
(``MODEL.verification.json``).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from panoflow.compiler import CompileOptions

__all__ = ["register"]


def _progress(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _pip_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--converters-dir", type=Path, metavar="DIR",
                   help="where the converter environments live (default: $PANOFLOW_CACHE/converters, else "
                        "~/.cache/panoflow/converters)")
    p.add_argument("--find-links", action="append", default=[], metavar="DIR_OR_URL",
                   help="also look for the converters' wheels here (pip --find-links; a wheelhouse for "
                        "offline devices); repeatable (default: $PANOFLOW_CONVERTER_FIND_LINKS, "
                        "colon-separated)")
    p.add_argument("--no-index", action="store_true",
                   help="install the converters from --find-links only (default: "
                        "$PANOFLOW_CONVERTER_NO_INDEX=1)")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("compile-model", help="compile a PyTorch, MXNet or TensorFlow model package to ONNX",
                       description="Convert the model archive (as add-raw-model takes it) to ONNX in an "
                                   "isolated converter environment, check it against the source framework on "
                                   "a fixed input and write it with its measured difference "
                                   "(MODEL.verification.json).")
    p.add_argument("--model-local-path", type=Path, required=True, metavar="ARCHIVE",
                   help="the model archive (.tar.gz): a TorchScript .pth, an MXNet symbol + params, or a "
                        "TensorFlow SavedModel, frozen .pb or Keras .h5")
    p.add_argument("--descriptor-path", type=Path, required=True, metavar="DESCRIPTOR.json",
                   help="the model's descriptor.json (mlModelDescriptor: framework, inputs)")
    p.add_argument("--output", type=Path, required=True, metavar="MODEL.onnx",
                   help="where to write the ONNX model")
    p.add_argument("--tolerance", type=float, default=1e-3,
                   help="the largest relative difference from the source framework accepted (default: 1e-3)")
    p.add_argument("--cache-dir", type=Path, metavar="DIR",
                   help="where extracted archives and compiled models are kept (default: "
                        "$PANOFLOW_CACHE/models)")
    _pip_flags(p)
    p.set_defaults(handler=compile_model_command)

    p = sub.add_parser("converter-envs", help="create the model converter environments ahead of time",
                       description="Create (or check) the isolated environments compile-model and model "
                                   "nodes use to convert PYTORCH, MXNET and TENSORFLOW models.")
    p.add_argument("frameworks", nargs="*", metavar="FRAMEWORK",
                   help="PYTORCH, MXNET and/or TENSORFLOW (default: all three)")
    _pip_flags(p)
    p.set_defaults(handler=converter_envs_command)


def _options(args: argparse.Namespace, tolerance: float = 1e-3) -> CompileOptions:
    from panoflow.compiler import CompileOptions, PipSource, default_cache_dir

    env = PipSource.from_environment()
    pip = PipSource(tuple(args.find_links) or env.find_links, args.no_index or env.no_index)
    converters = args.converters_dir or default_cache_dir() / "converters"
    return CompileOptions(converters_dir=converters, pip=pip, tolerance=tolerance)


def compile_model_command(args: argparse.Namespace) -> int:
    from panoflow.compiler import ModelCompiler, default_cache_dir
    from panoflow.compiler.archives import compile_archive
    from panoflow.exceptions import ModelError

    if not args.tolerance > 0:
        raise ModelError(f"--tolerance {args.tolerance}: give a positive relative difference, e.g. 1e-3")
    compiler = ModelCompiler(_options(args, args.tolerance), progress=_progress)
    cache = args.cache_dir or default_cache_dir() / "models"
    compiled = compile_archive(args.model_local_path, args.descriptor_path, compiler, cache)
    out: Path = args.output
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(compiled.path, out)
        report = out.with_name(f"{out.stem}.verification.json")
        shutil.copyfile(compiled.report_path, report)
    except OSError as exc:
        raise ModelError(f"--output {out}: {exc.strerror or exc}") from None
    r = compiled.report
    if compiled.cached:
        _progress(f"compiled before (cache {compiled.path.parent}); nothing converted")
    print(f"compiled {r['framework']} model {args.model_local_path} -> {out}")
    print(f"  max abs diff {r['max_abs_diff']:.3g}, max rel diff {r['max_rel_diff']:.3g} against "
          f"{r['framework']} on a fixed input (tolerance {r['tolerance']:g} relative)")
    for o in r["outputs"]:
        print(f"  output {o['name']} {o['shape']} {o['dtype']}: abs {o['max_abs_diff']:.3g}, "
              f"rel {o['max_rel_diff']:.3g}")
    print(f"  inputs {json.dumps(r['inputs'])}, batch axis {'dynamic' if r['dynamic_batch'] else 'fixed'}")
    for note in r.get("notes") or []:
        print(f"  note: {note}")
    print(f"  verification {report}")
    return 0


def converter_envs_command(args: argparse.Namespace) -> int:
    from panoflow.compiler import ENVIRONMENTS
    from panoflow.compiler.environments import ensure_environment
    from panoflow.exceptions import ModelError

    wanted = [f.upper() for f in args.frameworks] or list(ENVIRONMENTS)
    unknown = [f for f in wanted if f not in ENVIRONMENTS]
    if unknown:
        raise ModelError(f"no converter for {', '.join(unknown)}; choose from {', '.join(ENVIRONMENTS)}")
    options = _options(args)
    for fw in wanted:
        env = ensure_environment(ENVIRONMENTS[fw], options.converters_dir, options.pip, _progress)
        print(f"{fw}: {env} ({' '.join(ENVIRONMENTS[fw].requirements)})")
    return 0
