"""Prometheus metrics of a running server, read when scraped.

Nothing is counted for Prometheus on the data path: the stages and the
server already keep counters and histograms (updated per batch), and
:class:`ServerCollector` turns a snapshot of them into metric families each
time ``/metrics`` is scraped, with ``prometheus_client``'s exposition. A
scrape costs a pass over the stages; serving costs nothing extra.

Every family is documented in docs/operations.md.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from prometheus_client import CollectorRegistry
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from arrowloop.errors import SupervisorError
from arrowloop.runtime import HistogramSnapshot, StageStatistics
from arrowloop.server._serve import Server

__all__ = ["ServerCollector", "metrics_registry"]

_PORTS = ("data", "control")


def _buckets(h: HistogramSnapshot) -> list[tuple[str, float]]:
    return [("+Inf" if b == float("inf") else repr(b), float(n)) for b, n in h.cumulative()]


def _histogram(
    name: str, doc: str, stages: Iterable[tuple[str, HistogramSnapshot | None]]
) -> HistogramMetricFamily:
    family = HistogramMetricFamily(name, doc, labels=["stage"])
    for stage, h in stages:
        if h is not None:
            family.add_metric([stage], _buckets(h), h.sum)
    return family


class ServerCollector(Collector):
    """The metric families of one server (register it with a registry)."""

    def __init__(self, server: Server) -> None:
        self.server = server

    def _stages(self) -> list[StageStatistics]:
        try:
            return self.server.supervisor.pipeline.statistics()
        except SupervisorError:  # no stage children (a supervisor of supervisors)
            return []

    def collect(self) -> Iterator[Metric]:
        """One snapshot of the stages and the server, as metric families."""
        yield from self._stage_metrics(self._stages())
        yield from self._server_metrics()

    def _stage_metrics(self, stages: list[StageStatistics]) -> Iterator[Metric]:
        def per_stage(
            family: CounterMetricFamily | GaugeMetricFamily, values: list[float]
        ) -> Metric:
            for s, v in zip(stages, values, strict=True):
                family.add_metric([s.name], v)
            return family

        labels = ["stage"]
        yield per_stage(
            CounterMetricFamily(
                "arrowloop_stage_items", "Items a stage has stepped.", labels=labels
            ),
            [s.processed for s in stages],
        )
        yield per_stage(
            CounterMetricFamily(
                "arrowloop_stage_failures", "Items whose step raised (dead letters).", labels=labels
            ),
            [s.failed for s in stages],
        )
        yield per_stage(
            GaugeMetricFamily(
                "arrowloop_stage_queue_items", "Items waiting in a stage's channel.", labels=labels
            ),
            [s.queue.items for s in stages],
        )
        yield per_stage(
            GaugeMetricFamily(
                "arrowloop_stage_queue_capacity",
                "Most items a stage's channel holds.",
                labels=labels,
            ),
            [s.queue.capacity for s in stages],
        )
        yield per_stage(
            CounterMetricFamily(
                "arrowloop_stage_upgrades", "Code changes applied to a stage.", labels=labels
            ),
            [s.upgrades for s in stages],
        )
        yield per_stage(
            CounterMetricFamily(
                "arrowloop_stage_restarts", "Restarts (or resets) of a stage.", labels=labels
            ),
            [s.restarts for s in stages],
        )
        yield _histogram(
            "arrowloop_stage_step_seconds",
            "Seconds per step (the mean of each wake-up's steps).",
            [(s.name, s.step_seconds) for s in stages],
        )
        yield _histogram(
            "arrowloop_stage_batch_items",
            "Items a stage stepped per wake-up.",
            [(s.name, s.batch_sizes) for s in stages],
        )
        yield _histogram(
            "arrowloop_stage_upgrade_pause_seconds",
            "The pause an upgrade caused a stage.",
            [(s.name, s.upgrade_pauses) for s in stages],
        )
        info = InfoMetricFamily(
            "arrowloop_stage_version", "The machine a stage runs.", labels=["stage"]
        )
        for s in stages:
            info.add_metric(
                [s.name],
                {
                    "version": s.version,
                    "input_type": s.input_type[:200],
                    "output_type": s.output_type[:200],
                    "state_type": s.state_type[:200],
                },
            )
        yield info

    def _server_metrics(self) -> Iterator[Metric]:
        server = self.server
        stats = server.data_stats
        port = ["port"]
        conns = GaugeMetricFamily(
            "arrowloop_server_connections", "Connections open, per port.", labels=port
        )
        accepted = CounterMetricFamily(
            "arrowloop_server_connections_accepted", "Connections served, per port.", labels=port
        )
        cap = GaugeMetricFamily(
            "arrowloop_server_connection_limit", "Most connections served at once.", labels=port
        )
        per_address = CounterMetricFamily(
            "arrowloop_server_refused_per_address",
            "Connections refused for the per-address limit.",
            labels=port,
        )
        for p in _PORTS:
            conns.add_metric([p], server.connections[p])
            accepted.add_metric([p], server.accepted[p])
            cap.add_metric([p], server.limits[p])
            per_address.add_metric([p], server.per_address[p].refused)
        yield from (conns, accepted, cap, per_address)
        yield CounterMetricFamily(
            "arrowloop_server_requests", "Data requests read.", value=stats.requests
        )
        replies = CounterMetricFamily(
            "arrowloop_server_replies", "Data replies written, by outcome.", labels=["outcome"]
        )
        errors = sum(stats.errors.values())
        replies.add_metric(["ok"], max(0, stats.replies - errors))
        for kind, n in sorted(stats.errors.items()):
            replies.add_metric([kind], n)
        yield replies
        h = stats.latency.snapshot()
        yield HistogramMetricFamily(
            "arrowloop_server_request_latency_seconds",
            "Seconds from reading a batch of data requests to writing its first reply.",
            buckets=_buckets(h),
            sum_value=h.sum,
        )
        refused = CounterMetricFamily(
            "arrowloop_server_control_errors",
            "Control requests refused, by error type.",
            labels=["type"],
        )
        for kind, n in sorted(server.refusals.items()):
            refused.add_metric([kind], n)
        yield refused
        yield CounterMetricFamily(
            "arrowloop_server_auth_failures", "Wrong control tokens.", value=server.auth.failures
        )
        yield GaugeMetricFamily(
            "arrowloop_server_buffered_bytes",
            "Unprocessed input held by all connections.",
            value=server.buffers.total,
        )
        yield CounterMetricFamily(
            "arrowloop_server_evicted_connections",
            "Connections closed for holding the most input over the buffer budget.",
            value=server.buffers.evicted,
        )
        yield CounterMetricFamily(
            "arrowloop_server_accept_failures",
            "accept() calls that failed for want of descriptors.",
            value=server.accept_failures,
        )


def metrics_registry(server: Server) -> CollectorRegistry:
    """A registry holding ``server``'s metrics only (no process or GC
    collectors: a server embedded in another process leaves those to it)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ServerCollector(server))
    return registry
