"""The daemon's HTTP API described as OpenAPI 3.0.3, by hand, next to the routes (:mod:`panoflow.daemon.api`).

Request bodies are validated with jsonschema against the same schemas (:data:`DEPLOY_REQUEST`,
:data:`SIGNAL_REQUEST`), so malformed input gets a 400 with the reason, never a 500. Query parameters are
described here and parsed by :func:`panoflow.daemon.api.query_params`.
"""

from __future__ import annotations

from typing import Any

from panoflow import __version__
from panoflow.daemon.model import DESIRED_STATES, HEALTH, STATUSES

__all__ = ["DEPLOY_REQUEST", "NAME_PATTERN", "NODE_PATTERN", "SIGNAL_REQUEST", "openapi_document"]

#: application names (also directory names on disk): no dots, no slashes
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$"
NODE_PATTERN = r"^[A-Za-z0-9_-]{1,128}$"
SHA256_PATTERN = r"^[0-9a-f]{64}$"

DEPLOY_REQUEST: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["name", "archive"],
    "properties": {
        "name": {"type": "string", "pattern": NAME_PATTERN,
                 "description": ("The application's name on this device; deploying a running name "
                                 "replaces it.")},
        "archive": {"type": "string", "pattern": SHA256_PATTERN,
                    "description": "sha256 of an archive uploaded with POST /archives."},
        "description": {"type": "string", "maxLength": 255},
        "graph": {"type": "string", "minLength": 8, "maxLength": 1024, "pattern": r"^graphs/[^\x00\\]+$",
                  "description": "graph.json to deploy, relative to the application folder (default: the "
                                 "only graphs/*/graph.json)."},
        "overrides": {"type": "object", "description": "A nodeGraphOverrides document (override.json)."},
        "cameras": {
            "type": "object", "maxProperties": 64,
            "additionalProperties": {"type": "array", "minItems": 1, "maxItems": 16,
                                     "items": {"type": "string", "minLength": 1, "maxLength": 4096}},
            "description": "Camera node -> stream URIs or registered camera names.",
        },
        "params": {
            "type": "object", "maxProperties": 256,
            "additionalProperties": {"type": "string", "maxLength": 65536},
            "description": "Parameter node -> value (converted with the node's type).",
        },
        "isolation": {
            "type": "object", "additionalProperties": False,
            "properties": {
                "network": {"type": "string", "enum": ["nat", "none"]},
                "memory_mib": {"type": "integer", "minimum": 16, "maximum": 1048576},
                "cpus": {"type": "number", "minimum": 0.01, "maximum": 4096},
            },
            "description": "The code nodes' sandbox: network (nat: outbound allowed; none), memory limit in "
                           "MiB, CPU limit in cores (docs/isolation.md).",
        },
        "model_backends": {
            "type": "object", "maxProperties": 64,
            "additionalProperties": {"type": "string", "minLength": 1, "maxLength": 2048,
                                     "pattern": r"^[A-Za-z0-9_.+-]+(://[^\s@]*)?$"},
            "description": "Model node -> backend for it (onnxruntime, tensorrt, "
                           "kserve+grpc://HOST:PORT/MODEL ...); no credentials in the URI "
                           "(docs/inference.md).",
        },
        "aws": {
            "type": "object", "additionalProperties": False,
            "properties": {"role_arn": {
                "type": "string", "pattern": r"^arn:aws[a-z-]*:iam::[0-9]{12}:role/[\w+=,.@/-]{1,512}$"}},
            "description": ("The instance's runtime role, assumed with STS from the device's credentials "
                            "(docs/aws.md)."),
        },
    },
}

SIGNAL_REQUEST: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["signal"],
    "properties": {"signal": {"type": "string", "enum": ["PAUSE", "RESUME"]}},
}

