"""The device daemon (``panoflow serve``) and its client.

- :mod:`.store`: the state directory (atomic JSON, token, paths);
- :mod:`.archive`: application archives (deterministic packing, safe extraction, content-addressed);
- :mod:`.supervisor`: one instance's OS process (start, readiness, back-off restarts, stop);
- :mod:`.manager`: deploy, replace, remove, signal, restore;
- :mod:`.logfiles`: rotating log files, tail and follow;
- :mod:`.api` and :mod:`.openapi`: the HTTP API and its description; :mod:`.preview`, :mod:`.metrics`;
- :mod:`.client`: what the CLI commands (deploy, ps, logs, signal, remove) speak;
- :mod:`.server`: ``serve()``, the daemon's life.

Nothing is imported here: the client commands load only :mod:`.client`.
"""
