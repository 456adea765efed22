#!/usr/bin/env bash
# compare.sh: carlarl against a Python rebuild of the original service's /predict path, side by
# side on loopback (docs/benchmarking.md explains every figure).
#
# Starts `carlarl serve` (built-in example policy) and bench/python-reference/server.py (FastAPI +
# uvicorn + torch from Debian, the same weights, one uvicorn worker), checks that both return the
# same actions (abort when they differ by more than --tolerance), then drives each with the same
# `carlarl bench` settings (closed loop) at each concurrency and prints one markdown table:
# req/s, p50, p99, server CPU us per request, server RSS, and carlarl/Python ratio rows. Then a
# cross-check: wrk at one concurrency against each server, and the agreement between carlarl
# bench's and wrk's req/s (PASS within 15%). When the carlarl binary has no `bench` command (or
# with --wrk-only) wrk drives the main table too, and the cross-check becomes wrk against a
# second wrk run.
#
# usage: bench/compare.sh [options]
#   --duration S           measured seconds per run (default 10)
#   --warmup S             warm-up seconds before each run, excluded (default 2)
#   --concurrency "LIST"   closed-loop concurrencies (default "1 32 256")
#   --check-concurrency N  the wrk cross-check's concurrency (default 32)
#   --threads T            load-generator threads (default 1; wrk uses min(T, connections))
#   --batch B              observations per request (default 1)
#   --sensors K            sensors per observation (default 3: the example model takes exactly 3)
#   --wrk-only             use wrk for the main table even when `carlarl bench` exists
#   --bin PATH             the carlarl binary (default build/carlarl)
#   --python PATH          the interpreter for the reference (default /usr/bin/python3)
#   --server-cpus LIST     taskset both servers to LIST (default: the first half of the CPUs)
#   --load-cpus LIST       taskset the load generators to LIST (default: the other half)
#   --no-pin               pin nothing: servers and load generators share every CPU
#   --carlarl-opt ARG      one more argument for `carlarl serve` (repeatable)
#   --py-opt ARG           one more argument for server.py, e.g. --cache (repeatable)
#   --tolerance X          largest allowed action difference in the pre-flight (default 1e-5)
#   --keep DIR             keep the raw outputs (JSON, wrk text, server logs) in DIR
# Exit: 0 done, 1 a carlarl bench/wrk cross-check outside 15%, 2 usage or a missing tool, 3 a server did not start
# or the two servers disagree. Loopback only; every run stops by itself; everything this script
# started is stopped on exit.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)

DURATION=10
WARMUP=2
CONCURRENCY="1 32 256"
CHECK_C=32
THREADS=1
BATCH=1
SENSORS=3
WRK_ONLY=0
BIN="$ROOT/build/carlarl"
PY=/usr/bin/python3
SERVER_CPUS=""
LOAD_CPUS=""
NO_PIN=0
CARLARL_OPTS=()
PY_OPTS=()
TOLERANCE=1e-5
KEEP=""
AGREE_PCT=15

die() {
    echo "compare.sh: $*" >&2
    exit 2
}
usage() {
    sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'
}
need_arg() { [ "$#" -ge 2 ] || die "$1 needs a value (see --help)"; }
is_number() { [[ $1 =~ ^[0-9]+([.][0-9]+)?$ ]]; }

