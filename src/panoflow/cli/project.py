"""The panorama-cli commands, without Docker: ``init-project``, ``create-package``, ``add-panorama-package``,
``add-raw-model``, ``build-container``, ``import-application`` and ``package-application``.

Like panorama-cli they work on the project in the current directory (``--project-dir DIR``, or the folder as
the one positional argument, names another: ``panoflow package-application ./my_app``).
Results go to stdout, progress to stderr; errors are one line (or one block of manifest problems), exit status
1.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from panoflow.packaging.project import Project

__all__ = ["register"]


def _progress(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _project_dir(p: argparse.ArgumentParser) -> None:
    p.add_argument("project_dir_arg", nargs="?", type=Path, metavar="PROJECT_DIR",
                   help="the project folder (same as --project-dir)")
    p.add_argument("--project-dir", type=Path, metavar="DIR",
                   help="the project folder (graphs/, packages/, assets/; default: the current directory)")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "init-project",
        help="create a project: graphs/NAME/graph.json, packages/, assets/",
        description="Create a Panorama project folder with a starting graph (the HDMI output).",
    )
    p.add_argument("--name", required=True, help="the project's (and application graph's) name")
    p.add_argument("--project-dir", type=Path, metavar="DIR", help="where to create it (default: ./NAME)")
    p.set_defaults(handler=init_project_command)

    p = sub.add_parser("create-package", help="create a Container, Model or Camera package in the project",
                       description="Create packages/<account>-<NAME>-<version>/ with package.json (a "
                                   "Container also gets descriptor.json, a Dockerfile and src/app.py; a "
                                   "Model descriptor.json) and add it, with a node, to the graph.")
    p.add_argument("--type", default="Container", metavar="TYPE", help="Container (default), Model or Camera")
    p.add_argument("--name", required=True, help="the package's name")
    p.add_argument("--version", default="1.0", help="the package's version, <major>.<minor> (default: 1.0)")
    p.add_argument("--account", help="the AWS account id that owns it (default: the project's, else "
                                     "$PANOFLOW_ACCOUNT, else 123456789012)")
    p.add_argument("--node-name", help="the graph node for it (default: code_node, model_node, or the "
                                       "camera's name)")
    _project_dir(p)
    p.set_defaults(handler=create_package_command)

    p = sub.add_parser("add-panorama-package", help="add a node of Panorama's stock camera or HDMI output",
                       description="Add a node of panorama::abstract_rtsp_media_source (camera) or "
                                   "panorama::hdmi_data_sink (data_sink) to the graph.")
    p.add_argument("--type", required=True, help="camera or data_sink")
    p.add_argument("--name", required=True, help="the node's name")
    _project_dir(p)
    p.set_defaults(handler=add_panorama_package_command)

    p = sub.add_parser("add-raw-model", help="add a model archive and its descriptor to assets/ and packages",
                       description="Copy a model (.tar.gz, or an .onnx file or folder, which panoflow packs) "
                                   "and its descriptor into assets/ as <sha256>.tar.gz and <sha256>.json and "
                                   "record the asset in the packages given.")
    p.add_argument("--model-asset-name", required=True, help="the asset's name in package.json")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--model-local-path", type=Path, metavar="PATH",
                        help="the model archive, .onnx or folder")
    source.add_argument("--model-s3-uri", metavar="URI", help=argparse.SUPPRESS)
    p.add_argument("--descriptor-path", type=Path, required=True, metavar="FILE",
                   help="the model's descriptor.json (mlModelDescriptor)")
    p.add_argument("--packages-path", nargs="+", default=[], metavar="PKG",
                   help="packages to record the asset in (without: the asset JSON is printed to paste)")
    _project_dir(p)
    p.set_defaults(handler=add_raw_model_command)

    p = sub.add_parser("build-container", help="build a code package's container asset, without Docker",
                       description="Build the code asset from the package's Dockerfile "
                                   "(COPY/ADD/WORKDIR/ENV, and RUN pip install as wheels for offline "
                                   "install) into assets/<sha256>.tar.gz, with its descriptor as "
                                   "assets/<sha256>.json, and record it in package.json. Docker is used only "
                                   "when the Dockerfile needs more and an engine answers.")
    p.add_argument("--container-asset-name", required=True, help="the asset's name in package.json")
    p.add_argument("--package-path", required=True, metavar="PKG", help="the code package's folder")
    p.add_argument("--descriptor-path", type=Path, metavar="FILE",
                   help="the runtime descriptor (default: PKG/descriptor.json)")
    p.add_argument("--find-links", action="append", default=[], metavar="DIR_OR_URL",
                   help="also look for wheels here (pip --find-links); repeatable")
    p.add_argument("--index-url", metavar="URL", help="the package index pip uses (default: pip's "
                                                      "configuration)")
    p.add_argument("--extra-index-url", action="append", default=[], metavar="URL",
                   help="more indexes; repeatable")
    p.add_argument("--no-index", action="store_true", help="use --find-links only, no package index")
    p.add_argument("--platform", action="append", default=[], metavar="TAG",
                   help="fetch binary wheels for this platform (e.g. manylinux2014_aarch64) instead of this "
                        "machine's; repeatable")
    p.add_argument("--python-version", metavar="X.Y",
                   help="fetch wheels for this Python (default: the one the descriptor's entry.path names, "
                        "e.g. python3.8, else this one)")
    p.add_argument("--docker", choices=("auto", "never", "always"), default="auto",
                   help="auto (default): Docker only when the Dockerfile needs more than panoflow builds and "
                        "an engine answers; never; always (an appliance image, as panorama-cli builds)")
    p.add_argument("--local-image", action="store_true", help="with Docker: do not pull the base image")
    _project_dir(p)
    p.set_defaults(handler=build_container_command)

    p = sub.add_parser("import-application", help="move an application to your AWS account id",
                       description="Rename the account in package folders, graphs and overrides.")
    p.add_argument("--account", default=os.environ.get("PANOFLOW_ACCOUNT"), required=not os.environ.get(
        "PANOFLOW_ACCOUNT"), help="your account id (default: $PANOFLOW_ACCOUNT)")
    p.add_argument("--from-account", action="append", default=[], metavar="ID",
                   help="rename only this account (repeatable; default: every account but panorama)")
    _project_dir(p)
    p.set_defaults(handler=import_application_command)

    p = sub.add_parser("package-application", help="upload and register the packages with a control plane",
                       description="Upload the packages' assets and manifests and register their versions.")
    p.add_argument("--control-plane", metavar="URL", help="the Panorama-compatible control plane")
    p.add_argument("--packages-path", nargs="+", default=[], metavar="PKG", help="only these packages")
    p.add_argument("--dry-run", action="store_true", help="check and list what would be uploaded, upload "
                                                          "nothing")
    _project_dir(p)
    p.set_defaults(handler=package_application_command)


def _open(args: argparse.Namespace, need: tuple[str, ...] = ("graphs", "packages")) -> Project:
    from panoflow.packaging.project import PackagingError, Project

    given, flag = args.project_dir_arg, args.project_dir
    if given is not None and flag is not None and given.resolve() != flag.resolve():
        raise PackagingError(f"two project folders given: {given} and --project-dir {flag}; pass one")
    return Project.open(given if given is not None else flag, need=need)


def init_project_command(args: argparse.Namespace) -> int:
    from panoflow.packaging.scaffold import init_project

    created = init_project(args.project_dir or Path(args.name), args.name)
    print(f"created project {created.path}: {', '.join(created.files)}")
    return 0


def create_package_command(args: argparse.Namespace) -> int:
    from panoflow.packaging.scaffold import create_package

    project = _open(args)
    from panoflow.packaging.project import DEFAULT_ACCOUNT

    account = args.account or (project.accounts() or [os.environ.get("PANOFLOW_ACCOUNT") or ""])[0]
    created = create_package(project, args.type, args.name, args.version, account or DEFAULT_ACCOUNT,
                             args.node_name or "")
    if not account:
        _progress(f"using account {DEFAULT_ACCOUNT} (pass --account, or run import-application --account ID "
                  "later)")
    print(f"created package {project.display(created.path)}")
    for file in created.files:
        print(f"  {file}")
    if created.node:
        print(f"  graph node {created.node}")
    kind = args.type.lower()
    if kind == "container":
        _progress("next: write src/app.py, set descriptor.json's entry, then panoflow build-container "
                  f"--container-asset-name code_asset --package-path {project.display(created.path)}")
    elif kind == "model":
        _progress("next: set framework, input name and shape in descriptor.json, then panoflow add-raw-model "
                  f"--packages-path {project.display(created.path)} ...")
    elif kind == "camera":
        _progress("set streamUrl (username, password) in its package.json, or bind a stream when running: "
                  f"panoflow run . --camera {created.node or args.name}=URI")
    return 0


def add_panorama_package_command(args: argparse.Namespace) -> int:
    from panoflow.packaging.scaffold import add_panorama_package

    created = add_panorama_package(_open(args), args.type, args.name)
    print(f"added node {created.node} to {created.files[0]}")
    return 0


def add_raw_model_command(args: argparse.Namespace) -> int:
    from panoflow.packaging.model import add_raw_model
    from panoflow.packaging.project import PackagingError

    if args.model_s3_uri:
        raise PackagingError("panoflow does not download from S3: copy the model first (aws s3 cp URI "
                             "model.tar.gz) and pass --model-local-path model.tar.gz")
    project = _open(args)
    folders = [project.package_folder(p) for p in args.packages_path]
    result = add_raw_model(project, args.model_asset_name, args.model_local_path, args.descriptor_path,
                           folders,
                           _progress)
    if not folders:
        print("add this to the assets of the model's package.json:")
    print(json.dumps(result.asset, indent=4))
    for pkg in result.packages:
        print(f"recorded in {pkg}/package.json")
    for node in result.nodes:
        print(f"graph node {node} added")
    for name in result.removed:
        print(f"removed the replaced assets/{name}")
    return 0


def build_container_command(args: argparse.Namespace) -> int:
    from panoflow.packaging.container import BuildOptions, build_container
    from panoflow.packaging.manifests import add_to_graph
    from panoflow.packaging.wheels import PipOptions

    project = _open(args)
    folder = project.package_folder(args.package_path)
    pip = PipOptions(find_links=tuple(args.find_links), index_url=args.index_url,
                     extra_index_urls=tuple(args.extra_index_url), no_index=args.no_index,
                     platforms=tuple(args.platform), python_version=args.python_version)
    options = BuildOptions(pip=pip, docker=args.docker, pull=not args.local_image,
                           descriptor=args.descriptor_path)
    result = build_container(project, folder, args.container_asset_name, options, _progress)
    node = add_to_graph(project, folder, result.new_interface, f"{result.asset_name}_node") \
        if result.new_interface else ""
    size = f"{result.size / 1e6:.1f} MB" if result.size >= 100_000 else f"{result.size / 1e3:.1f} kB"
    how = "with Docker" if result.builder == "docker" else "without Docker"
    print(f"built code asset {result.asset_name} {how}: assets/{result.asset_uri} ({result.files} files, "
          f"{len(result.wheels)} wheels, {size})")
    print(f"  descriptor assets/{result.descriptor_uri}")
    print(f"  recorded in {project.display(folder.package_json)} (interface {result.interface})")
    if node:
        print(f"  graph node {node} added")
    for name in result.removed:
        print(f"  removed the replaced assets/{name}")
    if result.left_out:
        print(f"  {len(result.left_out)} Dockerfile step(s) left out (see above)")
    return 0


def import_application_command(args: argparse.Namespace) -> int:
    from panoflow.packaging.accounts import import_application

    result = import_application(_open(args, need=("packages",)), args.account, args.from_account)
    if not result.old_accounts:
        print(f"nothing to rename: the application already uses account {result.account}")
        return 0
    print(f"account {', '.join(result.old_accounts)} -> {result.account}")
    for old, new in result.folders:
        print(f"  packages/{old} -> packages/{new}")
    for doc in result.documents:
        print(f"  updated {doc}")
    return 0


def package_application_command(args: argparse.Namespace) -> int:
    from panoflow.packaging.publish import package_application, plan_upload

    project = _open(args, need=("graphs", "packages", "assets"))
    folders = [project.package_folder(p) for p in args.packages_path]
    if args.dry_run:
        for plan in plan_upload(project, folders):
            print(f"{plan.name} {plan.version} (patch {plan.patch_version[:12]}): "
                  f"{len(plan.files)} file(s) + package.json")
            for path in plan.files:
                print(f"  assets/{path.name}")
        return 0
    for plan in package_application(project, args.control_plane, folders):
        print(f"registered {plan.name} {plan.version} (patch {plan.patch_version})")
    return 0
