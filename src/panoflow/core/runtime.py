"""One running application instance: sources -> frame bus -> code nodes -> frame bus -> sinks.

Everything runs under one anyio task group. Sources decode in worker threads and push into bounded inboxes;
each code node runs in a thread of its own (Panorama code blocks); sinks consume their inbox and do their
per-frame work in worker threads. The run ends when every code node has returned (normally when the sources
are exhausted and the last frames were consumed), when :meth:`Runtime.stop` is called (``--duration``,
SIGINT/SIGTERM), or when a node fails.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import anyio.to_thread
import structlog

from panoflow.core.bases import MediaSink, MediaSource
from panoflow.core.bus import BusClosed, Inbox, Policy
from panoflow.core.frame import Frame
from panoflow.core.graph import CodeNodeSpec, ResolvedGraph, StreamSpec
from panoflow.core.inference import InferenceSettings, ModelPool, ModelResolver, ModelSet
from panoflow.core.metrics import MetricFamily
from panoflow.core.plugins import Plugins
from panoflow.core.ports import CodeNodeIO, MediaInput, MediaOutput, ParameterInput, no_model_call
from panoflow.core.redact import redact_url, uri_scheme
from panoflow.core.stats import LatencyWindow, StreamCounter
from panoflow.exceptions import ModelError, PanoflowError, PluginError, SourceError

__all__ = ["AppIsolation", "CodeNodeContext", "RunOptions", "RunSummary", "Runtime"]

log = structlog.get_logger(__name__)

#: how long stopping waits for sinks to flush and for code to notice, before it gives up on them
STOP_GRACE_S = 1.5
#: ``--duration`` counts from when every code node is running, or from this long after the start at the latest
READY_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class AppIsolation:
    """How application code nodes are isolated (docs/isolation.md). ``sandbox`` False is
    ``--unsafe-no-sandbox`` (development only); ``network`` is ``nat`` (outbound allowed, inbound only on
    confirmed hostPorts) or ``none``; limits apply to each code node's process tree; ``uid``/``gid`` are the
    host ids its process runs as when panoflow runs as root (default: panoflow.isolation.DEFAULT_SANDBOX_UID);
    ``loopback_forwards``, ``hosts`` and ``files`` reach per-instance services (the AWS gateway) from
    inside."""

    sandbox: bool = True
    network: str = "nat"
    memory_bytes: int | None = None
    cpus: float | None = None
    uid: int | None = None
    gid: int | None = None
    #: (port inside, host 127.0.0.1 port) pairs the app reaches on its own loopback (the AWS gateway)
    loopback_forwards: tuple[tuple[int, int], ...] = ()
    # extra /etc/hosts entries inside (name -> address)
    hosts: Mapping[str, str] = field(default_factory=dict)
    files: tuple[tuple[Path, str], ...] = ()  # (host file, path inside) shown read-only (the AWS CA bundle)


@dataclass(frozen=True)
class RunOptions:
    """How to run. Source options (``realtime``, ``loop``, ``frames``) apply to every camera unless its URI
    says otherwise; ``sinks`` maps sink name -> options for the extra sinks every media output feeds
    (``record``)."""

    instance_id: str = "local"
    state_dir: Path = Path(".")
    source_options: Mapping[str, str] = field(default_factory=dict)
    policy: str | None = None
    # options for the HDMI-equivalent display sink; None -> null sink
    display: Mapping[str, Any] | None = None
    extra_sinks: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    duration: float | None = None
    environment: Mapping[str, str] = field(default_factory=dict)
    model_call: Callable[..., tuple[Any, ...]] | None = None
    storage_dir: Path | None = None  # default <state_dir>/storage
    inference: InferenceSettings = field(default_factory=InferenceSettings)
    #: turns model nodes into files a backend loads (:class:`panoflow.modelstore.ModelStore`); needed when the
    #: graph has model nodes and no ``model_call`` is given
    models: ModelResolver | None = None
    # shares batchers with other runtimes of this process that run the same model
    model_pool: ModelPool | None = None
    isolation: AppIsolation = field(default_factory=AppIsolation)
    envs_dir: Path | None = None  # code nodes' Python environments; default <state_dir>/envs
    #: more metric families for /metrics (the AWS gateway's CloudWatch metrics)
    extra_metrics: Callable[[], list[MetricFamily]] | None = None


@dataclass
class CodeNodeContext:
    """What a code runner gets: the node's spec, its ports, and where its logs and storage live."""

    spec: CodeNodeSpec
    io: CodeNodeIO
    options: RunOptions
    logs_dir: Path
    storage_dir: Path
    console: Callable[[str, str], None] | None = None  # (stream "stdout"|"stderr", text) for captured output