while [ "$#" -gt 0 ]; do
    case "$1" in
    --duration) need_arg "$@"; DURATION=$2; shift 2 ;;
    --warmup) need_arg "$@"; WARMUP=$2; shift 2 ;;
    --concurrency) need_arg "$@"; CONCURRENCY=$2; shift 2 ;;
    --check-concurrency) need_arg "$@"; CHECK_C=$2; shift 2 ;;
    --threads) need_arg "$@"; THREADS=$2; shift 2 ;;
    --batch) need_arg "$@"; BATCH=$2; shift 2 ;;
    --sensors) need_arg "$@"; SENSORS=$2; shift 2 ;;
    --wrk-only) WRK_ONLY=1; shift ;;
    --bin) need_arg "$@"; BIN=$2; shift 2 ;;
    --python) need_arg "$@"; PY=$2; shift 2 ;;
    --server-cpus) need_arg "$@"; SERVER_CPUS=$2; shift 2 ;;
    --no-pin) NO_PIN=1; shift ;;
    --load-cpus) need_arg "$@"; LOAD_CPUS=$2; shift 2 ;;
    --carlarl-opt) need_arg "$@"; CARLARL_OPTS+=("$2"); shift 2 ;;
    --py-opt) need_arg "$@"; PY_OPTS+=("$2"); shift 2 ;;
    --tolerance) need_arg "$@"; TOLERANCE=$2; shift 2 ;;
    --keep) need_arg "$@"; KEEP=$2; shift 2 ;;
    -h | --help) usage; exit 0 ;;
    *) die "unknown option $1 (see --help)" ;;
    esac
done

for v in "$DURATION" "$WARMUP"; do is_number "$v" || die "not a number of seconds: $v"; done
for v in $CONCURRENCY "$CHECK_C" "$THREADS" "$BATCH" "$SENSORS"; do
    [[ $v =~ ^[1-9][0-9]*$ ]] || die "not a positive integer: $v"
done
[ -n "${CONCURRENCY// /}" ] || die "--concurrency needs at least one value"
[ "${DURATION%.*}" -ge 1 ] || die "--duration must be at least 1 s"
[ "$SENSORS" -eq 3 ] || echo "compare.sh: note: the example model takes exactly 3 sensors;" \
    "with --sensors $SENSORS both servers answer 500" >&2

# ---- tools --------------------------------------------------------------------------------------

[ -x "$BIN" ] || die "no carlarl binary at $BIN (build it: cmake -S . -B build && cmake --build build -j2, or pass --bin)"
[ -x "$PY" ] || die "no Python interpreter at $PY (pass --python)"
for tool in wrk curl; do
    command -v "$tool" >/dev/null 2>&1 || die "$tool is missing (tools/install-deps.sh --bench installs it)"
done
# By default the servers and the load generator get separate halves of the CPUs: on a shared
# pair, the lighter client leaves the server more CPU, and the two tools' req/s then measure the
# clients as much as the server (seen: wrk 26% below carlarl bench unpinned, 7% pinned).
ncpu=$(nproc)
if [ "$NO_PIN" = 0 ] && [ -z "$SERVER_CPUS$LOAD_CPUS" ] && [ "$ncpu" -ge 2 ]; then
    half=$((ncpu / 2))
    SERVER_CPUS="0-$((half - 1))"
    LOAD_CPUS="$half-$((ncpu - 1))"
fi
if [ -n "$SERVER_CPUS$LOAD_CPUS" ]; then
    command -v taskset >/dev/null 2>&1 || die "taskset is missing (Debian package util-linux)"
fi
if ! missing=$("$PY" - <<'EOF' 2>&1
import importlib
miss = []
for m in ("fastapi", "uvicorn", "pydantic", "torch", "numpy"):
    try:
        importlib.import_module(m)
    except Exception:
        miss.append(m)
print(" ".join(miss))
raise SystemExit(1 if miss else 0)
EOF
); then
    die "the Python reference needs these modules under $PY: $missing" \
        "(tools/install-deps.sh --bench installs python3-fastapi python3-uvicorn python3-torch ...)"
fi

# Does this carlarl have `bench`? Any answer that is not "unknown command" means yes.
USE_BENCH=1
if [ "$WRK_ONLY" -eq 1 ]; then
    USE_BENCH=0
elif help_out=$("$BIN" bench --help 2>&1); then
    :
elif grep -q "unknown command" <<<"$help_out"; then
    USE_BENCH=0
    echo "compare.sh: $BIN has no 'bench' command; wrk drives the main table (as with --wrk-only)" >&2
fi

# ---- scratch space and cleanup --------------------------------------------------------------------

