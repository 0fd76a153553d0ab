"""Creating and packaging Panorama applications without Docker, the panorama-cli way.

* :mod:`.scaffold` - ``init-project``, ``create-package``, ``add-panorama-package``;
* :mod:`.model` - ``add-raw-model``;
* :mod:`.container` - ``build-container`` (:mod:`.wheels`, :mod:`.archive`, :mod:`.docker`);
* :mod:`.accounts` - ``import-application``;
* :mod:`.publish` - ``package-application`` (the seam for the control plane);
* :mod:`.codeasset`, :mod:`.pyenv`, :mod:`.interpreters` - running a code node: extraction of its built asset,
  and its own Python environment on the interpreter its descriptor asks for;
* :mod:`.project`, :mod:`.manifests` - the project folder and the manifest edits the commands share.

The command line lives in :mod:`panoflow.cli.project`; the formats are described in docs/packaging.md.
"""

from __future__ import annotations

from panoflow.packaging.project import PackageFolder, PackagingError, Project

__all__ = ["PackageFolder", "PackagingError", "Project"]
