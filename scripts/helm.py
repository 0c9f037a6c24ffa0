#!/usr/bin/env python3
"""Helm without a helm binary (PyPI helm-python-sdk: Helm's Go SDK as a library).

  scripts/helm.py lint CHART [-f values.yaml ...]
  scripts/helm.py template CHART [-f values.yaml ...] [--name N] [--namespace NS] [--out FILE]

`lint` exits 1 on any warning or error (strict). `template` prints (or writes)
every rendered manifest as one multi-document YAML stream, sorted by path,
tests excluded unless --with-tests.
"""
import argparse
import sys

import helm_python as helm


def load_values(files):
    values = {}
    for path in files or []:
        with open(path, encoding="utf-8") as f:
            merged = helm.values_from_yaml(f.read())
        values = deep_merge(values, merged)
    return values


def deep_merge(base, extra):
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["lint", "template"])
    parser.add_argument("chart")
    parser.add_argument("-f", "--values", action="append")
    parser.add_argument("--name", default="mjpeg-relay")
    parser.add_argument("--namespace", default="default")
    parser.add_argument("--out")
    parser.add_argument("--with-tests", action="store_true")
    args = parser.parse_args()
    values = load_values(args.values)

    if args.command == "lint":
        report = helm.lint(args.chart, values, strict=True, namespace=args.namespace)
        problems = [m for m in report.get("messages", []) if m.get("severity", 0) >= 2]
        for m in report.get("messages", []):
            print(f"[{m.get('severity')}] {m.get('path')}: {m.get('error')}")
        for e in report.get("errors", []) or []:
            print(f"error: {e}")
        if problems or report.get("errors"):
            print(f"lint FAILED: {args.chart} {args.values or ''}")
            return 1
        print(f"lint ok: {args.chart} {args.values or ''}")
        return 0

    chart = helm.Chart.load(args.chart)
    chart.validate_schema(chart.merge_values(values))
    manifests = chart.render(values, name=args.name, namespace=args.namespace, is_install=True)
    docs = []
    for path in sorted(manifests):
        body = manifests[path].strip()
        if not body or path.endswith("NOTES.txt"):
            continue
        if "/tests/" in path and not args.with_tests:
            continue
        docs.append(f"# Source: {path}\n{body}\n")
    text = "---\n".join(docs)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            f.write(text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