@dataclass
class RunSummary:
    ok: bool
    reason: str
    elapsed_s: float
    streams: dict[str, dict[str, Any]]
    sinks: dict[str, dict[str, Any]]
    errors: list[str]


class _TapInbox:
    """Wraps a sink's inbox to measure source-to-sink latency per frame without touching the sink plugin."""

    def __init__(self, inbox: Inbox[Frame], window: LatencyWindow):
        self._inbox, self._window = inbox, window

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inbox, name)

    def _measure(self, batch: dict[str, Frame]) -> dict[str, Frame]:
        now = time.perf_counter()
        for frame in batch.values():
            if frame.t_produced:
                self._window.add(now - frame.t_produced)
        return batch

    def get_batch(self, timeout: float | None = None) -> dict[str, Frame]:
        return self._measure(self._inbox.get_batch(timeout))

    async def aget_batch(self) -> dict[str, Frame]:
        return self._measure(await self._inbox.aget_batch())


class Runtime:
    """Build with a resolved graph and a plugin set, then ``await run()``."""

    def __init__(self, graph: ResolvedGraph, plugins: Plugins, options: RunOptions | None = None):
        self.graph = graph
        self.plugins = plugins
        self.options = options or RunOptions()
        self.log = log.bind(instance_id=self.options.instance_id)
        self.counters: dict[str, StreamCounter] = {}
        self.latency = LatencyWindow()
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._stop_reason = ""
        self._code_inboxes: list[Inbox[Frame]] = []
        self._sink_inboxes: dict[str, Inbox[Frame]] = {}
        self._sinks: dict[str, MediaSink] = {}
        self._sources: list[tuple[MediaSource, StreamSpec, Callable[[Frame], bool]]] = []
        self._contexts: list[CodeNodeContext] = []
        self.models: ModelSet | None = None
        self.started = time.perf_counter()
        #: starting -> running -> stopping -> stopped
        self.state = "starting"
        self._paused: set[str] = {c.node_id for c in graph.cameras.values() if c.launch == "onSignal"}
        self._node_errors: dict[str, str] = {}
        self.app_errors = 0
        self._build()
        if graph.models and self.options.model_call is None:
            self._open_models(graph.models)

    # ---------------------------------------------------------------- building
    def _source_for(self, stream: StreamSpec) -> MediaSource:
        scheme = uri_scheme(stream.uri)
        cls = self.plugins.sources.get(scheme)
        if cls is None:
            known = ", ".join(sorted(self.plugins.sources)) or "none"
            raise PluginError(
                f"no media source plugin handles {scheme}:// (camera stream {stream.stream_id}, "
                f"{redact_url(stream.uri)}); installed: {known}"
            )
        options = {k: v for k, v in self.options.source_options.items() if cls.accepts_option(k)}
        return cls(stream.uri, stream_id=stream.stream_id, options=options)

    def _policy_for(self, sources: Sequence[MediaSource]) -> Policy:
        if self.options.policy:
            return Policy.parse(self.options.policy)
        kinds = [getattr(s, "policy", None) or type(s).default_policy for s in sources]
        # lossless wins when any stream asks for it (files); live cameras alone get "latest"
        chosen = "block" if any(k.startswith("block") for k in kinds) else (kinds[0] if kinds else "latest")
        return Policy.parse(chosen)

    def _make_sink(self, name: str, node_id: str, options: Mapping[str, Any]) -> MediaSink:
        cls = self.plugins.sinks.get(name)
        if cls is None:
            raise PluginError(f"no media sink plugin named {name!r}; installed: "
                              f"{', '.join(sorted(self.plugins.sinks))}")
        return cls(node_id=node_id, options=options)

    def _open_models(self, specs: Mapping[str, Any]) -> None:
        """Load every model node with its backend plugin and hand ``call``/``acall`` to the code nodes."""
        store = self.options.models
        if store is None:
            raise ModelError(f"model node(s) {', '.join(sorted(specs))} need a model store: give the runtime "
                             "one (RunOptions(models=panoflow.modelstore.ModelStore(cache_dir)), as "
                             "`panoflow run` does)")
        files = {name: store.prepare(spec) for name, spec in specs.items()}
        self.models = ModelSet.open(files, self.plugins.model_backends, self.options.inference,
                                    self.options.model_pool)
        for ctx in self._contexts:
            ctx.io.call, ctx.io.acall = self.models.call, self.models.acall

    def _build(self) -> None:
        g = self.graph
        # sinks: the HDMI node becomes the display (or null when nothing watches it); extras fan out beside it
        targets: dict[str, list[Inbox[Frame]]] = {}
        for sink in g.sinks.values():
            chosen: list[tuple[str, Mapping[str, Any]]] = list(self.options.extra_sinks.items())
            if self.options.display is not None:
                chosen.insert(0, ("display", self.options.display))
            # Nothing watching the HDMI output: no sink at all, the output port counts and drops the frames (a
            # thread hop per frame to a null sink cost ~10% of 1080p throughput on 2 cores).
            for kind, opts in chosen:
                key = f"{sink.node_id}:{kind}"
                inbox: Inbox[Frame] = Inbox(key, Policy.parse("block"))
                self._sinks[key] = self._make_sink(kind, sink.node_id, opts)
                self._sink_inboxes[key] = inbox
                targets.setdefault(sink.node_id, []).append(inbox)
        for spec in g.code_nodes.values():
            inputs: dict[str, MediaInput | ParameterInput] = {}
            for port, cams in spec.media_inputs.items():
                streams = g.streams_of(cams)
                sources = [self._source_for(s) for s in streams]
                inbox = Inbox(f"{spec.node_id}.{port}", self._policy_for(sources),
                              [s.stream_id for s in streams])
                self._code_inboxes.append(inbox)
                owner = {s.stream_id: cam for cam in cams for s in g.cameras[cam].streams}
                for src, stream in zip(sources, streams):
                    self._sources.append(
                        (src, stream, self._emitter(inbox, stream.stream_id, owner[stream.stream_id]))
                    )
                inputs[port] = MediaInput(port, inbox, [s.stream_id for s in streams])
            for port, value in spec.parameters.items():
                inputs[port] = ParameterInput(port, value)
            outputs = {
                port: MediaOutput(port, [ib for sid in sinks for ib in targets.get(sid, [])], spec.node_id)
                for port, sinks in spec.outputs.items()
            }
            for declared in spec.interface.outputs:
                outputs.setdefault(declared.name, MediaOutput(declared.name, [], spec.node_id))
            io = CodeNodeIO(node_id=spec.node_id, inputs=inputs, outputs=outputs, stop_event=self._stop,
                            call=self.options.model_call or no_model_call)
            state = self.options.state_dir
            self._contexts.append(
                CodeNodeContext(spec, io, self.options, state / "logs" / spec.node_id,
                                self.options.storage_dir or state / "storage")
            )

    def _emitter(self, inbox: Inbox[Frame], stream_id: str, camera: str) -> Callable[[Frame], bool]:
        counter = self.counters.setdefault(stream_id, StreamCounter(stream_id))
        put, tick, stop, paused = inbox.put, counter.tick, self._stop, self._paused

        def emit(frame: Frame) -> bool:
            if stop.is_set():
                return False
            if camera in paused:  # PAUSE signal: the camera's frames go nowhere until RESUME
                return True
            tick()
            return put(stream_id, frame)

        return emit

    # ---------------------------------------------------------------- signals
    def signal(self, node_id: str, signal: str) -> str:
        """PAUSE or RESUME a camera node (thread-safe); returns its new status. KeyError for an unknown camera
        node, ValueError for another signal."""
        if node_id not in self.graph.cameras:
            raise KeyError(node_id)
        if signal == "PAUSE":
            self._paused.add(node_id)
        elif signal == "RESUME":
            self._paused.discard(node_id)
        else:
            raise ValueError(f"unknown signal {signal!r}: use PAUSE or RESUME")
        self.log.info("node_signalled", node_id=node_id, signal=signal)
        return self.node_status(node_id)

    def node_status(self, node_id: str) -> str:
        """Panorama's node CurrentStatus: RUNNING, PAUSED, ERROR or NOT_AVAILABLE."""
        if node_id in self._node_errors:
            return "ERROR"
        if self.state not in ("running", "starting"):
            return "NOT_AVAILABLE"
        if node_id in self.graph.models and self.models is not None \
                and not self.models.health().get(node_id, {}).get("up", True):
            return "ERROR"  # a remote model (KServe) that does not answer
        camera = self.graph.cameras.get(node_id)
        if camera is not None:
            if node_id in self._paused:
                return "PAUSED"
            if not camera.streams:
                return "NOT_AVAILABLE"
            if all(self.counters[s.stream_id].error for s in camera.streams if s.stream_id in self.counters):
                return "ERROR"
        return "RUNNING"

    @property
    def public_state(self) -> str:
        """The state to report: ``running`` once every code node's code is running (an application process
        takes a moment to start, and one that fails on the way is a failed start, not a running instance)."""
        if self.state == "running" and not all(c.io.ready.is_set() for c in self._contexts):
            return "starting"  # a node that fails before its code runs makes the whole start fail
        return self.state

    def nodes(self) -> dict[str, dict[str, str]]:
        g = self.graph
        kinds = {
            **{n: "parameter" for n in g.parameters}, **{n: "camera" for n in g.cameras},
            **{n: "code" for n in g.code_nodes}, **{n: "model" for n in g.models},
            **{n: "sink" for n in g.sinks},
        }
        return {n: {"kind": k, "status": self.node_status(n)} for n, k in sorted(kinds.items())}

    # ---------------------------------------------------------------- running
    def stop(self, reason: str = "stopped") -> None:
        """Ask everything to stop (thread-safe): code sees its inputs end, sources stop at their next
        frame."""
        if not self._stop.is_set():
            self._stop_reason = reason
            self._stop.set()
            for inbox in self._code_inboxes:
                inbox.close()

    async def _run_source(self, src: MediaSource, stream: StreamSpec, emit: Callable[[Frame], bool],
                          inboxes: Sequence[Inbox[Frame]]) -> None:
        slog = self.log.bind(stream_id=stream.stream_id, source=src.describe())
        slog.info("source_started")
        try:
            await src.run(emit)
            slog.info("source_ended", frames=self.counters[stream.stream_id].produced)
        except SourceError as exc:
            self.counters.setdefault(stream.stream_id, StreamCounter(stream.stream_id)).error = str(exc)
            self.errors.append(str(exc))
            slog.error("source_failed", error=str(exc))
        finally:
            for inbox in inboxes:
                inbox.end_stream(stream.stream_id)

    async def _run_sink(self, key: str, sink: MediaSink, inbox: Inbox[Frame], done: anyio.Event) -> None:
        try:
            await sink.run(_TapInbox(inbox, self.latency))  # type: ignore[arg-type]
        except BusClosed:
            pass
        except Exception as exc:
            self.errors.append(f"sink {key}: {exc}")
            self.log.exception("sink_failed", sink=key, error=str(exc))
            self.stop("sink failed")
        finally:
            done.set()

    async def _run_code(self, ctx: CodeNodeContext) -> None:
        entry = ctx.spec.runtime.entry_path if ctx.spec.runtime else ""
        runner_name = entry if entry in self.plugins.code_runners else "panoramasdk"
        runner_cls = self.plugins.code_runners.get(runner_name)
        if runner_cls is None:
            raise PluginError(f"no code runner named {runner_name!r} is installed")
        try:
            await runner_cls().run(ctx)
        except PanoflowError as exc:
            self.errors.append(str(exc))
            self._node_errors[ctx.spec.node_id] = str(exc)
            self.app_errors += 1
        finally:
            for out in ctx.io.outputs.values():
                out.close()

    async def run(self) -> RunSummary:
        """Run until done; never raises for node failures (they are in the summary)."""
        self.plugins.hook.panoflow_startup(runtime=self)
        self.started = time.perf_counter()
        self.state = "running"
        try:
            async with anyio.create_task_group() as tg:
                sink_done = {key: anyio.Event() for key in self._sinks}
                for key, sink in self._sinks.items():
                    tg.start_soon(self._run_sink, key, sink, self._sink_inboxes[key], sink_done[key])
                tg.start_soon(self._start_sources, tg)
                if self.options.duration is not None:
                    tg.start_soon(self._stop_after, self.options.duration)
                async with anyio.create_task_group() as code_tg:
                    code_tg.start_soon(self._abandon_code_after_stop, code_tg.cancel_scope)
                    async with anyio.create_task_group() as nodes_tg:
                        for ctx in self._contexts:
                            nodes_tg.start_soon(self._run_code, ctx)
                    code_tg.cancel_scope.cancel()  # every code node returned: the watchdog is not needed
                # every code node returned: let sinks drain their last frames, then stop the rest
                if not self._stop.is_set():
                    self._stop_reason = self._stop_reason or ("failed" if self.errors else "completed")
                self._stop.set()
                self.state = "stopping"
                for inbox in self._code_inboxes:
                    inbox.close()
                with anyio.move_on_after(STOP_GRACE_S + 3.0, shield=True):
                    for event in sink_done.values():
                        await event.wait()
                tg.cancel_scope.cancel()
        finally:
            for inbox in self._sink_inboxes.values():
                inbox.close()
            if self.models is not None:
                self.models.close()
            self.plugins.hook.panoflow_shutdown(runtime=self)
        return self.summary()

    async def _start_sources(self, tg: anyio.abc.TaskGroup) -> None:
        """Start the cameras once every code node is running (an application process takes a moment to start:
        a live camera's frames before that would only be dropped), or after :data:`READY_TIMEOUT_S` at the
        latest, or at once when the run is stopping."""
        await anyio.to_thread.run_sync(self._wait_ready, abandon_on_cancel=True)
        if self._stop.is_set():  # the code failed on its way up, or the run was stopped: no camera to open
            for inbox in self._code_inboxes:
                for stream in inbox.streams:
                    inbox.end_stream(stream)
            return
        for src, spec, emit in self._sources:
            owners = [ib for ib in self._code_inboxes if spec.stream_id in ib.streams]
            tg.start_soon(self._run_source, src, spec, emit, owners)

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        for ctx in self._contexts:
            while not ctx.io.ready.wait(0.05) and not self._stop.is_set() and time.monotonic() < deadline:
                pass

    async def _abandon_code_after_stop(self, scope: anyio.CancelScope) -> None:
        """Code that does not return within the grace period after a stop (it never reads its inputs, or is
        stuck) is abandoned: its thread is a daemon and goes with the process."""
        await anyio.to_thread.run_sync(self._stop.wait, abandon_on_cancel=True)
        await anyio.sleep(STOP_GRACE_S)
        self.log.warning("code_abandoned", reason=self._stop_reason, grace_s=STOP_GRACE_S)
        scope.cancel()

    async def _stop_after(self, seconds: float) -> None:
        """Stop ``seconds`` after every code node is running (an application process takes a moment to
        start)."""
        await anyio.to_thread.run_sync(self._wait_ready, abandon_on_cancel=True)
        await anyio.sleep(seconds)
        self.log.info("duration_reached", seconds=seconds)
        self.stop("duration reached")

    # ---------------------------------------------------------------- reporting
    def _source_stats(self) -> dict[str, Mapping[str, Any]]:
        """Each source's own counters (``MediaSource.stats``) by stream id."""
        out: dict[str, Mapping[str, Any]] = {}
        for src, stream, _emit in self._sources:
            stats = getattr(src, "stats", None)
            out[stream.stream_id] = stats() if callable(stats) else {}
        return out

    def status(self) -> dict[str, Any]:
        streams = {}
        sources = self._source_stats()
        for inbox in self._code_inboxes:
            st = inbox.stats.snapshot()
            for sid in inbox.streams:
                c = self.counters.get(sid)
                streams[sid] = {
                    "fps": round(c.fps(), 1) if c else 0.0,
                    "frames": c.produced if c else 0,
                    "drops": st["streams"].get(sid, {}).get("dropped", 0),
                }
                src = sources.get(sid, {})
                # video decoder plugins and the decode budget
                for key in ("decoder", "decoder_reason", "decode", "decoding", "effective_fps"):
                    if src.get(key) is not None:
                        streams[sid][key] = src[key]
        return {
            "streams": streams,
            "latency_ms_p50": round(self.latency.percentile(50) * 1e3, 2),
            "latency_ms_p95": round(self.latency.percentile(95) * 1e3, 2),
        }

    def metrics(self) -> list[MetricFamily]:
        """This instance's counters as Prometheus metric families (labels: node, stream)."""
        fps = MetricFamily("panoflow_stream_fps", "gauge", "Recent frames per second of a camera stream")
        frames = MetricFamily("panoflow_stream_frames_total", "counter", "Frames a camera stream produced")
        drops = MetricFamily("panoflow_stream_dropped_frames_total", "counter", "Frames dropped on the bus")
        for inbox in self._code_inboxes:
            st = inbox.stats.snapshot()
            for sid in inbox.streams:
                c = self.counters.get(sid)
                node = next((cam for cam, spec in self.graph.cameras.items()
                             if any(s.stream_id == sid for s in spec.streams)), sid)
                fps.add(c.fps() if c else 0.0, node=node, stream=sid)
                frames.add(c.produced if c else 0, node=node, stream=sid)
                drops.add(st["streams"].get(sid, {}).get("dropped", 0), node=node, stream=sid)
        latency = MetricFamily("panoflow_frame_latency_seconds", "gauge",
                               "Source-to-output frame latency percentiles")
        latency.add(self.latency.percentile(50), quantile="0.5").add(
            self.latency.percentile(95), quantile="0.95")
        errors = MetricFamily("panoflow_application_errors_total", "counter", "Application code failures")
        for node in self.graph.code_nodes:
            errors.add(1 if node in self._node_errors else 0, node=node)
        status = MetricFamily("panoflow_node_up", "gauge", "1 when a node is RUNNING")
        for node, info in self.nodes().items():
            status.add(1 if info["status"] == "RUNNING" else 0, node=node, kind=info["kind"])
        source_drops = MetricFamily("panoflow_source_dropped_frames_total", "counter",
                                    "Frames a camera source dropped before the bus (reason: queue_full, "
                                    "late, ...)")
        decoders = MetricFamily("panoflow_source_decoder_info", "gauge",
                                "1 for the video decoder a source uses (software, nvdec, vaapi, v4l2...)")
        budget = {  # the decode budget (panoflow.plugins.decode_budget): source stats key -> family
            "frames_decoded": MetricFamily("panoflow_source_decoded_frames_total", "counter",
                                           "Pictures a source decoded"),
            "conversions": MetricFamily("panoflow_source_conversions_total", "counter",
                                        "Decoded pictures converted to BGR (only frames a consumer took)"),
            "effective_fps": MetricFamily("panoflow_source_effective_fps", "gauge",
                                          "Pictures a source decodes per second now (keyframes: their rate)"),
        }
        for sid, counters in self._source_stats().items():
            node = next((cam for cam, spec in self.graph.cameras.items()
                         if any(s.stream_id == sid for s in spec.streams)), sid)
            for key, value in counters.items():
                if key.startswith("dropped_") and isinstance(value, (int, float)):
                    source_drops.add(value, node=node, stream=sid, reason=key.removeprefix("dropped_"))
            if isinstance(counters.get("decoder"), str):
                decoders.add(1, node=node, stream=sid, decoder=counters["decoder"])
            decoding = {"decoding": str(counters["decoding"])} if "decoding" in counters else {}
            for key, family in budget.items():
                if isinstance(counters.get(key), (int, float)):
                    labels = decoding if key == "effective_fps" else {}
                    family.add(counters[key], node=node, stream=sid, **labels)
        families = [fps, frames, drops, source_drops, decoders, *budget.values(), latency, errors, status]
        if self.options.extra_metrics is not None:
            families += self.options.extra_metrics()
        if self.models is not None:
            seconds = MetricFamily("panoflow_inference_seconds_total", "counter",
                                   "Time model nodes spent running batches")
            batches = MetricFamily("panoflow_inference_batches_total", "counter", "Batches a model node ran")
            items = MetricFamily("panoflow_inference_items_total", "counter",
                                 "Items (frames) a model node ran")
            for node, st in self.models.stats().items():
                seconds.add(st["run_seconds"], node=node)
                batches.add(st["batches"], node=node)
                items.add(st["items"], node=node)
            families += [seconds, batches, items, *self.models.metric_families()]
        return families

    def summary(self) -> RunSummary:
        elapsed = time.perf_counter() - self.started
        streams: dict[str, dict[str, Any]] = {}
        for inbox in self._code_inboxes:
            st = inbox.stats.snapshot()
            for sid in inbox.streams:
                c = self.counters[sid]
                s = st["streams"].get(sid, {})
                streams[sid] = {
                    "frames": c.produced,
                    "delivered": s.get("delivered", 0),
                    "dropped": s.get("dropped", 0),
                    "fps": round(c.produced / elapsed, 2) if elapsed > 0 else 0.0,
                    "active_fps": round(c.active_fps(), 2),
                    "error": c.error,
                }
        sinks = {key: {"frames": ib.stats.snapshot()["delivered"]} for key, ib in self._sink_inboxes.items()}
        for ctx in self._contexts:
            for port, out in ctx.io.outputs.items():
                if not out.targets and out.frames_put:
                    sinks[f"{ctx.spec.node_id}.{port}:unwatched"] = {"frames": out.frames_put}
        ok = not self.errors
        return RunSummary(ok, self._stop_reason or "completed", elapsed, streams, sinks, list(self.errors))
