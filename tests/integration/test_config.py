"""test_config.py: configuration end to end: profiles, `carlarl config`, no-effect warnings,
the levers (ISA switches in /metadata, worker affinity, memory pinning), SIGHUP reload, hwinfo."""
import json
import os
import re
import signal
import subprocess
import tempfile
import time
import unittest

from harness import BIN, Server, main

SRC = os.environ.get("CRL_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", ".."))
PROFILES = ["intel-optimized", "nvidia-optimized", "mac-m4-max-optimized", "development",
            "production", "testing"]


def run(args, env=None, cwd=SRC):
    e = dict(os.environ)
    for k in ["PORT", "WORKERS", "LOG_LEVEL", "CONFIG_FILE", "CARLARL_PROFILE", "ENABLE_AVX512",
              "ENABLE_AVX", "CRL_ISA"]:
        e.pop(k, None)
    e.update(env or {})
    return subprocess.run([BIN] + args, capture_output=True, text=True, timeout=30, env=e, cwd=cwd)


def cpu_flags():
    with open("/proc/cpuinfo") as f:
        m = re.search(r"^flags\s*:(.*)$", f.read(), re.M)
    return set(m.group(1).split()) if m else set()


class Profiles(unittest.TestCase):
    def test_every_shipped_profile_loads(self):
        for p in PROFILES:
            r = run(["config", "--profile", p])
            self.assertEqual(r.returncode, 0, (p, r.stderr))
            self.assertIn("config/%s.yaml:" % p, r.stdout)
            r = run(["config", "--check", "config/%s.yaml" % p])
            self.assertEqual((r.returncode, r.stdout.strip()), (0, "config/%s.yaml: ok" % p))

    def test_config_shows_sources(self):
        r = run(["config", "--profile", "development", "--port", "9999"],
                env={"WORKERS": "3", "LOG_LEVEL": "error"})
        self.assertEqual(r.returncode, 0, r.stderr)
        out = r.stdout
        self.assertRegex(out, r"\n  port: 9999 +# --port\n")
        self.assertRegex(out, r"\n  workers: 3 +# env WORKERS\n")
        self.assertRegex(out, r"\n  level: ERROR +# env LOG_LEVEL\n")
        self.assertRegex(out, r"\n  request_timeout: 30 +# config/development.yaml:\d+\n")
        self.assertRegex(out, r"\n  gzip_min_size: 1000 +# default\n")

    def test_check_reports_line_and_suggestion(self):
        bad = tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False)
        bad.write("server:\n  port: 8080\n  wrokers: 2\n")
        bad.close()
        r = run(["config", "--check", bad.name])
        self.assertEqual(r.returncode, 2)
        self.assertIn("%s:3: server.wrokers: unknown key (did you mean server.workers?)" % bad.name,
                      r.stderr)
        r = run(["serve", "--config", bad.name])
        self.assertEqual(r.returncode, 2)
        r = run(["serve"], env={"SERVER_PORT": "port"})
        self.assertEqual(r.returncode, 2)
        self.assertIn("env SERVER_PORT: server.port: expected an integer, got 'port'", r.stderr)

    def test_gpu_profiles_are_refused_by_serve_with_the_reason(self):
        r = run(["serve", "--profile", "nvidia-optimized"])
        self.assertEqual(r.returncode, 2)
        self.assertRegex(r.stderr, r"config/nvidia-optimized.yaml:\d+: model.device: cuda is not "
                                   r"available: this build has no CUDA backend")
        r = run(["serve", "--profile", "mac-m4-max-optimized"])
        self.assertEqual(r.returncode, 2)
        self.assertIn("model.device: mps is not available", r.stderr)
        r = run(["serve", "--profile", "mac-m4-max-optimized", "--device", "cpu"])
        self.assertEqual(r.returncode, 2)
        self.assertIn("model.precision: float16 is not supported yet", r.stderr)

    def test_no_effect_keys_warn_once_each(self):
        with Server(args=["--profile", os.path.join(SRC, "config", "intel-optimized.yaml"),
                          "--workers", "1"]) as srv:
            log = srv.log()
        for key in ["optimization.enable_sse", "optimization.enable_mkl",
                    "optimization.cache_size"]:
            self.assertEqual(log.count("%s has no effect here" % key), 1, (key, log))
        for key in ["optimization.enable_avx2", "optimization.memory_pinning",
                    "optimization.cpu_threads"]:
            self.assertNotIn("%s has no effect" % key, log)
        self.assertIn("memory_pinning", log)  # applied: locked, or a warning saying why not


