"""Built-in plugins. They use the same hooks as third-party plugins (which arrive through the ``panoflow``
entry-point group); this tuple is the one explicit list of them, in registration order."""

BUILTINS: tuple[str, ...] = (
    "panoflow.plugins.params",
    "panoflow.plugins.sources",
    "panoflow.plugins.rtsp",
    "panoflow.plugins.sinks",
    "panoflow.plugins.code_runner",
    "panoflow.plugins.native_runner",
    "panoflow.plugins.onnxruntime_backend",
    "panoflow.plugins.tensorrt_backend",
    "panoflow.plugins.kserve",
    "panoflow.plugins.http_connector",
)
