"""Prometheus metrics of one serving app (own registry, so several apps can share a process)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info


class ServingMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.latency = Histogram(
            "thumbloop_request_latency_seconds",
            "End-to-end /v1/predict latency",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
            registry=self.registry,
        )
        self.batch_size = Histogram(
            "thumbloop_batch_size",
            "Requests per model batch",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
            registry=self.registry,
        )
        self.batch_seconds = Histogram(
            "thumbloop_batch_seconds",
            "Model time per batch",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
            registry=self.registry,
        )
        self.queue_depth = Gauge(
            "thumbloop_queue_depth", "Requests waiting for a batch", registry=self.registry
        )
        self.requests = Counter(
            "thumbloop_requests_total",
            "Predict requests by outcome",
            ["outcome"],
            registry=self.registry,
        )
        self.requests_ok = self.requests.labels("ok")  # the hot path skips the label lookup
        self.model_loads = Counter(
            "thumbloop_model_loads_total",
            "Model loads by result",
            ["result"],
            registry=self.registry,
        )
        self.model_process_restarts = Counter(
            "thumbloop_model_process_restarts_total",
            "Model processes started again after one died",
            registry=self.registry,
        )
        self.model_info = Info("thumbloop_model", "The model being served", registry=self.registry)
        self.replies = Counter(
            "thumbloop_replies_total",
            "Replies by strategy (template, generative, template:fallback-<why>)",
            ["strategy"],
            registry=self.registry,
        )
        self.generator_loads = Counter(
            "thumbloop_generator_loads_total",
            "Reply generator loads by result",
            ["result"],
            registry=self.registry,
        )
        self.generator_fallbacks = Counter(
            "thumbloop_generator_fallbacks_total",
            "Generated replies replaced by the template reply, by reason",
            ["reason"],
            registry=self.registry,
        )
        self.generation_batch_size = Histogram(
            "thumbloop_generation_batch_size",
            "Replies per generation batch",
            buckets=(1, 2, 4, 8, 16, 32, 64),
            registry=self.registry,
        )
        self.generation_seconds = Histogram(
            "thumbloop_generation_seconds",
            "Time per generation batch",
            buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 30.0),
            registry=self.registry,
        )
        self.generator_info = Info(
            "thumbloop_generator", "The reply generator being served", registry=self.registry
        )
