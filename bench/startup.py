#!/usr/bin/python3
"""startup.py: start-to-ready time and idle memory of `carlarl serve` (built-in example policy).

Starts the server N times; for each, measures from spawn to the first 200 from GET /ready, and the
resident memory (VmRSS) of the idle server 200 ms later. The yardstick, in the same run, is the
spawn-to-exit time of `carlarl version` (process start-up alone). Budgets (DESIGN.md): start to
ready <= 20 ms, idle RSS <= 10 MB.

usage: bench/startup.py [--bin build/carlarl] [-n 10] [--workers 2]
"""
import argparse
import os
import re
import socket
import statistics
import subprocess
import time

from benchlib import start_server


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin", default=os.path.join(os.path.dirname(__file__), "..", "build", "carlarl"))
    ap.add_argument("-n", type=int, default=10)
    ap.add_argument("--workers", type=int, default=2)
    a = ap.parse_args()
    ready, rss, bare = [], [], []
    for _ in range(a.n):
        t0 = time.monotonic()
        subprocess.run([a.bin, "version"], stdout=subprocess.DEVNULL, check=True)
        bare.append((time.monotonic() - t0) * 1e3)

        t0 = time.monotonic()
        p, port = start_server([a.bin, "serve", "--port", "0", "--workers", str(a.workers),
                                "--artifact-dir", "/nonexistent"])
        while True:
            try:
                s = socket.create_connection(("127.0.0.1", port), timeout=5)
                s.sendall(b"GET /ready HTTP/1.1\r\nHost: x\r\n\r\n")
                ok = b" 200 " in s.recv(1000)
                s.close()
                if ok:
                    break
            except OSError:
                pass
            if time.monotonic() - t0 > 10:
                raise SystemExit("server not ready after 10 s")
        ready.append((time.monotonic() - t0) * 1e3)
        time.sleep(0.2)
        with open("/proc/%d/status" % p.pid) as f:
            rss.append(int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1)))
        p.terminate()
        p.wait(10)
    med_ready, med_bare = statistics.median(ready), statistics.median(bare)
    print("carlarl start-up, %d runs, %d workers, medians [min-max]" % (a.n, a.workers))
    print("  spawn to /ready 200     %7.2f ms [%.2f-%.2f]" % (med_ready, min(ready), max(ready)))
    print("  yardstick: spawn to exit of 'carlarl version' %7.2f ms" % med_bare)
    print("  start-up beyond process spawn %7.2f ms (budget <= 20 ms)" % (med_ready - med_bare))
    print("  idle RSS                %7.0f KiB [%d-%d] (budget <= 10 MB)"
          % (statistics.median(rss), min(rss), max(rss)))


if __name__ == "__main__":
    main()
