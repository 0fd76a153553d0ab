"""Local CloudWatch ``PutMetricData``: the request parsers for every wire protocol SDKs use, and the metric
store.

boto3 up to 1.35 posts ``awsquery`` forms (``Action=PutMetricData&MetricData.member.1.MetricName=...``);
current ones send ``smithy-rpc-v2-cbor`` (``POST
/service/GraniteServiceVersion20100801/operation/PutMetricData``) or ``awsJson1_0`` (``X-Amz-Target:
GraniteServiceVersion20100801.PutMetricData``). All three come to the same
:class:`Datum` list. :class:`MetricStore` keeps the last value and a sample count per (namespace, metric,
unit, dimensions) and renders them as Prometheus families ``panoflow_cloudwatch_metric`` and
``panoflow_cloudwatch_metric_samples_total``, dimension names as snake_case labels.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import structlog

from panoflow.core.metrics import MetricFamily

__all__ = ["CloudWatchError", "Datum", "MetricStore", "label_name", "parse_document", "parse_query"]

log = structlog.get_logger(__name__)

_RESERVED = {"namespace", "metric", "unit"}


class CloudWatchError(ValueError):
    """A request CloudWatch would refuse: ``code`` is CloudWatch's error code
    (``InvalidParameterValue``...)."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Datum:
    """One metric datum as received: ``value`` is its last value, ``count`` how many samples it stands for."""

    namespace: str
    name: str
    unit: str
    dimensions: tuple[tuple[str, str], ...]
    value: float
    count: float


