"""Prometheus metrics of `g2d serve` (`GET /metrics`), in a registry of their own (one per app, so several apps in
one process, as in tests, do not collide).

Frames, faces, recognitions and dropped frames per source; the recognizer's per-stage latency (its public
`last_timings`) for sources and requests; requests by route and status; the work queue; the gallery's size.
"""
from __future__ import annotations

from typing import Any, Callable, Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    """The counters, gauges and histograms; `text()` is the exposition `GET /metrics` answers."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.frames = Counter("g2d_frames", "Frames recognised, per source", ["source"], registry=r)
        self.faces = Counter("g2d_faces", "Faces found, per source ('api' for requests)", ["source"], registry=r)
        self.recognitions = Counter("g2d_recognitions", "Faces given a name, per source ('api' for requests)",
                                    ["source"], registry=r)
        self.dropped = Counter("g2d_dropped_frames", "Frames a live source delivered that were not recognised "
                                                     "(the newest frame wins)", ["source"], registry=r)
        self.stage = Histogram("g2d_stage_seconds", "Recognizer time per stage and call", ["stage"],
                               buckets=_LATENCY_BUCKETS, registry=r)
        self.requests = Counter("g2d_http_requests", "HTTP requests by route and status", ["route", "status"],
                                registry=r)
        self.request_time = Histogram("g2d_http_request_seconds", "HTTP request time by route", ["route"],
                                      buckets=_LATENCY_BUCKETS, registry=r)
        self.rejected = Counter("g2d_queue_rejected", "Requests answered 503 because the work queue was full",
                                registry=r)
        self.webhooks = Counter("g2d_webhooks", "Webhook deliveries by outcome", ["outcome"], registry=r)
        self.queue_depth = Gauge("g2d_queue_depth", "Requests waiting for a recognizer", registry=r)
        self.identities = Gauge("g2d_gallery_identities", "People in the gallery", registry=r)
        self.templates = Gauge("g2d_gallery_templates", "Templates in the gallery", registry=r)

    def watch(self, depth: Callable[[], int], gallery: Any) -> None:
        """Read the queue depth and the gallery's size when scraped."""
        self.queue_depth.set_function(lambda: float(depth()))
        self.identities.set_function(lambda: float(len(gallery)))
        self.templates.set_function(lambda: float(gallery.num_templates))

    def recognised(self, source: str, faces: Any, timings: Mapping[str, float]) -> None:
        """Count one recognised frame's faces and record its stage times."""
        self.faces.labels(source).inc(len(faces))
        self.recognitions.labels(source).inc(sum(1 for f in faces if f.name is not None))
        for stage, seconds in timings.items():
            self.stage.labels(stage).observe(float(seconds))

    def text(self) -> bytes:
        return generate_latest(self.registry)
