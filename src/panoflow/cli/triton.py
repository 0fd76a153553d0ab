"""``panoflow export-triton-repo APP_DIR OUT/``: the application's model nodes as a Triton model repository.

Each model node's (compiled) ONNX model goes to ``OUT/<node>/1/model.onnx`` with the ``config.pbtxt`` panoflow
generates (see :mod:`panoflow.plugins.kserve.triton`). Serve ``OUT/`` with Triton (``tritonserver
--model-repository OUT``) and point the devices at it with ``--model-backend NODE=kserve+grpc://HOST:8001/NODE``;
the command prints those flags.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from panoflow.cli.common import add_app_arguments, load_app_or_report

__all__ = ["register"]


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "export-triton-repo",
        help="write the app's models as a Triton model repository (config.pbtxt + ONNX)",
        description="Write an application's model nodes as a Triton Inference Server model repository, to "
                    "serve them remotely over the KServe V2 protocol.")
    add_app_arguments(p)
    p.add_argument("out", type=Path, metavar="OUT", help="repository folder to write (created if missing)")
    p.add_argument("--max-batch", type=int, default=16, metavar="N",
                   help="max_batch_size for models with a dynamic batch axis (0: no server-side batching; "
                        "default 16)")
    p.add_argument("--host", default="HOST", help="server host shown in the printed --model-backend flags")
    p.set_defaults(handler=export_triton_repo)


def export_triton_repo(args: argparse.Namespace) -> int:
    from panoflow.core.graph import ModelSpec
    from panoflow.core.manifest.models import ModelDescriptor
    from panoflow.modelstore import ModelStore
    from panoflow.plugins.kserve.triton import export_model

    if args.max_batch < 0:
        print("panoflow: error: --max-batch must be 0 or more", file=sys.stderr)
        return 2
    app = load_app_or_report(args)
    if app is None:
        return 1
    specs = []
    for node in app.graph.nodes:
        pkg, iface = app.package_for(node), app.interface_for(node)
        if pkg is None or iface is None or iface.category != "ml_model":
            continue
        desc = pkg.descriptors.get(iface.asset)
        specs.append(ModelSpec(node.name, pkg, iface.asset,
                               desc if isinstance(desc, ModelDescriptor) else None,
                               pkg.files.get(iface.asset)))
    if not specs:
        print(f"panoflow: error: {app.graph_file} has no model nodes to export", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="panoflow-export-") as cache:
        store = ModelStore(Path(cache))
        exported = [export_model(store.prepare(spec), args.out, max_batch=args.max_batch) for spec in specs]
    for model in exported:
        batching = f"batching up to {model.max_batch_size}" if model.max_batch_size else "no batching"
        print(f"{model.folder}: config.pbtxt, 1/model.onnx ({batching})")
    print("run the app against it with:")
    for model in exported:
        print(f"  --model-backend {model.node_id}=kserve+grpc://{args.host}:8001/{model.node_id}")
    return 0