_ERROR = {"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}}}

_NODE_INSTANCE = {
    "type": "object",
    "required": ["node_id", "kind", "current_status"],
    "properties": {
        "node_id": {"type": "string"},
        "kind": {"type": "string", "description": "camera, code, model, sink or parameter"},
        "current_status": {"type": "string", "enum": ["RUNNING", "PAUSED", "ERROR", "NOT_AVAILABLE"]},
    },
}

_INSTANCE = {
    "type": "object",
    "required": ["instance_id", "name", "status", "health_status", "process"],
    "properties": {
        "instance_id": {"type": "string"},
        "name": {"type": "string"},
        "description": {"type": "string"},
        "archive": {"type": "string"},
        "graph": {"type": "string", "nullable": True},
        "created": {"type": "string"},
        "last_updated": {"type": "string"},
        "status": {"type": "string", "enum": list(STATUSES)},
        "status_description": {"type": "string"},
        "health_status": {"type": "string", "enum": list(HEALTH)},
        "desired_state": {"type": "string", "enum": list(DESIRED_STATES)},
        "replaces": {"type": "string", "nullable": True},
        "cameras": {"type": "object", "additionalProperties": {"type": "array", "items": {"type": "string"}},
                    "description": "Stream URIs with credentials redacted."},
        "params": {"type": "object", "additionalProperties": {"type": "string"}},
        "host_ports": {"type": "array", "items": {"type": "integer"}},
        "signals": {"type": "object", "additionalProperties": {"type": "string"}},
        "process": {
            "type": "object",
            "properties": {
                "state": {"type": "string",
                          "enum": ["starting", "running", "backoff", "stopping", "stopped", "failed"]},
                "pid": {"type": "integer", "nullable": True},
                "restarts": {"type": "integer"},
                "last_exit_code": {"type": "integer", "nullable": True},
                "uptime_s": {"type": "number", "nullable": True},
                "next_restart_in_s": {"type": "number", "nullable": True},
            },
        },
        "nodes": {"type": "array", "items": {"$ref": "#/components/schemas/NodeInstance"}},
        "streams": {"type": "object", "additionalProperties": {
            "type": "object", "properties": {"fps": {"type": "number"}, "frames": {"type": "integer"},
                                             "drops": {"type": "integer"}}}},
        "preview_url": {"type": "string", "nullable": True,
                        "description": "The instance's own loopback preview (the daemon relays it)."},
        "errors": {"type": "array", "items": {"type": "string"}},
    },
}

_DEVICE = {
    "type": "object",
    "required": ["device_id", "version", "uptime_s", "instances", "max_instances"],
    "properties": {
        "device_id": {"type": "string"},
        "version": {"type": "string"},
        "uptime_s": {"type": "number"},
        "instances": {"type": "integer"},
        "max_instances": {"type": "integer"},
        "health_status": {"type": "string", "enum": list(HEALTH)},
        "display_owner": {"type": "string", "nullable": True},
        "state_dir": {"type": "string"},
    },
}

_ARCHIVE = {
    "type": "object",
    "required": ["sha256"],
    "properties": {"sha256": {"type": "string"}, "size": {"type": "integer"}, "entries": {"type": "integer"},
                   "stored": {"type": "boolean", "description": ("false when the same archive was already "
                                                                 "there")}},
}


def _json(schema: str) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}}}


def _resp(description: str, schema: str | None = None,
          content: dict[str, Any] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"description": description}
    if schema:
        out.update(_json(schema))
    if content:
        out["content"] = content
    return out


_E400 = _resp("Bad request (the message says why)", "Error")
_E401 = {"$ref": "#/components/responses/Unauthorized"}
_E404 = _resp("No such instance (or archive)", "Error")
_E409 = _resp("Conflict (instance not running, quota reached)", "Error")
_NO_PICTURE = _resp("No picture to show (no instance with a display runs, or none has shown a frame yet)",
                    "Error")