class Levers(unittest.TestCase):
    def isa(self, env=None, args=()):
        with Server(env=env, args=list(args), workers=1) as srv:
            st, _, meta = srv.json("GET", "/metadata")
            self.assertEqual(st, 200)
            return meta

    def test_isa_switches_show_in_metadata(self):
        flags = cpu_flags()
        meta = self.isa()
        self.assertEqual((meta["device"], meta["precision"], meta["threads"]), ("cpu", "float32", 1))
        has512 = {"avx512f", "avx512bw", "avx512vl", "avx512dq"} <= flags
        has2 = {"avx2", "fma"} <= flags
        self.assertEqual(meta["isa"], "avx512" if has512 else "avx2" if has2 else "generic")
        self.assertEqual(self.isa(env={"ENABLE_AVX512": "false"})["isa"],
                         "avx2" if has2 else "generic")
        self.assertEqual(self.isa(env={"ENABLE_AVX": "0"})["isa"], "generic")
        self.assertEqual(self.isa(args=["--isa", "generic"])["isa"], "generic")
        with Server(env={"ENABLE_AVX": "0"}, workers=1) as srv:
            text = srv.request("GET", "/metrics")[2].decode()
        self.assertIn('carla_rl_runtime_info{isa="generic",device="cpu",precision="float32",'
                      'workers="1"} 1', text)

    def test_memory_pinning_warns_when_the_limit_forbids_it(self):
        # Root bypasses RLIMIT_MEMLOCK through CAP_IPC_LOCK: drop it, and set the limit to 0.
        p = subprocess.Popen(["prlimit", "--memlock=0:0", "setpriv", "--inh-caps=-ipc_lock",
                              "--bounding-set=-ipc_lock", BIN, "serve", "--port", "0",
                              "--workers", "1", "--artifact-dir", "/nonexistent",
                              "--set", "optimization.memory_pinning=true"],
                             stderr=subprocess.PIPE, text=True)
        log = ""
        t0 = time.monotonic()
        for line in p.stderr:
            log += line
            if '"event":"memory_pinning"' in line or time.monotonic() - t0 > 10:
                break
        p.send_signal(signal.SIGTERM)
        p.wait(10)
        self.assertIn("optimization.memory_pinning is on but cannot lock", log)
        self.assertIn("RLIMIT_MEMLOCK is 0 bytes soft, 0 bytes hard", log)
        self.assertIn("CAP_IPC_LOCK", log)

    def test_worker_affinity_is_applied(self):
        ncpu = os.cpu_count()
        cpus = "0-%d" % (ncpu - 1) if ncpu > 1 else "0"
        with Server(args=["--worker-cpus", cpus], workers=ncpu) as srv:
            self.assertEqual(srv.request("GET", "/healthz")[0], 200)
            allowed = []
            for tid in sorted(os.listdir("/proc/%d/task" % srv.proc.pid), key=int):
                if int(tid) == srv.proc.pid:
                    continue
                with open("/proc/%d/task/%s/status" % (srv.proc.pid, tid)) as f:
                    status = f.read()
                if re.search(r"^Name:\s*crl-log$", status, re.M):
                    continue  # the logger thread (core/log.c) is not a worker
                allowed.append(re.search(r"Cpus_allowed_list:\s*(\S+)", status).group(1))
        # One worker per CPU of the list, each pinned to its own CPU.
        self.assertEqual(sorted(allowed), sorted(str(i) for i in range(ncpu)), allowed)

    def test_cpu_threads_set_the_workers(self):
        with Server(env={"OMP_NUM_THREADS": "3", "WORKERS": "0"}) as srv:
            self.assertEqual(srv.json("GET", "/metadata")[2]["threads"], 3)


