"""Helpers and fixtures shared by more than one test folder, named for what they hold.

Test modules import helpers from here (``from tests.support.daemons import Daemon``), never from a conftest.py
(``tests/test_support_layout.py`` enforces it). Modules that also define fixtures are registered once as
pytest plugins by ``pytest_plugins`` in ``tests/conftest.py``, so every folder sees the same fixtures without
importing them:

* :mod:`tests.support.apps`: every writer of a small Panorama application (graph, packages, code) for a test;
* :mod:`tests.support.cli`: ``panoflow ...`` in a child process, its control API and its JSON log lines;
* :mod:`tests.support.control_plane`: a real control plane on loopback with a boto3 client, SigV4 helpers,
  moto (fixtures);
* :mod:`tests.support.daemons`: real ``panoflow serve`` processes and the suite-end secrets check (fixtures);
* :mod:`tests.support.device_protocol`: a device claiming and syncing over the device protocol in raw JSON;
* :mod:`tests.support.fleet`: an HTTPS control plane in a thread that real devices join;
* :mod:`tests.support.models`: real ONNX models built at test time and their Panorama model packages;
* :mod:`tests.support.ports`: free TCP ports for the servers a test starts;
* :mod:`tests.support.rtsp`: GStreamer RTSP servers and H.265 clips (fixtures);
* :mod:`tests.support.sources_and_sinks`: driving source and sink plugins without a runtime;
* :mod:`tests.support.tempdirs`: pytest's temporary folders made passable for the sandbox uid;
* :mod:`tests.support.wheels`: the wheels aws-panorama-sample pins, fetched once into ``.cache`` (fixtures).

A folder's conftest.py keeps only fixtures used in that folder; helpers used by one folder only live in a
module of that folder (``tests/isolation/probes.py``).
"""
