#!/usr/bin/env python3
"""Scale-out test: three rtnq-server replicas, a real Prometheus, the rtnq client across all three.

Usage: scale_out_test.py --server RTNQ_SERVER --cli RTNQ --repo DIR

1. Three replicas on 127.0.0.1 (gRPC port 0 + --port_file; the /metrics port is read from the
   server's start line, `metrics_port=N`, as the server has no --metrics_port_file).
2. Prometheus runs deploy/prometheus/prometheus.yml itself, with the dns_sd_configs of job rtnq
   replaced by the three replicas' metrics addresses and 1 s intervals (rules.yml loads as is).
3. A synthetic checkpoint (`rtnq synth --shape small`, 39 tensors) through one replica, then
   `rtnq quantize --server A,B,C --streams 3 --format gptq`: every replica served tensors of the
   run (rtnq_tensors_total on each /metrics), Prometheus' API reports the counters' sum, and the
   output equals the single-replica run byte for byte.
4. Again, with a replica frozen while it works on its first tensor of the run (in-flight bytes,
   no tensor answered yet: the client retries it elsewhere) and then killed: the run
   completes with identical output, a tensor was retried, and Prometheus reports that replica
   down (up == 0 and the RtnqReplicaDown alert pending).

A client session's streams carry 1, 2, 4, ... up to 64 tensors each before it opens the next, and
round_robin places each new stream over the READY replicas: one run with 3 streams reaches all
three even when a connection comes up late.
"""

import argparse
import copy
import filecmp
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

try:
    import yaml
except ImportError:
    sys.exit("scale_out_test: python3-yaml is missing for %s (run scripts/setup-deps.sh)" % sys.executable)

# Everything here is on loopback: a proxy from the environment (urllib and gRPC both honour
# http_proxy) would only break it.
for var in ("http_proxy", "https_proxy", "all_proxy", "grpc_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
    os.environ.pop(var, None)

TIMEOUT = 30  # seconds for anything to become true; the whole test takes ~15 s
STREAMS = 3


def fail(msg):
    print("FAIL:", msg, flush=True)
    sys.exit(1)


def wait_for(what, fn, timeout=TIMEOUT, interval=0.02):
    """Polls fn() until it returns something truthy; fails naming `what` after timeout."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = fn()
        if v:
            return v
        time.sleep(interval)
    fail("timed out waiting for " + what)


def http_get(url):
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.read().decode()
    except OSError:
        return None


def sample_sum(metrics_text, name):
    """Sum of every sample of `name` (all label sets) in a /metrics exposition."""
    total = 0.0
    for m in re.finditer(r"^%s(?:\{[^}]*\})? (\S+)$" % re.escape(name), metrics_text, re.M):
        total += float(m.group(1))
    return total


class Replica:
    def __init__(self, server, tmp, i):
        self.name = "replica%d" % i
        port_file = os.path.join(tmp, self.name + ".port")
        self.log_path = os.path.join(tmp, self.name + ".log")
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            [server, "--listen=127.0.0.1:0", "--port_file=" + port_file, "--metrics_listen=127.0.0.1:0",
             "--threads=1", "--shutdown_grace=1", "--log_level=info"],
            stdout=self.log, stderr=subprocess.STDOUT)

        def started():
            if self.proc.poll() is not None:
                fail("%s exited with %s:\n%s" % (self.name, self.proc.returncode, open(self.log_path).read()))
            m = re.search(r"server start port=(\d+) metrics_port=(\d+)", open(self.log_path).read())
            return m if m and os.path.exists(port_file) else None

        m = wait_for(self.name + " to start", started)
        self.port = int(open(port_file).read())
        if self.port != int(m.group(1)):
            fail("%s: --port_file says %d, the log %s" % (self.name, self.port, m.group(1)))
        self.metrics_port = int(m.group(2))
        self.address = "127.0.0.1:%d" % self.port
        self.metrics_address = "127.0.0.1:%d" % self.metrics_port

    def metrics(self):
        return http_get("http://%s/metrics" % self.metrics_address) or ""

    def tensors(self):
        return sample_sum(self.metrics(), "rtnq_tensors_total")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Prometheus:
    """A real Prometheus running the project's prometheus.yml, pointed at the replicas."""

    def __init__(self, repo, tmp, replicas):
        with open(os.path.join(repo, "deploy/prometheus/prometheus.yml")) as f:
            cfg = yaml.safe_load(f)
        cfg = copy.deepcopy(cfg)
        cfg["global"]["scrape_interval"] = "1s"
        cfg["global"]["evaluation_interval"] = "1s"
        cfg["rule_files"] = [os.path.join(os.path.abspath(repo), "deploy/prometheus", r) for r in cfg["rule_files"]]
        jobs = [j for j in cfg["scrape_configs"] if j["job_name"] == "rtnq"]
        if len(jobs) != 1 or "dns_sd_configs" not in jobs[0]:
            fail("deploy/prometheus/prometheus.yml has no job rtnq with dns_sd_configs")
        job = jobs[0]
        sd_port = job.pop("dns_sd_configs")[0]["port"]
        job["static_configs"] = [{"targets": [r.metrics_address for r in replicas]}]
        # Only the rtnq job: the others (Prometheus itself) point at compose addresses.
        cfg["scrape_configs"] = [job]
        self.sd_port = sd_port
        path = os.path.join(tmp, "prometheus.yml")
        with open(path, "w") as f:
            yaml.safe_dump(cfg, f)
        self.url = "http://127.0.0.1:%d" % free_port()
        self.log_path = os.path.join(tmp, "prometheus.log")
        self.proc = subprocess.Popen(
            ["prometheus", "--config.file=" + path, "--storage.tsdb.path=" + os.path.join(tmp, "tsdb"),
             "--web.listen-address=" + self.url[len("http://"):], "--log.level=warn"],
            stdout=open(self.log_path, "w"), stderr=subprocess.STDOUT)

        def ready():
            if self.proc.poll() is not None:
                fail("prometheus exited with %s:\n%s" % (self.proc.returncode, open(self.log_path).read()))
            return http_get(self.url + "/-/ready") is not None

        wait_for("prometheus to be ready", ready, interval=0.1)

    def api(self, path, **params):
        body = http_get("%s/api/v1/%s?%s" % (self.url, path, urllib.parse.urlencode(params)))
        return json.loads(body)["data"] if body else None

    def query(self, q):
        data = self.api("query", query=q)
        return data["result"] if data else []

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)


