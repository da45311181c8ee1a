#!/usr/bin/env python3
"""Boot benchmark: seconds from QEMU start to the serial login prompt, stock Debian vs CacheOS.

Boots the two ISOs alternately (same qemu/run settings), N times each, and prints the medians,
their ratio (CacheOS / stock) and CacheOS's median seconds to GET /healthz. Used by
tests/vm/boot-benchmark; not part of CI.
"""
import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from vmtest import Failure, Serial, free_port  # noqa: E402


def one_boot(args, iso, name, workdir, want_healthz):
    sock = os.path.join(workdir, f"{name}.sock")
    port = free_port()
    env = dict(os.environ, CACHEOS_WEB_PORT=str(port), CACHEOS_ACCEL=args.accel)
    cmd = [args.run, f"--{args.firmware}", "--cd", "--serial-socket", sock, iso]
    t0 = time.monotonic()
    qemu = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    res = {}
    stop = threading.Event()

    def poll():
        while not stop.is_set():
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=3) as r:
                    if r.status == 200:
                        res["healthz"] = time.monotonic() - t0
                        return
            except Exception:
                pass
            stop.wait(0.5)

    try:
        serial = Serial(sock, os.path.join(workdir, f"{name}.console.log"), t0 + 30)
        poller = threading.Thread(target=poll, daemon=True)
        if want_healthz:
            poller.start()
        serial.expect(rb"login: ", args.timeout, what="login prompt", silence=60.0 if args.accel == "kvm" else 240.0,
                      accel=args.accel)
        res["login"] = time.monotonic() - t0
        if want_healthz:
            poller.join(max(1.0, args.timeout - res["login"]))
    finally:
        stop.set()
        os.killpg(qemu.pid, signal.SIGTERM)
        try:
            qemu.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(qemu.pid, signal.SIGKILL)
            qemu.wait()
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--stock", required=True)
    ap.add_argument("--cacheos", required=True)
    ap.add_argument("--run", required=True)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--accel", default="tcg")
    ap.add_argument("--firmware", default="bios", choices=["bios", "uefi"])
    ap.add_argument("--timeout", type=float, default=600)
    args = ap.parse_args()
    workdir = tempfile.mkdtemp(prefix="cacheos-bench-")
    stock, cache, healthz = [], [], []
    for i in range(args.runs):
        for label, iso in (("stock", args.stock), ("cacheos", args.cacheos)):
            try:
                r = one_boot(args, iso, f"{label}-{i}", workdir, label == "cacheos")
            except Failure as e:
                print(f"{label} run {i + 1}: FAILED: {e}", flush=True)
                sys.exit(1)
            (stock if label == "stock" else cache).append(r["login"])
            if "healthz" in r:
                healthz.append(r["healthz"])
            extra = f", /healthz {r['healthz']:.1f} s" if "healthz" in r else ""
            print(f"run {i + 1}/{args.runs} {label:<8} login prompt {r['login']:.1f} s{extra}", flush=True)
    ms, mc = statistics.median(stock), statistics.median(cache)
    print(f"\nmedian seconds to login prompt ({args.runs} runs each, {args.firmware}, CD, {args.accel}):")
    print(f"  stock Debian : {ms:.1f} s  (ISO {os.path.getsize(args.stock) / 2**20:.0f} MiB)")
    print(f"  CacheOS      : {mc:.1f} s  (ISO {os.path.getsize(args.cacheos) / 2**20:.0f} MiB)")
    print(f"  ratio CacheOS/stock: {mc / ms:.2f}")
    if healthz:
        print(f"  CacheOS median seconds to /healthz: {statistics.median(healthz):.1f} s")
    print(f"logs in {workdir}")


if __name__ == "__main__":
    main()