TMP=$(mktemp -d "${TMPDIR:-/tmp}/carlarl-compare.XXXXXX")
PIDS=()
# shellcheck disable=SC2317 # (called by the EXIT trap)
cleanup() {
    local rc=$? pid
    trap - EXIT INT TERM
    for pid in "${PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    if [ -n "$KEEP" ]; then
        mkdir -p "$KEEP" && cp -r "$TMP"/. "$KEEP"/ && echo "compare.sh: raw outputs in $KEEP" >&2
    fi
    rm -rf "$TMP"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

on_cpus() { # on_cpus LIST cmd...: taskset when LIST is set
    local cpus=$1
    shift
    if [ -n "$cpus" ]; then taskset -c "$cpus" "$@"; else "$@"; fi
}

# ---- the two servers ------------------------------------------------------------------------------

wait_ready() { # wait_ready NAME PID URL LOG SECONDS
    local name=$1 pid=$2 url=$3 log=$4 limit=$5 i
    for ((i = 0; i < limit * 10; i++)); do
        kill -0 "$pid" 2>/dev/null || { echo "compare.sh: $name exited during start-up:" >&2; tail -n 20 "$log" >&2; exit 3; }
        if curl -fsS -o /dev/null --max-time 2 "$url/healthz" 2>/dev/null; then return 0; fi
        sleep 0.1
    done
    echo "compare.sh: $name did not answer $url/healthz within $limit s:" >&2
    tail -n 20 "$log" >&2
    exit 3
}
wait_port() { # wait_port NAME PID LOG SECONDS CMD...: polls CMD (prints the port) until it does
    local name=$1 pid=$2 log=$3 limit=$4 i port
    shift 4
    for ((i = 0; i < limit * 10; i++)); do
        kill -0 "$pid" 2>/dev/null || { echo "compare.sh: $name exited during start-up:" >&2; tail -n 20 "$log" >&2; exit 3; }
        if port=$("$@" 2>/dev/null) && [ -n "$port" ]; then
            echo "$port"
            return 0
        fi
        sleep 0.1
    done
    echo "compare.sh: $name did not report its port within $limit s:" >&2
    tail -n 20 "$log" >&2
    exit 3
}

mkdir -p "$TMP/no-artifacts-here"
# An empty artifact root: carlarl serves its built-in example policy whatever the cwd holds.
# taskset (when asked) execs the server, so $! is the server's own PID, for kill and /proc.
SERVER_PREFIX=()
[ -z "$SERVER_CPUS" ] || SERVER_PREFIX=(taskset -c "$SERVER_CPUS")
"${SERVER_PREFIX[@]}" "$BIN" serve --host 127.0.0.1 --port 0 \
    --artifact-dir "$TMP/no-artifacts-here" "${CARLARL_OPTS[@]}" 2>"$TMP/carlarl.log" >&2 &
C_PID=$!
PIDS+=("$C_PID")
"${SERVER_PREFIX[@]}" "$PY" "$HERE/python-reference/server.py" --host 127.0.0.1 --port 0 \
    --port-file "$TMP/python.port" "${PY_OPTS[@]}" >"$TMP/python.out" 2>"$TMP/python.log" &
P_PID=$!
PIDS+=("$P_PID")

C_PORT=$(wait_port carlarl "$C_PID" "$TMP/carlarl.log" 30 \
    sed -n 's|.*listening on http://[^ ]*:\([0-9][0-9]*\)/.*|\1|p' "$TMP/carlarl.log")
P_PORT=$(wait_port "the Python reference" "$P_PID" "$TMP/python.log" 120 cat "$TMP/python.port")
C_URL="http://127.0.0.1:$C_PORT"
P_URL="http://127.0.0.1:$P_PORT"
wait_ready carlarl "$C_PID" "$C_URL" "$TMP/carlarl.log" 30
wait_ready "the Python reference" "$P_PID" "$P_URL" "$TMP/python.log" 60

# ---- pre-flight: the same function? ----------------------------------------------------------------

if ! "$PY" "$HERE/python-reference/preflight.py" "$C_URL" "$P_URL" --tolerance "$TOLERANCE" \
    --names carlarl,Python >"$TMP/preflight.txt" 2>&1; then
    cat "$TMP/preflight.txt" >&2
    echo "compare.sh: the two servers do not compute the same actions; not benchmarking" >&2
    exit 3
fi

# ---- the request body and the wrk script ---------------------------------------------------------

BODY=$("$PY" - "$BATCH" "$SENSORS" <<'EOF'
import json, sys
b, k = int(sys.argv[1]), int(sys.argv[2])
obs = [{"speed": 25.5 + (i % 8), "steering": 0.1,
        "sensors": [round(0.8 - 0.1 * ((i + j) % 5), 1) for j in range(k)]} for i in range(b)]
print(json.dumps({"observations": obs, "deterministic": True}, separators=(",", ":")))
EOF
)
printf '%s' "$BODY" >"$TMP/body.json"
{
    echo 'wrk.method = "POST"'
    echo 'wrk.headers["Content-Type"] = "application/json"'
    printf 'wrk.body = [==[%s]==]\n' "$BODY"
} >"$TMP/post.lua"
for url in "$C_URL" "$P_URL"; do
    code=$(curl -s -o "$TMP/probe.json" -w '%{http_code}' -X POST -H 'Content-Type: application/json' \
        --data-binary @"$TMP/body.json" "$url/predict")
    [ "$code" = 200 ] || { echo "compare.sh: POST $url/predict with the benchmark body got $code: $(head -c 300 "$TMP/probe.json")" >&2; exit 3; }
done

# ---- measuring ------------------------------------------------------------------------------------

cpu_ticks() { # utime + stime of a process, all its threads (fields 14 and 15 of /proc/PID/stat)
    local stat
    stat=$(<"/proc/$1/stat")
    stat=${stat##*) }
    # shellcheck disable=SC2086
    set -- $stat
    echo $((${12} + ${13}))
}
rss_mb() { awk '/^VmRSS:/ { printf "%.1f", $2 / 1024 }' "/proc/$1/status"; }
CLK_TCK=$(getconf CLK_TCK)

# Every run_* prints one line: rps p50_ms p99_ms cpu_us_per_req rss_mb errors requests
run_wrk() { # run_wrk NAME URL PID CONNS SECONDS WARMUP TAG
    local name=$1 url=$2 pid=$3 conns=$4 secs=$5 warm=$6 tag=$7 t c0 c1 out
    t=$((THREADS < conns ? THREADS : conns))
    if [ "$warm" != 0 ]; then
        on_cpus "$LOAD_CPUS" wrk -t"$t" -c"$conns" -d"${warm}s" --timeout 10s -s "$TMP/post.lua" \
            "$url/predict" >/dev/null
    fi
    out="$TMP/wrk-$name-$conns-$tag.txt"
    c0=$(cpu_ticks "$pid")
    on_cpus "$LOAD_CPUS" wrk -t"$t" -c"$conns" -d"${secs}s" --timeout 10s --latency \
        -s "$TMP/post.lua" "$url/predict" >"$out"
    c1=$(cpu_ticks "$pid")
    awk -v c0="$c0" -v c1="$c1" -v hz="$CLK_TCK" -v rss="$(rss_mb "$pid")" '
        function ms(s,  v) {
            v = s + 0
            if (s ~ /us$/) return v / 1000
            if (s ~ /ms$/) return v
            if (s ~ /m$/) return v * 60000
            if (s ~ /s$/) return v * 1000
            return v
        }
        / requests in / { n = $1 }
        /Requests\/sec:/ { rps = $2 }
        /^ *50% / { p50 = ms($2) }
        /^ *99% / { p99 = ms($2) }
        /Non-2xx or 3xx responses:/ { err += $NF }
        /Socket errors:/ { gsub(/,/, ""); err += $4 + $6 + $8 + $10 }
        END {
            if (n == "" || rps == "") exit 1
            printf "%s %.3f %.3f %.1f %s %d %d\n", rps, p50, p99,
                (n > 0 ? (c1 - c0) * 1e6 / hz / n : 0), rss, err, n
        }' "$out" || { echo "compare.sh: cannot read wrk's output:" >&2; cat "$out" >&2; exit 3; }
}

run_bench() { # run_bench NAME URL PID CONNS SECONDS WARMUP
    local name=$1 url=$2 pid=$3 conns=$4 secs=$5 warm=$6 json rc=0
    json="$TMP/bench-$name-$conns.json"
    on_cpus "$LOAD_CPUS" "$BIN" bench "$url/predict" --concurrency "$conns" --duration "$secs" \
        --warmup "$warm" --threads "$THREADS" --batch "$BATCH" --sensors "$SENSORS" \
        --deterministic --server-pid "$pid" --json "$json" >"$TMP/bench-$name-$conns.txt" 2>&1 || rc=$?
    if [ "$rc" -ne 0 ] && [ "$rc" -ne 1 ]; then # 1: a threshold verdict, none asked for here
        echo "compare.sh: carlarl bench against $name failed (exit $rc):" >&2
        tail -n 20 "$TMP/bench-$name-$conns.txt" >&2
        exit 3
    fi
    "$PY" - "$json" <<'EOF' || { echo "compare.sh: cannot read $json" >&2; exit 3; }
import json, sys
r = json.load(open(sys.argv[1]))
lat, srv = r["latency_ms"], r.get("server") or {}
def num(v):
    return float(v) if isinstance(v, (int, float)) else float("nan")
rps = num(r["throughput_rps"])
err = num(r.get("error_rate_percent", 0.0))
print("%s %.3f %.3f %.1f %.1f %s %s" % (rps, num(lat["p50"]), num(lat["p99"]),
      num(srv.get("cpu_us_per_request")), num(srv.get("rss_after_mb")),
      "%g%%" % err if err > 0 else 0, r.get("done", "-")))
EOF
}

# ---- the runs -------------------------------------------------------------------------------------

LOADGEN="carlarl bench (closed loop)"
[ "$USE_BENCH" -eq 1 ] || LOADGEN="wrk (carlarl bench not used)"
cpu_model=$(awk -F': *' '/^model name/ { print $2; exit }' /proc/cpuinfo 2>/dev/null || true)
echo "## carlarl vs the Python reference, $(date -u '+%Y-%m-%d %H:%M UTC')"
echo
echo "- machine: $(nproc) online CPUs${cpu_model:+ ($cpu_model)}, $(uname -r); servers and load generator on this machine$([ -n "$SERVER_CPUS$LOAD_CPUS" ] && echo ", servers on CPUs ${SERVER_CPUS:-any}, load on ${LOAD_CPUS:-any}" || echo ", sharing every CPU")"
echo "- carlarl: $("$BIN" version 2>&1 | head -n 1), $(sed -n 's|.*listening on http://[^ ]* with \([0-9]* worker(s)\).*|\1|p' "$TMP/carlarl.log"), built-in example policy"
echo "- Python: $(sed -n 's|^python-reference: listening on [^ ]* (pid [0-9]*, \(.*\))$|\1|p' "$TMP/python.log")"
echo "- $(cat "$TMP/preflight.txt")"
echo "- load: $LOADGEN, $THREADS thread(s), keep-alive, POST /predict batch $BATCH x $SENSORS sensors, deterministic; ${WARMUP} s warm-up + ${DURATION} s measured per run"
echo "- CPU us/req: server utime+stime over the measured run / requests completed; RSS: server VmRSS after the run"
echo

declare -A R
CHECKED=()
for c in $CONCURRENCY; do
    for s in carlarl Python; do
        if [ "$s" = carlarl ]; then url=$C_URL pid=$C_PID; else url=$P_URL pid=$P_PID; fi
        echo "compare.sh: $s, concurrency $c ..." >&2
        if [ "$USE_BENCH" -eq 1 ]; then
            R[$s,$c]=$(run_bench "$s" "$url" "$pid" "$c" "$DURATION" "$WARMUP")
        else
            R[$s,$c]=$(run_wrk "$s" "$url" "$pid" "$c" "$DURATION" "$WARMUP" main)
        fi
        if [ "$c" -eq "$CHECK_C" ]; then # the cross-check, right after the run it checks
            echo "compare.sh: $s, concurrency $c, wrk cross-check ..." >&2
            R[$s,$c,wrk]=$(run_wrk "$s" "$url" "$pid" "$c" "$DURATION" 0 check)
            CHECKED+=("$s")
        fi
    done
done

ratio() {
    awk -v a="$1" -v b="$2" 'BEGIN {
        if (!(b + 0 > 0) || a != a + 0) { printf "-"; exit }
        r = a / b
        printf (r >= 100 ? "%.0f×" : r >= 1 ? "%.2f×" : "%.2g×"), r }'
}
echo "| server | concurrency | req/s | p50 ms | p99 ms | CPU µs/req | RSS MB |"
echo "|---|---:|---:|---:|---:|---:|---:|"
ERRORS=""
for c in $CONCURRENCY; do
    for s in carlarl Python; do
        read -r rps p50 p99 cpu rss err _ <<<"${R[$s,$c]}"
        printf '| %s | %s | %.0f | %s | %s | %s | %s |\n' "$s" "$c" "$rps" "$p50" "$p99" "$cpu" "$rss"
        [ "$err" = 0 ] || ERRORS="$ERRORS $s@$c:$err"
    done
    read -r a_rps a_p50 a_p99 a_cpu a_rss _ <<<"${R[carlarl,$c]}"
    read -r b_rps b_p50 b_p99 b_cpu b_rss _ <<<"${R[Python,$c]}"
    printf '| carlarl/Python | %s | %s | %s | %s | %s | %s |\n' "$c" "$(ratio "$a_rps" "$b_rps")" \
        "$(ratio "$a_p50" "$b_p50")" "$(ratio "$a_p99" "$b_p99")" "$(ratio "$a_cpu" "$b_cpu")" \
        "$(ratio "$a_rss" "$b_rss")"
done
echo
if [ -n "$ERRORS" ]; then
    echo "**Errors** (non-2xx or transport; the figures above include them):$ERRORS"
    echo
fi

STATUS=0
if [ "${#CHECKED[@]}" -gt 0 ]; then
    if [ "$USE_BENCH" -eq 1 ]; then
        echo "### Cross-check: carlarl bench against wrk, concurrency $CHECK_C (PASS within ${AGREE_PCT}%)"
        first="carlarl bench req/s"
    else
        echo "### Cross-check: wrk against a second wrk run, concurrency $CHECK_C (carlarl bench not used: this only shows the run-to-run spread and sets no exit status)"
        first="wrk req/s (main table)"
    fi
    echo
    echo "| server | $first | wrk req/s | wrk p50 ms | wrk p99 ms | difference | verdict |"
    echo "|---|---:|---:|---:|---:|---:|---|"
    for s in "${CHECKED[@]}"; do
        read -r a_rps _ <<<"${R[$s,$CHECK_C]}"
        read -r w_rps w_p50 w_p99 _ <<<"${R[$s,$CHECK_C,wrk]}"
        line=$(awk -v a="$a_rps" -v w="$w_rps" -v lim="$AGREE_PCT" 'BEGIN {
            d = (w > 0) ? (a - w) / w * 100 : 100
            ad = d < 0 ? -d : d
            printf "%+.1f%% %s", d, (ad <= lim ? "PASS" : "FAIL") }')
        verdict=${line##* }
        if [ "$USE_BENCH" -eq 1 ]; then
            [ "$verdict" = PASS ] || STATUS=1
        else
            verdict="($verdict; spread only, not a verdict)"
        fi
        printf '| %s | %.0f | %.0f | %s | %s | %s | %s |\n' "$s" "$a_rps" "$w_rps" "$w_p50" "$w_p99" \
            "${line% *}" "$verdict"
    done
    echo
else
    echo "(no cross-check: --check-concurrency $CHECK_C is not one of the concurrencies run)"
fi
exit "$STATUS"