def _number(value: Any, where: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise CloudWatchError("InvalidParameterValue", f"{where}: {value!r} is not a number") from None
    if not math.isfinite(number):
        raise CloudWatchError("InvalidParameterValue", f"{where}: {value!r} is not a finite number")
    return number


def _text(value: Any, where: str, *, required: bool = True) -> str:
    if value is None or value == "":
        if required:
            raise CloudWatchError("MissingParameter", f"{where} is required")
        return ""
    if not isinstance(value, str):
        raise CloudWatchError("InvalidParameterValue", f"{where} must be a string")
    return value


def _datum(namespace: str, raw: Mapping[str, Any], where: str) -> Datum:
    if not isinstance(raw, Mapping):
        raise CloudWatchError("InvalidParameterValue", f"{where} must be a structure")
    name = _text(raw.get("MetricName"), f"{where}.MetricName")
    unit = _text(raw.get("Unit"), f"{where}.Unit", required=False) or "None"
    dims_raw = raw.get("Dimensions") or []
    if not isinstance(dims_raw, list):
        raise CloudWatchError("InvalidParameterValue", f"{where}.Dimensions must be a list")
    dims = tuple(sorted((_text(d.get("Name") if isinstance(d, Mapping) else None,
                               f"{where}.Dimensions.{i}.Name"),
                         _text(d.get("Value") if isinstance(d, Mapping) else None,
                               f"{where}.Dimensions.{i}.Value"))
                        for i, d in enumerate(dims_raw, 1)))
    if len(dims) > 30:
        raise CloudWatchError("InvalidParameterValue", f"{where}.Dimensions: at most 30")
    if raw.get("Value") is not None:
        value, count = _number(raw["Value"], f"{where}.Value"), 1.0
    elif raw.get("Values"):
        values = [_number(v, f"{where}.Values") for v in raw["Values"]]
        counts = [_number(c, f"{where}.Counts") for c in raw.get("Counts") or []]
        if counts and len(counts) != len(values):
            raise CloudWatchError("InvalidParameterValue", f"{where}: Counts and Values differ in length")
        value, count = values[-1], (sum(counts) if counts else float(len(values)))
    elif isinstance(raw.get("StatisticValues"), Mapping):
        stats = raw["StatisticValues"]
        samples = _number(stats.get("SampleCount"), f"{where}.StatisticValues.SampleCount")
        total = _number(stats.get("Sum"), f"{where}.StatisticValues.Sum")
        value, count = (total / samples if samples else total), samples
    else:
        raise CloudWatchError("MissingParameter", f"{where}: one of Value, Values or StatisticValues is "
                                                  "required")
    return Datum(namespace, name, unit, dims, value, count)


def parse_document(doc: Any) -> list[Datum]:
    """The data of a JSON or CBOR ``PutMetricData`` input (``Namespace``, ``MetricData``,
    ``EntityMetricData``)."""
    if not isinstance(doc, Mapping):
        raise CloudWatchError("InvalidParameterValue", "the PutMetricData input must be a structure")
    namespace = _text(doc.get("Namespace"), "Namespace")
    data: list[Datum] = []
    metric_data = doc.get("MetricData") or []
    if not isinstance(metric_data, list):
        raise CloudWatchError("InvalidParameterValue", "MetricData must be a list")
    data += [_datum(namespace, raw, f"MetricData.{i}") for i, raw in enumerate(metric_data, 1)]
    entities = doc.get("EntityMetricData") or []
    if not isinstance(entities, list):
        raise CloudWatchError("InvalidParameterValue", "EntityMetricData must be a list")
    for e, entity in enumerate(entities, 1):
        inner = entity.get("MetricData") if isinstance(entity, Mapping) else None
        if not isinstance(inner, list):
            raise CloudWatchError("InvalidParameterValue", f"EntityMetricData.{e}.MetricData must be a list")
        data += [_datum(namespace, raw, f"EntityMetricData.{e}.MetricData.{i}") for i,
                 raw in enumerate(inner, 1)]
    if len(data) > 1000:
        raise CloudWatchError("InvalidParameterValue", "at most 1000 metric data per PutMetricData")
    return data


_INDEX = re.compile(r"^(?:member|entry)\.(\d+)$")


def _unflatten(pairs: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """``MetricData.member.1.Dimensions.member.2.Name=x`` pairs -> nested dicts and lists (query protocol)."""
    root: dict[str, Any] = {}
    for key, value in pairs:
        parts = key.split(".")
        node: Any = root
        i = 0
        while i < len(parts):
            last = i == len(parts) - 1
            part = parts[i]
            if i + 1 < len(parts) and parts[i + 1] in ("member", "entry") and i + 2 < len(parts):
                if not parts[i + 2].isdigit():
                    raise CloudWatchError("InvalidParameterValue", f"{key}: bad list index")
                index = int(parts[i + 2])
                if not 1 <= index <= 100_000:
                    raise CloudWatchError("InvalidParameterValue", f"{key}: list index out of range")
                items = node.setdefault(part, {})
                if not isinstance(items, dict):
                    raise CloudWatchError("InvalidParameterValue", f"{key}: conflicting parameters")
                if i + 3 == len(parts):
                    items[index] = value
                    break
                node = items.setdefault(index, {})
                if not isinstance(node, dict):
                    raise CloudWatchError("InvalidParameterValue", f"{key}: conflicting parameters")
                i += 3
                continue
            if last:
                if isinstance(node.get(part), dict):
                    raise CloudWatchError("InvalidParameterValue", f"{key}: conflicting parameters")
                node[part] = value
            else:
                node = node.setdefault(part, {})
                if not isinstance(node, dict):
                    raise CloudWatchError("InvalidParameterValue", f"{key}: conflicting parameters")
            i += 1
    return _lists(root)


def _lists(node: Any) -> Any:
    """Dicts keyed by list indexes (ints) become lists in index order."""
    if not isinstance(node, dict):
        return node
    if node and all(isinstance(k, int) for k in node):
        return [_lists(node[k]) for k in sorted(node)]
    return {k: _lists(v) for k, v in node.items()}


def parse_query(pairs: Iterable[tuple[str, str]]) -> list[Datum]:
    """The data of an ``awsquery`` ``PutMetricData`` form (the caller checked ``Action``)."""
    doc = _unflatten((k, v) for k, v in pairs if k not in ("Action", "Version"))
    return parse_document(doc)


def label_name(dimension: str) -> str:
    """A dimension name as a Prometheus label: ``Application Name`` -> ``application_name``, ``DeviceId`` ->
    ``device_id``; names that clash with ``namespace``/``metric``/``unit`` get a ``dimension_`` prefix."""
    text = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", dimension)
    text = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", text)
    text = re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_").lower()
    if not text:
        return "dimension"
    if text[0].isdigit() or text in _RESERVED:
        text = "dimension_" + text
    return text


class MetricStore:
    """Last value and sample count per metric series, for one instance (or the whole device)."""

    def __init__(self, max_series: int = 10_000):
        self.max_series = max_series
        self._series: dict[tuple[str, str, str, tuple[tuple[str, str], ...]], list[float]] = {}
        self._warned_full = False

    def add(self, data: Iterable[Datum]) -> None:
        for d in data:
            key = (d.namespace, d.name, d.unit, d.dimensions)
            entry = self._series.get(key)
            if entry is None:
                if len(self._series) >= self.max_series:
                    if not self._warned_full:
                        log.warning("cloudwatch_series_limit", limit=self.max_series, metric=d.name)
                        self._warned_full = True
                    continue
                entry = self._series[key] = [0.0, 0.0]
            entry[0] = d.value
            entry[1] += d.count

    def snapshot(self) -> list[dict[str, Any]]:
        """Every series as a plain dict (Namespace, MetricName, Unit, Dimensions, Value, SampleCount): what a
        telemetry upload carries."""
        return [{"Namespace": ns, "MetricName": name, "Unit": unit,
                 "Dimensions": [{"Name": k, "Value": v} for k, v in dims], "Value": value,
                 "SampleCount": count}
                for (ns, name, unit, dims), (value, count) in sorted(self._series.items())]

    def families(self) -> list[MetricFamily]:
        gauge = MetricFamily("panoflow_cloudwatch_metric", "gauge",
                             "Last value an application put with CloudWatch PutMetricData")
        samples = MetricFamily("panoflow_cloudwatch_metric_samples_total", "counter",
                               "Samples an application put with CloudWatch PutMetricData")
        for (ns, name, unit, dims), (value, count) in sorted(self._series.items()):
            labels = {"namespace": ns, "metric": name, "unit": unit}
            for dim, dim_value in dims:
                labels.setdefault(label_name(dim), dim_value)
            gauge.add(value, **labels)
            samples.add(count, **labels)
        return [gauge, samples]
