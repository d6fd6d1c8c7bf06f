#!/usr/bin/env python3
"""Static checks of the deployment files against the server they deploy (ctest label `deploy`).

Usage: deploy_checks.py CHECK --repo DIR [--server BIN] [--cli BIN]

CHECK is one of compose, prometheus, grafana, k8s, dockerfile, entrypoint, runtime-deps. Ports,
flags and defaults come from the real `rtnq-server --helpfull`, metric names from
server/metrics.cc, so a change there that the deployment does not follow fails here.
Needs python3-yaml, docker-compose and promtool (scripts/setup-deps.sh installs them).
"""

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

try:
    import yaml
except ImportError:
    sys.exit("deploy_checks: python3-yaml is missing for %s (run scripts/setup-deps.sh)" % sys.executable)

FAILURES = []

# The entrypoint check talks to a server on loopback: a proxy from the environment (urllib and
# gRPC both honour http_proxy) would only break it.
for var in ("http_proxy", "https_proxy", "all_proxy", "grpc_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
    os.environ.pop(var, None)


def check(cond, what):
    """Records a failed expectation (all are reported, then the check exits 1)."""
    if not cond:
        FAILURES.append(what)
    return cond


def tool(name):
    path = shutil.which(name)
    if path is None:
        sys.exit("deploy_checks: %s not found (run scripts/setup-deps.sh)" % name)
    return path


def run(cmd, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, **kw)


def read(repo, rel):
    with open(os.path.join(repo, rel), encoding="utf-8") as f:
        return f.read()


def load_yaml(repo, rel):
    return yaml.safe_load(read(repo, rel))


def port_of(address):
    """'0.0.0.0:50051' -> 50051; '[::]:9090' -> 9090."""
    return int(address.rsplit(":", 1)[1])


# --------------------------------------------------------------------------- the server's truth


def server_flags(server_bin):
    """{flag: default} of the flags defined in server/main.cc, from `rtnq-server --helpfull`."""
    out = run([server_bin, "--helpfull"])
    text = out.stdout + out.stderr
    section = re.search(r"Flags from \S*server/main\.cc:\n(.*?)(?:\n\n|\Z)", text, re.S)
    if section is None:
        sys.exit("deploy_checks: no server/main.cc flags in `%s --helpfull`:\n%s" % (server_bin, text))
    flags = {}
    for m in re.finditer(r"--(\w+) \(.*?\);\s*default: (.*?);", section.group(1), re.S):
        flags[m.group(1)] = m.group(2).strip().strip('"')
    if not check("listen" in flags and "metrics_listen" in flags, "helpfull lists --listen and --metrics_listen"):
        sys.exit("\n".join(FAILURES))
    return flags


def exported_metrics(repo):
    """Series names the server exports: Name("...") in server/metrics.cc, plus histogram series."""
    src = read(repo, "server/metrics.cc")
    names = set()
    for m in re.finditer(r'Name\("(\w+)"\)', src):
        names.add(m.group(1))
    histograms = set(re.findall(r'BuildHistogram\(\)\s*\.Name\("(\w+)"\)', src))
    for h in histograms:
        names.update({h + "_bucket", h + "_sum", h + "_count"})
    check(len(names) >= 8, "server/metrics.cc: found %d metric names" % len(names))
    return names


def metric_names_in(expr):
    """rtnq_* series names a PromQL expression reads (recording rule names contain ':')."""
    return set(re.findall(r"(?<![\w:])(rtnq_\w+)(?![\w:])", expr))


def flag_args(args):
    """['--a=1', '--b', '2'] -> {'a': '1', 'b': '2'}; absl's last one wins."""
    out = {}
    i = 0
    while i < len(args):
        a = args[i]
        if a.startswith("--"):
            if "=" in a:
                k, v = a[2:].split("=", 1)
            else:
                k, v = a[2:], (args[i + 1] if i + 1 < len(args) else "")
                i += 1
            out[k] = v
        i += 1
    return out


def alert_budget(repo):
    """The memory budget the RtnqInflightBytesNearBudget alert assumes."""
    rules = load_yaml(repo, "deploy/prometheus/rules.yml")
    for g in rules["groups"]:
        for r in g["rules"]:
            if r.get("alert") == "RtnqInflightBytesNearBudget":
                m = re.search(r"\*\s*(\d+)", r["expr"])
                return int(m.group(1))
    sys.exit("deploy_checks: no RtnqInflightBytesNearBudget alert in rules.yml")


def entrypoint_mapping(repo):
    """{ENV_VAR: flag} from deploy/docker/entrypoint.sh."""
    text = read(repo, "deploy/docker/entrypoint.sh")
    return dict(re.findall(r"^\s*(RTNQ_\w+)=(\w+)\s*$", text, re.M))


# --------------------------------------------------------------------------- checks


def memory_bytes(quantity):
    """'5Gi', '5G' (compose means GiB), '512Mi', '1073741824' -> bytes."""
    m = re.fullmatch(r"(\d+)([KMG]i?)?[bB]?", str(quantity))
    return int(m.group(1)) << {None: 0, "K": 10, "M": 20, "G": 30}[m.group(2)[0] if m.group(2) else None]


def check_memory_sizing(where, limit, flag):
    """deploy/README.md's rule: limit >= budget + max_streams x max_message_bytes
    + 2 x max_tensor_bytes (float32 working copy of a buffered bf16 tensor) + 512 MiB."""
    need = (int(flag("memory_budget_bytes")) + int(flag("max_streams")) * int(flag("max_message_bytes"))
            + 2 * int(flag("max_tensor_bytes")) + (512 << 20))
    check(memory_bytes(limit) >= need, "%s memory limit %s >= %.2f GiB (README sizing rule)" % (where, limit, need / (1 << 30)))


def check_compose(a):
    compose = os.path.join(a.repo, "deploy/docker-compose.yml")
    r = run([tool("docker-compose"), "-f", compose, "config", "-q"])
    check(r.returncode == 0, "docker-compose config -q: %s%s" % (r.stdout, r.stderr))
    doc = load_yaml(a.repo, "deploy/docker-compose.yml")
    services = doc["services"]
    rtnq = services.get("rtnq")
    if not check(rtnq is not None, "compose has a service `rtnq`"):
        return
    flags = server_flags(a.server)
    env = rtnq.get("environment", {})
    mapping = entrypoint_mapping(a.repo)
    for var in env:
        check(var in mapping, "compose rtnq.environment %s is mapped by the entrypoint" % var)
    grpc_port = port_of(env.get("RTNQ_LISTEN", flags["listen"]))
    metrics = env.get("RTNQ_METRICS_LISTEN", "")
    check(metrics != "", "compose enables metrics (RTNQ_METRICS_LISTEN)")
    metrics_port = port_of(metrics) if metrics else None
    exposed = {int(p) for p in rtnq.get("expose", [])}
    check(exposed == {grpc_port, metrics_port}, "compose rtnq exposes %s, server listens on %s" % (exposed, {grpc_port, metrics_port}))
    check(rtnq.get("deploy", {}).get("replicas", 1) >= 2, "compose runs several rtnq replicas")
    check_memory_sizing("compose rtnq", rtnq["deploy"]["resources"]["limits"]["memory"],
                        lambda f: env.get("RTNQ_" + f.upper(), flags[f]))
    check(int(env.get("RTNQ_MEMORY_BUDGET_BYTES", flags["memory_budget_bytes"])) == alert_budget(a.repo),
          "compose RTNQ_MEMORY_BUDGET_BYTES equals the budget in the RtnqInflightBytesNearBudget alert")
    # Prometheus finds the replicas by the service's DNS name on the metrics port.
    prom = load_yaml(a.repo, "deploy/prometheus/prometheus.yml")
    job = [j for j in prom["scrape_configs"] if j["job_name"] == "rtnq"]
    if check(len(job) == 1 and "dns_sd_configs" in job[0], "prometheus.yml: job rtnq with dns_sd_configs"):
        for sd in job[0]["dns_sd_configs"]:
            check(sd.get("type") == "A" and sd.get("port") == metrics_port, "dns_sd type A on port %s" % metrics_port)
            check(set(sd["names"]) & {"rtnq", "tasks.rtnq"}, "dns_sd names the compose service rtnq")
    # The example client reaches every replica through DNS on the gRPC port.
    client = services.get("client", {})
    cmd = client.get("command", [])
    check(cmd[:1] == ["quantize"] and "dns:///rtnq:%d" % grpc_port in cmd and "gptq" in cmd,
          "client runs rtnq quantize --server dns:///rtnq:%d --format gptq: %s" % (grpc_port, cmd))
    check(any(str(v).endswith(":/models") for v in client.get("volumes", [])), "client mounts /models")
    # Grafana's provisioned datasource is the compose Prometheus.
    ds = load_yaml(a.repo, "deploy/grafana/provisioning/datasources/prometheus.yml")["datasources"][0]
    check(ds["url"] == "http://prometheus:9090" and "prometheus" in services, "Grafana datasource is the compose Prometheus")
    prom_args = flag_args(services["prometheus"].get("command", []))
    prom_mounts = dict(str(v).split(":")[1::-1] for v in services["prometheus"].get("volumes", []) if str(v).startswith("./"))
    check(prom_mounts.get(prom_args.get("config.file")) == "./prometheus/prometheus.yml", "Prometheus runs the mounted prometheus.yml")
    # Prometheus and Grafana mount the files this repository provides.
    mounts = [str(v).split(":")[0] for s in ("prometheus", "grafana") for v in services[s].get("volumes", [])]
    for m in mounts:
        if m.startswith("./"):
            check(os.path.exists(os.path.join(a.repo, "deploy", m)), "compose mount %s exists" % m)


def check_prometheus(a):
    promtool = tool("promtool")
    d = os.path.join(a.repo, "deploy/prometheus")
    for cmd in (["check", "config", "prometheus.yml"], ["check", "rules", "rules.yml"], ["test", "rules", "rules_test.yml"]):
        r = run([promtool] + cmd, cwd=d)
        check(r.returncode == 0, "promtool %s: %s%s" % (" ".join(cmd), r.stdout, r.stderr))
    names = exported_metrics(a.repo)
    rules = load_yaml(a.repo, "deploy/prometheus/rules.yml")
    seen = set()
    for g in rules["groups"]:
        for r in g["rules"]:
            for n in metric_names_in(r["expr"]):
                seen.add(n)
                check(n in names, "rules.yml reads %s, which server/metrics.cc does not export" % n)
    check(len(seen) >= 5, "rules.yml uses the server's metrics (%s)" % sorted(seen))
    alerts = {r.get("alert") for g in rules["groups"] for r in g["rules"]}
    for want in ("RtnqReplicaDown", "RtnqHighTensorErrorRate", "RtnqSlowTensors", "RtnqInflightBytesNearBudget"):
        check(want in alerts, "rules.yml has alert %s" % want)


def check_grafana(a):
    names = exported_metrics(a.repo) | {"up"}
    dash_dir = os.path.join(a.repo, "deploy/grafana/dashboards")
    ds = load_yaml(a.repo, "deploy/grafana/provisioning/datasources/prometheus.yml")
    uids = {d["uid"] for d in ds["datasources"]}
    prov = load_yaml(a.repo, "deploy/grafana/provisioning/dashboards/rtnq.yml")
    check(prov["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards", "dashboard provider path")
    files = [f for f in os.listdir(dash_dir) if f.endswith(".json")]
    check(files, "deploy/grafana/dashboards has dashboards")
    for f in files:
        with open(os.path.join(dash_dir, f), encoding="utf-8") as fh:
            dash = json.load(fh)
        exprs = [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]
        exprs += [v["query"] for v in dash.get("templating", {}).get("list", []) if v.get("type") == "query"]
        check(len(exprs) >= 8, "%s queries something" % f)
        used = set()
        for e in exprs:
            for n in metric_names_in(e):
                used.add(n)
                check(n in names, "%s queries %s, which server/metrics.cc does not export" % (f, n))
            for n in re.findall(r"\b(up)\{", e):
                used.add(n)
        for p in dash["panels"]:
            check(p["datasource"]["uid"] in uids, "%s panel %r uses a provisioned datasource" % (f, p["title"]))
        for want in ("rtnq_tensors_total", "rtnq_bytes_processed_total", "rtnq_tensor_duration_seconds_bucket",
                     "rtnq_rejections_total", "rtnq_inflight_bytes", "rtnq_active_streams"):
            check(want in used, "%s shows %s" % (f, want))


def check_k8s(a):
    flags = server_flags(a.server)
    d = os.path.join(a.repo, "deploy/k8s")
    docs = {}
    for f in sorted(os.listdir(d)):
        if f.endswith((".yaml", ".yml")):
            with open(os.path.join(d, f), encoding="utf-8") as fh:
                docs[f] = [x for x in yaml.safe_load_all(fh) if x]
    kinds = {(x["kind"], x.get("metadata", {}).get("name")): x for f, xs in docs.items() if f != "tls-token-patch.yaml" for x in xs}
    dep = kinds.get(("Deployment", "rtnq"))
    if not check(dep is not None, "deploy/k8s has Deployment rtnq"):
        return
    pod = dep["spec"]["template"]
    c = pod["spec"]["containers"][0]
    args = flag_args(c.get("args", []))
    for k in args:
        check(k in flags, "Deployment arg --%s is a rtnq-server flag" % k)
    grpc_port = port_of(args.get("listen", flags["listen"]))
    metrics_listen = args.get("metrics_listen", flags["metrics_listen"])
    if not check(metrics_listen, "Deployment enables --metrics_listen"):
        return
    metrics_port = port_of(metrics_listen)
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    check(ports.get("grpc") == grpc_port, "containerPort grpc %s == --listen port %d" % (ports.get("grpc"), grpc_port))
    check(ports.get("metrics") == metrics_port, "containerPort metrics %s == --metrics_listen port %d" % (ports.get("metrics"), metrics_port))
    for probe in ("readinessProbe", "livenessProbe"):
        check(c.get(probe, {}).get("grpc", {}).get("port") == grpc_port, "%s is a native gRPC probe on %d" % (probe, grpc_port))
    ann = pod["metadata"].get("annotations", {})
    check(ann.get("prometheus.io/scrape") == "true" and ann.get("prometheus.io/port") == str(metrics_port),
          "pod scrape annotations name port %d" % metrics_port)
    check(int(args.get("memory_budget_bytes", flags["memory_budget_bytes"])) == alert_budget(a.repo),
          "--memory_budget_bytes equals the budget in the RtnqInflightBytesNearBudget alert")
    check_memory_sizing("Deployment", c["resources"]["limits"]["memory"], lambda f: args.get(f, flags[f]))
    grace = float(args.get("shutdown_grace", flags["shutdown_grace"]))
    check(pod["spec"].get("terminationGracePeriodSeconds", 30) > grace, "terminationGracePeriodSeconds > --shutdown_grace")
    # Services: a headless one for dns:/// + round_robin, a regular one; ports resolve.
    sel = dep["spec"]["selector"]["matchLabels"]
    services = [x for (k, _), x in kinds.items() if k == "Service"]
    check(any(s["spec"].get("clusterIP") == "None" for s in services), "a headless Service (clusterIP: None)")
    check(any(s["spec"].get("clusterIP") != "None" for s in services), "a regular Service")
    for s in services:
        check(s["spec"]["selector"].items() <= sel.items(), "Service %s selects the Deployment's pods" % s["metadata"]["name"])
        for p in s["spec"]["ports"]:
            t = p.get("targetPort", p["port"])
            check(t in ports or t in ports.values(), "Service %s targetPort %s is a container port" % (s["metadata"]["name"], t))
            check(p["port"] in (grpc_port, metrics_port), "Service %s port %s" % (s["metadata"]["name"], p["port"]))
    hpa = kinds.get(("HorizontalPodAutoscaler", "rtnq"))
    check(hpa is not None and hpa["spec"]["scaleTargetRef"]["name"] == "rtnq", "HPA scales Deployment rtnq")
    # The TLS/token patch repeats the Deployment's args and adds only the secret-backed flags.
    patch = docs["tls-token-patch.yaml"][0]["spec"]["template"]["spec"]["containers"][0]
    pargs = patch["args"]
    check(pargs[:len(c["args"])] == c["args"], "tls-token-patch.yaml args start with the Deployment's args")
    for k in flag_args(pargs):
        check(k in flags, "patch arg --%s is a rtnq-server flag" % k)
    mounts = {m["mountPath"] for m in c["volumeMounts"]}
    for k, v in flag_args(pargs).items():
        if k.endswith("_file"):
            check(os.path.dirname(v) in mounts, "patch --%s=%s is inside a mounted secret" % (k, v))
    kust = load_yaml(a.repo, "deploy/k8s/kustomization.yaml")
    for r in kust["resources"]:
        check(r in docs, "kustomization resource %s exists" % r)


def dockerfile_instructions(repo):
    text = read(repo, "Dockerfile")
    text = re.sub(r"\\\n", " ", text)
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def check_dockerfile(a):
    flags = server_flags(a.server)
    ins = dockerfile_instructions(a.repo)
    froms = [r for w, r in ins if w == "FROM"]
    check(len(froms) == 2 and froms[0].startswith("debian:bookworm ") and froms[1].startswith("debian:bookworm-slim"),
          "multi-stage: debian:bookworm build, debian:bookworm-slim runtime: %s" % froms)
    runs = " ; ".join(r for w, r in ins if w == "RUN")
    # The image is built and tested by the scripts the README and CI run.
    for script in ("scripts/setup-deps.sh", "scripts/test.sh"):
        check(script in runs, "Dockerfile runs %s" % script)
    check(re.search(r"exec scripts/test\.sh", read(a.repo, ".ci/run")), ".ci/run execs scripts/test.sh")
    test_sh = read(a.repo, "scripts/test.sh")
    check("scripts/setup-deps.sh" in test_sh and "scripts/build.sh" in test_sh, "scripts/test.sh runs setup-deps.sh and build.sh")
    readme = read(a.repo, "README.md")
    check("scripts/test.sh" in readme and "scripts/setup-deps.sh" in readme, "README documents the same scripts")
    # The image takes the programs from `cmake --install` (component runtime, stripped) of the
    # build scripts/build.sh makes, never from build paths; that install holds both programs.
    m = re.search(r"cmake --install build --strip --component runtime --prefix (\S+)", runs)
    if check(m, "Dockerfile runs cmake --install build --strip --component runtime --prefix DIR"):
        copied = [r for w, r in ins if w == "COPY" and r.startswith("--from=build ")]
        check(any(r.split()[1].rstrip("/") == m.group(1).rstrip("/") for r in copied),
              "the runtime stage copies the install tree %s: %s" % (m.group(1), copied))
    check("build/" not in " ".join(r for w, r in ins if w == "COPY"), "no COPY from build paths")
    build_dir = os.path.dirname(os.path.dirname(os.path.abspath(a.server)))
    with tempfile.TemporaryDirectory() as prefix:
        r = subprocess.run(["cmake", "--install", build_dir, "--component", "runtime", "--prefix", prefix],
                           capture_output=True, text=True)
        check(r.returncode == 0, "cmake --install --component runtime: %s" % r.stderr)
        installed = sorted(os.listdir(os.path.join(prefix, "bin"))) if r.returncode == 0 else []
        check(installed == ["rtnq", "rtnq-server"], "the runtime install is bin/rtnq and bin/rtnq-server: %s" % installed)
    # Ports, health check and configuration agree with the server.
    env = {}
    for w, r in ins:
        if w == "ENV":
            env.update(dict(re.findall(r"(\w+)=(\S+)", r)))
    grpc_port = port_of(env.get("RTNQ_LISTEN", flags["listen"]))
    metrics = env.get("RTNQ_METRICS_LISTEN", flags["metrics_listen"])
    check(metrics, "the image enables metrics")
    exposed = {int(p) for w, r in ins if w == "EXPOSE" for p in r.split()}
    check(exposed == {grpc_port, port_of(metrics)}, "EXPOSE %s == {%d, %s}" % (exposed, grpc_port, metrics))
    hc = [r for w, r in ins if w == "HEALTHCHECK"]
    check(len(hc) == 1 and re.search(r'"rtnq",\s*"health",\s*"--server",\s*"127\.0\.0\.1:%d"' % grpc_port, hc[0]),
          "HEALTHCHECK runs rtnq health --server 127.0.0.1:%d: %s" % (grpc_port, hc))
    mapping = entrypoint_mapping(a.repo)
    for var in env:
        check(var in mapping, "Dockerfile ENV %s is mapped by the entrypoint" % var)
    check(any(w == "USER" and not r.startswith(("root", "0")) for w, r in ins), "runs as a non-root USER")
    check(("ENTRYPOINT", '["rtnq-entrypoint"]') in ins, "ENTRYPOINT is the entrypoint script")
    check("deploy/runtime-deps.txt" in " ".join(r for w, r in ins if w == "COPY"), "runtime stage installs deploy/runtime-deps.txt")
    # .dockerignore keeps build outputs out but nothing the build needs.
    ignored = [l.strip() for l in read(a.repo, ".dockerignore").splitlines() if l.strip() and not l.startswith("#")]
    for must in (".git", "build", "out"):
        check(must in ignored, ".dockerignore excludes %s" % must)
    for needed in ("scripts", "deploy", "cmake", "core", "server", "client", "tests", "CMakeLists.txt", "Dockerfile"):
        check(not any(re.fullmatch(p.replace("*", ".*"), needed) for p in ignored), ".dockerignore keeps %s" % needed)


def check_entrypoint(a):
    """Every server flag but --port_file has a variable, and the script really starts the server."""
    flags = server_flags(a.server)
    mapping = entrypoint_mapping(a.repo)
    for var, flag in mapping.items():
        check(flag in flags, "entrypoint maps %s to --%s, a rtnq-server flag" % (var, flag))
        check(var == "RTNQ_" + flag.upper(), "entrypoint variable %s is RTNQ_ + the flag name" % var)
    for flag in set(flags) - {"port_file"}:
        check(flag in mapping.values(), "entrypoint maps a variable to --%s" % flag)
    with tempfile.TemporaryDirectory() as tmp:
        port_file = os.path.join(tmp, "port")
        env = dict(os.environ, PATH=os.path.dirname(os.path.abspath(a.server)) + ":" + os.environ["PATH"],
                   RTNQ_LISTEN="127.0.0.1:0", RTNQ_METRICS_LISTEN="127.0.0.1:0", RTNQ_THREADS="1",
                   RTNQ_MAX_STREAMS="7", RTNQ_AUTH_TOKEN_FILE="", RTNQ_PORT="tcp://10.0.0.1:50051")
        log = open(os.path.join(tmp, "log"), "w+")
        p = subprocess.Popen(["bash", os.path.join(a.repo, "deploy/docker/entrypoint.sh"), "--port_file", port_file,
                              "--shutdown_grace=1"], env=env, stderr=log, stdout=log)
        try:
            deadline = time.time() + 20
            line = None
            while time.time() < deadline and p.poll() is None:
                log.seek(0)
                line = re.search(r"server start port=(\d+) metrics_port=(\d+) .*threads=(\d+) .*max_streams=(\d+)", log.read())
                if line and os.path.exists(port_file):
                    break
                time.sleep(0.05)
            if check(line is not None, "server started through the entrypoint"):
                check(line.group(3) == "1" and line.group(4) == "7", "RTNQ_THREADS / RTNQ_MAX_STREAMS reached the server")
                body = urllib.request.urlopen("http://127.0.0.1:%s/metrics" % line.group(2), timeout=10).read().decode()
                check("rtnq_build_info" in body, "RTNQ_METRICS_LISTEN enabled /metrics")
                if a.cli:  # the image's HEALTHCHECK command, against the server the entrypoint started
                    with open(port_file) as f:
                        port = f.read().strip()
                    h = run([a.cli, "health", "--server", "127.0.0.1:" + port], timeout=30)
                    check(h.returncode == 0 and h.stdout.strip() == "SERVING",
                          "rtnq health --server 127.0.0.1:%s: exit %d, %s%s" % (port, h.returncode, h.stdout, h.stderr))
            p.send_signal(signal.SIGTERM)
            check(p.wait(timeout=20) == 0, "SIGTERM through the entrypoint (exec) exits 0")
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
            log.seek(0)
            if FAILURES:
                print(log.read())


def package_owners(paths):
    """{path: Debian package} for the paths dpkg knows, with one `dpkg -S` call per spelling
    (Debian's merged /usr: ldd says /lib/..., dpkg may have recorded /usr/lib/... or the reverse)."""
    owners = {}
    for spell in (lambda p: p, os.path.realpath, lambda p: "/usr" + os.path.realpath(p)):
        todo = {spell(p): p for p in paths if p not in owners}
        if not todo:
            break
        out = run([tool("dpkg"), "-S"] + sorted(todo)).stdout
        for m in re.finditer(r"^([^:\s]+)(?::\w+)?: (\S+)$", out, re.M):
            if m.group(2) in todo:
                owners[todo[m.group(2)]] = m.group(1)
    return owners


def check_runtime_deps(a):
    """deploy/runtime-deps.txt == the packages owning the binaries' directly needed libraries."""
    listed = {l.strip() for l in read(a.repo, "deploy/runtime-deps.txt").splitlines() if l.strip() and not l.strip().startswith("#")}
    needed_pkgs = set()
    for binary in filter(None, (a.server, a.cli)):
        needed = re.findall(r"\(NEEDED\)\s+Shared library: \[(.+?)\]", run([tool("readelf"), "-d", binary]).stdout)
        ldd = run([tool("ldd"), binary]).stdout
        paths = dict(re.findall(r"^\s*(\S+) => (\S+)", ldd, re.M))
        paths.update({os.path.basename(p): p for p in re.findall(r"^\s*(/\S+) \(", ldd, re.M)})  # the loader
        check(needed, "readelf lists the libraries of %s" % binary)
        resolved = {lib: paths.get(lib) for lib in needed}
        for lib, path in resolved.items():
            check(path and path.startswith("/"), "%s: %s resolves (ldd: %s)" % (binary, lib, path))
        owners = package_owners([p for p in resolved.values() if p and p.startswith("/")])
        for lib, path in resolved.items():
            owner = owners.get(path)
            if path and check(owner, "%s (%s) belongs to a Debian package" % (lib, path)):
                needed_pkgs.add(owner)
                check(owner in listed, "deploy/runtime-deps.txt lists %s (for %s of %s)" % (owner, lib, os.path.basename(binary)))
    if a.cli:  # with both binaries known, nothing listed may be stale
        for p in sorted(listed - needed_pkgs):
            check(False, "deploy/runtime-deps.txt lists %s, which neither binary needs" % p)


CHECKS = {
    "compose": check_compose, "prometheus": check_prometheus, "grafana": check_grafana, "k8s": check_k8s,
    "dockerfile": check_dockerfile, "entrypoint": check_entrypoint, "runtime-deps": check_runtime_deps,
}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("check", choices=sorted(CHECKS))
    ap.add_argument("--repo", required=True)
    ap.add_argument("--server", help="rtnq-server binary")
    ap.add_argument("--cli", help="rtnq binary (when built)")
    a = ap.parse_args()
    CHECKS[a.check](a)
    if FAILURES:
        print("%s: %d failed expectation(s):" % (a.check, len(FAILURES)))
        for f in FAILURES:
            print("  FAIL", f)
        sys.exit(1)
    print("%s: ok" % a.check)


if __name__ == "__main__":
    main()