def run_cli(cli, args, what):
    r = subprocess.run([cli] + args, capture_output=True, text=True, timeout=120)
    if r.returncode != 0:
        fail("%s: rtnq %s exited %d:\n%s%s" % (what, " ".join(args), r.returncode, r.stdout, r.stderr))
    return r


def same_tree(a, b):
    """True when a and b (files, or directories compared recursively) hold the same bytes."""
    if os.path.isfile(a) or os.path.isfile(b):
        return os.path.isfile(a) and os.path.isfile(b) and filecmp.cmp(a, b, shallow=False)
    cmp = filecmp.dircmp(a, b)
    if cmp.left_only or cmp.right_only or cmp.funny_files:
        print("differ:", cmp.left_only, cmp.right_only, cmp.funny_files)
        return False
    _, mismatch, errors = filecmp.cmpfiles(a, b, cmp.common_files, shallow=False)
    if mismatch or errors:
        print("differ:", mismatch, errors)
        return False
    return all(same_tree(os.path.join(a, d), os.path.join(b, d)) for d in cmp.common_dirs)


def report_attempts(path):
    """Every `attempts` value in a --report JSON file (per tensor)."""
    found = []

    def walk(x):
        if isinstance(x, dict):
            for k, v in x.items():
                if k == "attempts" and isinstance(v, int):
                    found.append(v)
                else:
                    walk(v)
        elif isinstance(x, list):
            for v in x:
                walk(v)

    with open(path) as f:
        walk(json.load(f))
    return found