_REF = {"name": "ref", "in": "path", "required": True, "schema": {"type": "string", "pattern": NAME_PATTERN},
        "description": "An instance id, or an application name (its running instance, else its newest)."}
_NODE = {"name": "node", "in": "path", "required": True, "schema": {"type": "string",
                                                                    "pattern": NODE_PATTERN}}
_TAIL = {"name": "tail", "in": "query", "schema": {"type": "integer", "minimum": 0, "maximum": 100000,
                                                   "default": 100},
         "description": "How many of the last lines to return (the backup file included)."}
_FOLLOW = {"name": "follow", "in": "query", "schema": {"type": "boolean", "default": False},
           "description": "Keep the response open and send new lines as they are written."}
_TEXT = {"text/plain": {"schema": {"type": "string"}}}
_MJPEG = {"multipart/x-mixed-replace": {"schema": {"type": "string", "format": "binary"}}}
_JPEG = {"image/jpeg": {"schema": {"type": "string", "format": "binary"}}}


def _op(op_id: str, summary: str, responses: dict[str, Any], *, params: list[Any] | None = None,
        body: dict[str, Any] | None = None, public: bool = False) -> dict[str, Any]:
    op: dict[str, Any] = {"operationId": op_id, "summary": summary, "responses": dict(responses)}
    if params:
        op["parameters"] = params
    if body:
        op["requestBody"] = body
    if public:
        op["security"] = []
    else:
        op["responses"]["401"] = _E401
    return op


