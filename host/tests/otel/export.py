"""Export a gauge, a counter and a histogram once, with the OpenTelemetry Python SDK's
OTLP/HTTP protobuf exporter, to an edgestore `serve` (host/tests/ingest.rs runs this in the
virtual environment ./test.sh makes at target/otel-venv).

Usage: export.py ENDPOINT INSTANCE [gzip]

ENDPOINT is the full URL (http://127.0.0.1:PORT/v1/metrics); INSTANCE becomes the resource's
service.instance.id (the rows' `instance` label). Exits 0 only if every export succeeded: the
SDK logs a failed export and goes on, so the exporter is wrapped to remember its results.
"""

import sys

from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricExportResult, PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource


class CheckedExporter(OTLPMetricExporter):
    """The SDK's exporter, remembering what each export returned."""

    results = []

    def export(self, metrics_data, timeout_millis=10_000, **kwargs):
        result = super().export(metrics_data, timeout_millis=timeout_millis, **kwargs)
        CheckedExporter.results.append(result)
        return result


def main():
    endpoint, instance = sys.argv[1], sys.argv[2]
    gzip = len(sys.argv) > 3 and sys.argv[3] == "gzip"
    exporter = CheckedExporter(
        endpoint=endpoint,
        timeout=10,
        compression=Compression.Gzip if gzip else Compression.NoCompression,
    )
    # No periodic export during the run: shutdown() collects and exports exactly once.
    reader = PeriodicExportingMetricReader(exporter, export_interval_millis=3_600_000)
    resource = Resource.create(
        {"service.name": "otel-e2e", "service.instance.id": instance, "deployment": "test"}
    )
    provider = MeterProvider(metric_readers=[reader], resource=resource)
    meter = provider.get_meter("edgestore.e2e")

    gauge = meter.create_gauge("e2e.temperature", unit="Cel")
    gauge.set(21.5, {"room": "lab"})

    counter = meter.create_counter("e2e.requests", unit="{request}")
    counter.add(3, {"route": "/a"})
    counter.add(4, {"route": "/a"})

    histogram = meter.create_histogram(
        "e2e.latency", unit="s", explicit_bucket_boundaries_advisory=[1.0, 5.0, 10.0]
    )
    for value in (0.5, 3, 7, 30):
        histogram.record(value, {"route": "/a"})

    provider.shutdown()
    results = CheckedExporter.results
    if not results or any(r != MetricExportResult.SUCCESS for r in results):
        print(f"export results: {results}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
