"""Parses OpenMetrics text from stdin with prometheus_client's strict
OpenMetrics parser and prints {"name{labels}": value, ...} as JSON."""
import json
import sys

from prometheus_client.openmetrics.parser import text_string_to_metric_families

out = {}
for family in text_string_to_metric_families(sys.stdin.read()):
    for sample in family.samples:
        labels = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()))
        out[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
print(json.dumps(out))
