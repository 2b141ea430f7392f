#!/usr/bin/env python3
"""Peak memory of sealing and opening a large package, in the standard CMS container and in the
old DGWSEAL1 one, measured in one run so the two can be compared as a ratio (docs/performance.md).

    PYTHONPATH=. .venv/bin/python benchmarks/bench_sealing.py          # 100 MB, RSA and P-256
    .venv/bin/python benchmarks/bench_sealing.py --size-mb 10 --json    # smaller, as JSON

Each figure comes from a fresh process, as in bench_envelopes.py: it is started through a small
launcher (Linux carries ``ru_maxrss`` across exec from the process that started it), warms up on a
small seal and open so lazy loads are not counted, runs ``gc.collect()``, resets its high-water
mark, reads ``VmRSS``, runs the operation once file → file, and reports ``ru_maxrss`` minus that
``VmRSS`` (and ``VmHWM`` as a cross-check). The package is ``os.urandom`` bytes: the cipher does
not care what it encrypts.
"""

from __future__ import annotations

import argparse
import gc
import io
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

LAUNCHER = "import subprocess, sys; sys.exit(subprocess.run(sys.argv[1:]).returncode)"
MIB = 1024 * 1024
OPERATIONS = ("seal", "open")
CONTAINERS = ("cms", "dgwseal1")


def _status_kib(name: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{name}:"):
            return int(line.split()[1])
    raise RuntimeError(f"no {name} in /proc/self/status")


def _reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
    except OSError:
        return False
    return True


def child_main(spec: dict[str, Any]) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    from envelopes import dgwseal1, sealing

    work = Path(spec["dir"])
    cert = x509.load_pem_x509_certificate((work / f"{spec['key']}.cert.pem").read_bytes())
    key = serialization.load_pem_private_key(
        (work / f"{spec['key']}.key.pem").read_bytes(), password=None
    )
    writer = sealing.seal_stream if spec["container"] == "cms" else dgwseal1.seal_stream
    # Warm-up: both code paths once on a small package.
    small = io.BytesIO()
    writer(io.BytesIO(b"warm-up"), small, cert)
    sealing.open_stream(io.BytesIO(small.getvalue()), io.BytesIO(), key)

    plain, sealed = work / "plain", work / f"sealed.{spec['container']}.{spec['key']}"
    if spec["op"] == "seal":
        source, target = plain, sealed
    else:
        source, target = sealed, work / f"opened.{spec['container']}.{spec['key']}"
    gc.collect()
    reset = _reset_peak()
    before = _status_kib("VmRSS")
    start = time.perf_counter()
    with source.open("rb") as src, target.open("wb") as dst:
        if spec["op"] == "seal":
            writer(src, dst, cert)
        else:
            sealing.open_stream(src, dst, key)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    hwm = _status_kib("VmHWM") if reset else None
    print(
        json.dumps(
            {
                **spec,
                "seconds": seconds,
                "growth_kib": peak - before,
                "hwm_growth_kib": None if hwm is None else hwm - before,
                "rss_before_kib": before,
            }
        )
    )


def run_child(spec: dict[str, Any]) -> dict[str, Any]:
    command = [
        sys.executable, "-S", "-c", LAUNCHER,
        sys.executable, str(Path(__file__).resolve()), "--child", json.dumps(spec),
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, check=False, timeout=900)
    if result.returncode != 0:
        sys.stderr.write(result.stderr)
        raise RuntimeError(f"child {spec} failed with exit code {result.returncode}")
    outcome: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return outcome


def write_keys(directory: Path) -> list[str]:
    """An RSA-2048 and an EC P-256 key with self-issued certificates (the two kinds docgw sees)."""
    for name, keygen in (
        ("rsa", ["-newkey", "rsa:2048"]),
        ("p256", ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"]),
    ):
        subprocess.run(
            ["openssl", "req", "-x509", *keygen, "-nodes", "-subj", f"/CN=bench {name}",
             "-keyout", str(directory / f"{name}.key.pem"),
             "-out", str(directory / f"{name}.cert.pem"), "-days", "1"],
            check=True, capture_output=True,
        )  # fmt: skip
    return ["rsa", "p256"]


def measure(size: int, directory: Path) -> list[dict[str, Any]]:
    """Every operation × container × key, seal before open (open reads what seal wrote)."""
    keys = write_keys(directory)
    with (directory / "plain").open("wb") as out:
        for _ in range(size // MIB):
            out.write(os.urandom(MIB))
        out.write(os.urandom(size % MIB))
    results = []
    for key in keys:
        for container in CONTAINERS:
            for op in OPERATIONS:
                spec = {"op": op, "container": container, "key": key, "dir": str(directory)}
                results.append(run_child({**spec, "size": size}))
            opened = directory / f"opened.{container}.{key}"
            if opened.read_bytes() != (directory / "plain").read_bytes():
                raise RuntimeError(f"{container}/{key}: the opened package differs")
            opened.unlink()
    return results


def table(results: list[dict[str, Any]]) -> str:
    lines = [
        "| operation, key | DGWSEAL1 (old) | CMS (new) | new / old |",
        "| --- | --- | --- | --- |",
    ]
    by = {(r["op"], r["key"], r["container"]): r for r in results}
    for key in dict.fromkeys(r["key"] for r in results):
        for op in OPERATIONS:
            old, new = by[(op, key, "dgwseal1")], by[(op, key, "cms")]
            ratio = new["growth_kib"] / max(old["growth_kib"], 1)
            lines.append(
                f"| {op} {old['size'] // MIB} MB, {key} | {old['growth_kib'] / 1024:.1f} MB "
                f"| {new['growth_kib'] / 1024:.1f} MB | {ratio:.2f} |"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=100)
    parser.add_argument("--json", action="store_true", help="print the raw results as JSON")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child_main(json.loads(args.child))
        return 0
    with tempfile.TemporaryDirectory(prefix="bench-sealing-") as directory:
        results = measure(args.size_mb * MIB, Path(directory))
    if args.json:
        print(json.dumps(results))
    else:
        load = os.getloadavg()[0]
        print(f"peak RSS growth, fresh process each (load average {load:.2f} at the end)")
        print(table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
