"""Prometheus metrics shared by every domain."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

REQUESTS = Counter(
    "firemode_http_requests_total",
    "HTTP requests by route template, method and status",
    ["route", "method", "status"],
)
LATENCY = Histogram(
    "firemode_http_request_duration_seconds",
    "HTTP request latency by route template and method",
    ["route", "method"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
MERGES = Counter(
    "firemode_results_merges_total",
    "Results merge requests that applied ops (mode: state, the per-path state fold)",
    ["mode"],
)
MERGED_OPS = Counter(
    "firemode_results_ops_total",
    "Result ops received, by outcome (applied or duplicate)",
    ["outcome"],
)
DEFECTS_OVERDUE = Gauge(
    "firemode_defects_overdue",
    "Open defects past their response deadline (set by each overdue sweep of the worker)",
    multiprocess_mode="mostrecent",
)
DEFECTS_OVERDUE_MARKED = Counter(
    "firemode_defects_overdue_marked_total",
    "Defects found newly overdue by the worker (each raises a defect.overdue event)",
)
WEBHOOK_DELIVERIES = Counter(
    "firemode_webhook_deliveries_total",
    "Webhook delivery attempts by outcome (delivered, retry, dead)",
    ["outcome"],
)
