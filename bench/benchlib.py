"""benchlib.py: what the bench/ scripts share: starting `carlarl serve` and finding its port."""
import re
import subprocess
import sys

LISTENING = re.compile(r"listening on http://[^ ]*:(\d+)/")


def start_server(argv, env=None):
    """Starts argv (ending in `carlarl serve ... --port 0`) and returns (process, port), read from
    the server's "listening on" log line. The server must log at INFO or below."""
    p = subprocess.Popen(argv, env=env, stderr=subprocess.PIPE, text=True)
    for line in p.stderr:
        m = LISTENING.search(line)
        if m:
            return p, int(m.group(1))
    sys.exit("server did not start: %s" % " ".join(argv))