def served_since(replicas, before):
    """Tensors each replica answered since `before` (a list of rtnq_tensors_total sums)."""
    return [r.tensors() - b for r, b in zip(replicas, before)]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--server", required=True)
    ap.add_argument("--cli", required=True)
    ap.add_argument("--repo", required=True)
    a = ap.parse_args()
    for b in (a.server, a.cli):
        if not os.access(b, os.X_OK):
            fail("%s is not an executable (build the rtnq-server and rtnq targets)" % b)

    with tempfile.TemporaryDirectory(prefix="rtnq-scale-out-") as tmp:
        replicas, prom = [], None
        try:
            replicas = [Replica(a.server, tmp, i) for i in range(3)]
            prom = Prometheus(a.repo, tmp, replicas)
            servers = ",".join(r.address for r in replicas)
            checkpoint = os.path.join(tmp, "in")
            run_cli(a.cli, ["synth", "-o", checkpoint, "--shape", "small"], "synth")
            # MSE search makes every tensor slow enough that one the victim holds when it is
            # frozen is still in flight then (not answered in the moment between scrape and stop).
            fmt = ["--format", "gptq", "--mse-search", "--quiet"]

            # --- the reference: the checkpoint through one replica
            single = os.path.join(tmp, "single")
            before = [r.tensors() for r in replicas]
            run_cli(a.cli, ["quantize", checkpoint, "-o", single, "--server", replicas[0].address] + fmt, "1 replica")
            per_run = sum(served_since(replicas, before))
            if per_run < 10:
                fail("the single-replica run answered %d tensors; expected the whole checkpoint" % per_run)

            # --- three replicas: every one serves tensors of the run, identical bytes
            multi = os.path.join(tmp, "multi")
            before = [r.tensors() for r in replicas]
            run_cli(a.cli, ["quantize", checkpoint, "-o", multi, "--server", servers, "--streams", str(STREAMS)]
                    + fmt, "3 replicas")
            served = served_since(replicas, before)
            print("tensors per replica %s" % served, flush=True)
            if sum(served) != per_run:
                fail("the 3-replica run answered %d tensors, the single-replica run %d" % (sum(served), per_run))
            if not same_tree(multi, single):
                fail("3-replica output differs from the single-replica output")
            if not all(n > 0 for n in served):
                fail("some replica served no tensor of the run: %s" % served)

            total = sum(r.tensors() for r in replicas)

            def prometheus_sum():
                res = prom.query('sum(rtnq_tensors_total{job="rtnq"})')
                return res and float(res[0]["value"][1]) == total

            wait_for("Prometheus to report sum(rtnq_tensors_total) == %d" % total, prometheus_sum, interval=0.2)
            # Every rule evaluated without error (rules load with the config, then evaluate each 1 s).
            def rules_evaluated():
                groups = {g["name"]: g for g in (prom.api("rules") or {}).get("groups", [])}
                rules = [r for g in groups.values() for r in g["rules"]]
                if any(r.get("health") == "err" for r in rules):
                    fail("a rule of rules.yml fails in Prometheus: %s" % json.dumps(rules)[:2000])
                return set(groups) == {"rtnq.recording", "rtnq.alerts"} and all(r.get("health") == "ok" for r in rules)

            wait_for("Prometheus to load and evaluate rules.yml", rules_evaluated, interval=0.2)

            # --- a replica frozen mid-run while it holds a stream, then killed: the run completes
            killed_out = os.path.join(tmp, "killed")
            report = os.path.join(tmp, "killed-report.json")
            before = [r.tensors() for r in replicas]
            client = subprocess.Popen(
                [a.cli, "quantize", checkpoint, "-o", killed_out, "--server", servers, "--streams", str(STREAMS),
                 "--report", report] + fmt, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

            def busy_replica():
                """(a replica working on its first tensor of this run, tensors of the run answered
                so far). In-flight bytes with no tensor of the run answered yet mean that tensor is
                being received or quantized: its answer cannot have reached the client, so the
                client must send it again elsewhere. Neither an open stream (streams carry many
                tensors; one between tensors loses nothing) nor in-flight bytes after an answer
                (the last output chunks, which the kernel still delivers to the client after
                SIGSTOP) would be enough."""
                if client.poll() is not None:
                    fail("the run ended before a replica could be frozen mid-run (exit %s):\n%s"
                         % (client.returncode, client.stdout.read()))
                texts = [r.metrics() for r in replicas]
                served = [sample_sum(t, "rtnq_tensors_total") - b for t, b in zip(texts, before)]
                for r, t, n in zip(replicas, texts, served):
                    if n == 0 and sample_sum(t, "rtnq_inflight_bytes") > 0:
                        return r, int(sum(served))
                return None

            victim, done_at_freeze = wait_for("a replica to work on a tensor of the run", busy_replica, interval=0.002)
            # Frozen, the replica keeps its connections and the tensors the client sent it: the run
            # cannot finish around it. Then it dies without a goodbye.
            victim.proc.send_signal(signal.SIGSTOP)
            time.sleep(0.2)
            if client.poll() is not None:
                fail("the run finished while %s was frozen holding a stream" % victim.name)
            victim.proc.send_signal(signal.SIGKILL)
            victim.proc.wait()
            try:
                out, _ = client.communicate(timeout=120)
            except subprocess.TimeoutExpired:
                client.kill()
                fail("the run did not complete after %s was killed" % victim.name)
            if client.returncode != 0:
                fail("run with %s killed mid-run (%d of %d tensors done when frozen) exited %d:\n%s"
                     % (victim.name, done_at_freeze, per_run, client.returncode, out))
            if not same_tree(killed_out, single):
                fail("output with a replica killed mid-run differs from the single-replica output")
            attempts = report_attempts(report)
            print("froze and killed %s with %d of %d tensors done; attempts per tensor: %s"
                  % (victim.name, done_at_freeze, per_run, attempts), flush=True)
            if len(attempts) != per_run or max(attempts) < 2:
                fail("expected %d tensors in the report, one retried after %s was killed: %s"
                     % (per_run, victim.name, attempts))

            def victim_down():
                down = prom.query('up{job="rtnq"} == 0')
                alerts = prom.query('ALERTS{alertname="RtnqReplicaDown"}')
                return ([d["metric"]["instance"] for d in down] == [victim.metrics_address]
                        and [x["metric"]["instance"] for x in alerts] == [victim.metrics_address])

            wait_for("Prometheus to report %s down (up == 0, RtnqReplicaDown)" % victim.metrics_address, victim_down,
                     interval=0.2)
            print("scale-out: 3 replicas, Prometheus sum %d, identical outputs, failover ok" % total)
        finally:
            if prom:
                prom.stop()
            for r in replicas:
                r.stop()


if __name__ == "__main__":
    main()