def openapi_document() -> dict[str, Any]:
    paths: dict[str, Any] = {
        "/healthz": {"get": _op("healthz", "Liveness (no token needed)", {
            "200": _resp("The daemon answers", content={"application/json": {"schema": {
                "type": "object", "properties": {"status": {"type": "string"}}}}})}, public=True)},
        "/openapi.json": {"get": _op("openapi", "This document", {
            "200": _resp("OpenAPI 3.0.3", content={"application/json": {"schema": {"type": "object"}}})})},
        "/device": {"get": _op("describeDevice", "The device: version, uptime, instances, HDMI owner", {
            "200": _resp("Device status", "Device")})},
        "/device/logs": {"get": _op("deviceLogs", "The device (daemon) log", {
            "200": _resp("JSON lines", content=_TEXT), "400": _E400}, params=[_TAIL, _FOLLOW])},
        "/metrics": {"get": _op("metrics", "Prometheus metrics of the device and every instance", {
            "200": _resp("Prometheus text format 0.0.4", content=_TEXT)})},
        "/display.mjpg": {"get": _op("displayStream", "The device's HDMI output (the most recently started "
                                     "instance's display) as MJPEG",
                                     {"200": _resp("MJPEG stream", content=_MJPEG)})},
        "/display.jpg": {"get": _op("displaySnapshot", "The HDMI output's latest picture", {
            "200": _resp("JPEG", content=_JPEG), "404": _NO_PICTURE})},
        "/archives": {"post": _op("uploadArchive", "Upload an application folder (tar.gz of graphs/, "
                                  "packages/, assets/); stored by its sha256", {
            "201": _resp("Stored (or already there)", "Archive"), "400": _E400,
            "413": _resp("Too large", "Error")}, body={"required": True, "content": {
                "application/gzip": {"schema": {"type": "string", "format": "binary"}},
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}})},
        "/archives/{sha256}": {"get": _op("describeArchive", "Whether an archive is stored", {
            "200": _resp("Stored", "Archive"), "404": _E404},
            params=[{"name": "sha256", "in": "path", "required": True,
                     "schema": {"type": "string", "pattern": SHA256_PATTERN}}])},
        "/instances": {
            "get": _op("listInstances", "Every application instance", {
                "200": _resp("Instances", content={"application/json": {"schema": {
                    "type": "object", "required": ["instances"], "properties": {
                        "instances": {"type": "array",
                                      "items": {"$ref": "#/components/schemas/Instance"}}}}}})}),
            "post": _op("deploy", "Deploy an application (replaces the running instance of the same name "
                        "once the new one runs); poll the instance until DEPLOYMENT_SUCCEEDED or "
                        "DEPLOYMENT_FAILED", {
                "202": _resp("Deployment accepted (DEPLOYMENT_PENDING)", "Instance"), "400": _E400,
                "404": _E404, "409": _E409, "413": _resp("The request body is larger than the API takes",
                                                         "Error")},
                body={"required": True, "content": {"application/json": {
                    "schema": {"$ref": "#/components/schemas/DeployRequest"}}}}),
        },
        "/instances/{ref}": {
            "get": _op("describeInstance", "One instance", {"200": _resp("The instance", "Instance"),
                                                             "404": _E404}, params=[_REF]),
            "delete": _op("removeInstance", "Stop and remove an instance (by id), or every instance of an "
                          "application (by name), with its storage and logs when none is left", {
                "200": _resp("Removed", content={"application/json": {"schema": {
                    "type": "object", "properties": {"removed": {
                        "type": "array", "items": {"$ref": "#/components/schemas/Instance"}}}}}}),
                "404": _E404}, params=[_REF]),
        },
        "/instances/{ref}/nodes": {"get": _op("listNodeInstances", "The instance's nodes and their status", {
            "200": _resp("Node instances", content={"application/json": {"schema": {
                "type": "object", "properties": {"instance_id": {"type": "string"}, "nodes": {
                    "type": "array", "items": {"$ref": "#/components/schemas/NodeInstance"}}}}}}),
            "404": _E404}, params=[_REF])},
        "/instances/{ref}/nodes/{node}/signal": {"post": _op("signalNode", "PAUSE or RESUME a camera node", {
            "200": _resp("The node's new status", content={"application/json": {"schema": {
                "type": "object", "properties": {"node": {"type": "string"},
                                                 "status": {"type": "string"}}}}}),
            "400": _E400, "404": _E404, "409": _E409},
            params=[_REF, _NODE], body={"required": True, "content": {"application/json": {
                "schema": {"$ref": "#/components/schemas/SignalRequest"}}}})},
        "/instances/{ref}/logs": {"get": _op("instanceLogs", "The instance's log (JSON lines), or one node's "
                                             "console_output", {
            "200": _resp("Log lines", content=_TEXT), "400": _E400, "404": _E404},
            params=[_REF, {"name": "node", "in": "query", "schema": {"type": "string",
                                                                     "pattern": NODE_PATTERN},
                           "description": "A node's console_output instead of the instance log"}, _TAIL,
                    _FOLLOW])},
        "/instances/{ref}/preview.mjpg": {"get": _op("instancePreview", "The instance's display as MJPEG", {
            "200": _resp("MJPEG stream", content=_MJPEG), "404": _E404}, params=[_REF])},
        "/instances/{ref}/preview.jpg": {"get": _op("instanceSnapshot",
                                                    "The instance's latest display picture", {
            "200": _resp("JPEG", content=_JPEG), "404": _NO_PICTURE}, params=[_REF])},
    }
    return {
        "openapi": "3.0.3",
        "info": {"title": "panoflow device API", "version": __version__,
                 "description": "The panoflow daemon (`panoflow serve`): application instances, their nodes, "
                                "logs, signals, previews and metrics. Every operation but /healthz needs "
                                "`Authorization: Bearer <token>` (the token is in the state directory's "
                                "`token`)."},
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}],
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "responses": {"Unauthorized": {"description": "Missing or wrong bearer token", **_json("Error")}},
            "schemas": {
                "Error": _ERROR,
                "Device": _DEVICE,
                "Archive": _ARCHIVE,
                "Instance": _INSTANCE,
                "NodeInstance": _NODE_INSTANCE,
                "DeployRequest": DEPLOY_REQUEST,
                "SignalRequest": SIGNAL_REQUEST,
            },
        },
    }