class Reload(unittest.TestCase):
    def test_sighup_applies_reloadable_keys_and_keeps_a_good_config(self):
        d = tempfile.mkdtemp()
        path = os.path.join(d, "carlarl.yaml")

        def write(text):
            with open(path, "w") as f:
                f.write(text)

        write("logging:\n  level: WARNING\n  access_log: false\n"
              "security:\n  cors_origins: [\"http://a.test\"]\n")
        with Server(args=["--config", path, "--log-level", "INFO"], workers=1) as srv:
            # The command line (INFO) beats the file; the file turns the access log off.
            srv.request("GET", "/healthz")
            time.sleep(0.2)
            self.assertNotIn("http_request", srv.log())
            _, h, _ = srv.request("GET", "/healthz", headers={"Origin": "http://b.test"})
            self.assertNotIn("access-control-allow-origin", h)

            write("logging:\n  level: DEBUG\n  access_log: false\n"
                  "security:\n  cors_origins: [\"http://b.test\"]\n"
                  "server:\n  gzip_min_size: 500\n")
            srv.proc.send_signal(signal.SIGHUP)
            self.wait_for(srv, "configuration reloaded")
            log = srv.log()
            self.assertIn("security.cors_origins", log)
            self.assertIn("server.gzip_min_size: 1000 -> 500 needs a restart", log)
            _, h, _ = srv.request("GET", "/healthz", headers={"Origin": "http://b.test"})
            self.assertEqual(h.get("access-control-allow-origin"), "http://b.test")
            # The command line still wins over the file on reload: level stays INFO.
            self.assertNotIn("logging.level", log)
            srv.request("GET", "/healthz")
            time.sleep(0.2)
            self.assertNotIn("http_request", srv.log())

        write("logging:\n  level: DEBUG\n  access_log: true\n")
        with Server(args=["--config", path], workers=1) as srv:
            srv.request("GET", "/live")
            self.wait_for(srv, "http_request")  # the file turns the access log on
            write("logging:\n  level: WARNING\n  access_log: true\n")
            srv.proc.send_signal(signal.SIGHUP)
            self.wait_for(srv, "logging.level: DEBUG -> WARNING (applied)")
            n = srv.log().count("http_request")
            srv.request("GET", "/live")
            time.sleep(0.2)
            self.assertEqual(srv.log().count("http_request"), n)  # the level changed live
            write("logging:\n  level: [broken\n")
            srv.proc.send_signal(signal.SIGHUP)
            self.wait_for(srv, "reload failed, keeping the running configuration")
            self.assertEqual(srv.request("GET", "/healthz")[0], 200)
            self.assertEqual(srv.stop(), 0)

    def wait_for(self, srv, text, timeout=5.0):
        t0 = time.monotonic()
        while text not in srv.log():
            if time.monotonic() - t0 > timeout:
                self.fail("%r not logged:\n%s" % (text, srv.log()))
            time.sleep(0.05)


class Hwinfo(unittest.TestCase):
    def test_json_has_the_fields(self):
        r = run(["hwinfo", "--json"])
        self.assertEqual(r.returncode, 0, r.stderr)
        hw = json.loads(r.stdout)
        for key in ["arch", "vendor", "model", "features", "instruction_sets", "logical_cpus",
                    "physical_cores", "caches", "numa_nodes", "memory_bytes", "gpus",
                    "gpu_status", "kernel_isa", "recommended"]:
            self.assertIn(key, hw)
        for isa in ["sse4.2", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512vl",
                    "avx512_bf16", "amx", "neon"]:
            self.assertIn(isa, hw["instruction_sets"])
        self.assertEqual(hw["logical_cpus"], os.cpu_count())
        self.assertEqual(hw["instruction_sets"]["avx2"], "avx2" in cpu_flags())
        self.assertIn(hw["kernel_isa"], ["generic", "avx2", "avx512"])
        self.assertIn("profile", hw["recommended"])
        # The switches reach hwinfo's choice too.
        r = run(["hwinfo", "--json"], env={"ENABLE_AVX": "false"})
        self.assertEqual(json.loads(r.stdout)["kernel_isa"], "generic")

    def test_text(self):
        r = run(["hwinfo"])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("avx2", r.stdout.lower())


if __name__ == "__main__":
    main()
