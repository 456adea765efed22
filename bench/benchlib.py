"""benchlib.py: what the bench/ scripts share: their common options, starting `carlarl serve` and
finding its port, and keeping servers and load generators on different CPUs."""
import argparse
import os
import re
import shutil
import subprocess
import sys

LISTENING = re.compile(r"listening on http://[^ ]*:(\d+)/")


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def arg_parser(doc, duration, warmup):
    """A parser with the options every carlarl bench driver takes: --bin, --duration, --warmup,
    --json, --no-pin. Parse with parse_args below."""
    ap = argparse.ArgumentParser(description=doc.split("\n")[0])
    ap.add_argument("--bin", default=os.path.join(ROOT, "build", "carlarl"))
    ap.add_argument("--duration", type=float, default=duration)
    ap.add_argument("--warmup", type=float, default=warmup)
    ap.add_argument("--json")
    ap.add_argument("--no-pin", action="store_true")
    return ap


def parse_args(ap):
    """The options, with a.server_cpus and a.load_cpus (cpu_split); exits if --bin is not built."""
    a = ap.parse_args()
    if not os.access(a.bin, os.X_OK):
        sys.exit("%s: not built (cmake -S . -B build -DCMAKE_BUILD_TYPE=Release && "
                 "cmake --build build -j2)" % a.bin)
    a.server_cpus, a.load_cpus = cpu_split(a.no_pin)
    return a


def start_server(argv, env=None):
    """Starts argv (ending in `carlarl serve ... --port 0`) and returns (process, port), read from
    the server's "listening on" log line. The server must log at INFO or below."""
    p = subprocess.Popen(argv, env=env, stderr=subprocess.PIPE, text=True)
    for line in p.stderr:
        m = LISTENING.search(line)
        if m:
            return p, int(m.group(1))
    sys.exit("server did not start: %s" % " ".join(argv))


def cpu_split(no_pin):
    """(server CPUs, load CPUs) as taskset lists: the first half of this process's CPUs and the
    other half; (None, None) with no_pin, fewer than 2 CPUs, or no taskset."""
    cpus = sorted(os.sched_getaffinity(0))
    if no_pin or len(cpus) < 2 or not shutil.which("taskset"):
        return None, None
    half = len(cpus) // 2
    return ",".join(map(str, cpus[:half])), ",".join(map(str, cpus[half:]))


def pinned(cpus, argv):
    """argv under `taskset -c cpus` (argv itself when cpus is None)."""
    return (["taskset", "-c", cpus] if cpus else []) + argv
