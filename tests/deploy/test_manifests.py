"""deploy/k8s offline: `kubectl kustomize` renders the base and the example overlay, every
rendered object validates against the Kubernetes API schemas (npm kubernetes-models, run with
node: validate.mjs), and the manifests agree with the binaries and with each other:

  - every flag in a manifest (command line or HEADWATER_<FLAG> variable, ConfigMaps included)
    is one the binary's --help lists;
  - every probe's path is one the admin listener serves, on a port the container declares and
    sets as its --admin-listen;
  - every PodDisruptionBudget and Service selects the pods of a workload, and no admin port
    leaves the cluster through a LoadBalancer or NodePort Service;
  - the StatefulSet's --peers are ID=<pod>.<headless service>.<namespace>...:<rpc port> with
    ID = ordinal + 1 for every ordinal, and each ordinal has its raft Service;
  - every Secret and ConfigMap a pod references exists (the base leaves Secrets to overlays);
  - the overlay's node and gateway containers, run as local processes with the rendered
    environment, ConfigMaps, Secret files and the node's entrypoint script, make 3 ready nodes
    and a ready gateway (bad option values, keys or certificates fail here).

Environment: HW_NODE_BIN, HW_GATEWAY_BIN (meson sets them). Ends with `hwtest: N passed, N
failed`."""
import base64
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

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "integration"))
import hwtest  # noqa: E402
from cluster import HOST, free_ports  # noqa: E402
import yaml  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
K8S = os.environ.get("HW_K8S_DIR") or os.path.join(ROOT, "deploy", "k8s")  # override: fault runs
OVERLAY = "overlays/example"
# What each binary's admin listener serves (node/admin/admin.c, gateway/admin.c).
PROBE_PATHS = {"headwater-node": {"/healthz", "/readyz", "/metrics"},
               "headwater-gateway": {"/healthz", "/readyz", "/metrics", "/status"}}
BINS = {"headwater-node": "HW_NODE_BIN", "headwater-gateway": "HW_GATEWAY_BIN"}

TESTS = []
test = hwtest.collector(TESTS)


class Rendered:
    """deploy/k8s copied to a temp dir (with example secrets made there), rendered once."""

    def start(self):
        ensure_node_modules()
        self.tmp = tempfile.mkdtemp(prefix="hw-deploy-")
        self.k8s = os.path.join(self.tmp, "k8s")
        shutil.copytree(K8S, self.k8s, ignore=shutil.ignore_patterns("secrets"))
        subprocess.run(["sh", os.path.join(self.k8s, OVERLAY, "make-secrets.sh"),
                        os.path.join(self.k8s, OVERLAY, "secrets")], check=True,
                       stdout=subprocess.DEVNULL)
        self.docs = {}
        self.flags = {b: help_flags(os.environ[v]) for b, v in BINS.items()}

    def render(self, which):
        if which not in self.docs:
            out = subprocess.run(["kubectl", "kustomize", os.path.join(self.k8s, which)],
                                 check=True, capture_output=True, text=True).stdout
            self.docs[which] = [d for d in yaml.safe_load_all(out) if d]
        return self.docs[which]

    def stop(self):
        return []

    def cleanup(self, keep=False):
        if hasattr(self, "tmp") and not keep:
            shutil.rmtree(self.tmp, ignore_errors=True)


def ensure_node_modules():
    """npm ci into tests/deploy/node_modules (gitignored) once; reruns reuse it."""
    mark = os.path.join(HERE, "node_modules", "kubernetes-models", "package.json")
    if not os.path.exists(mark):
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=HERE,
                       check=True)


def help_flags(binary):
    out = subprocess.run([binary, "--help"], check=True, capture_output=True, text=True).stdout
    return set(re.findall(r"^\s+(--[a-z0-9-]+)", out, re.M))


def of_kind(docs, kind):
    return [d for d in docs if d["kind"] == kind]


def one(docs, kind, name):
    found = [d for d in of_kind(docs, kind) if d["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind}/{name}, found {len(found)}"
    return found[0]


def workloads(docs):
    return of_kind(docs, "StatefulSet") + of_kind(docs, "Deployment")


def containers(w):
    return w["spec"]["template"]["spec"]["containers"]


def binary_of(c):
    text = " ".join(c.get("command", []) + c.get("args", []))
    names = [b for b in BINS if f"/usr/bin/{b}" in text]
    assert len(names) == 1, f"container {c['name']}: runs {names or 'no headwater binary'}"
    return names[0]


def env_value(c, name):
    for e in c.get("env", []):
        if e["name"] == name:
            return e.get("value")
    return None


def manifest_flags(docs, c):
    """(flag, where) for every flag the container passes: command line and HEADWATER_*."""
    out = []
    text = " ".join(c.get("command", []) + c.get("args", []))
    for f in re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)", text):
        out.append((f, "command line"))
    names = [(e["name"], f"env {e['name']}") for e in c.get("env", [])]
    for ef in c.get("envFrom", []):
        ref = ef.get("configMapRef", {}).get("name")
        for cm in of_kind(docs, "ConfigMap"):
            if cm["metadata"]["name"] == ref:
                names += [(k, f"ConfigMap {ref} key {k}") for k in cm.get("data", {})]
    for name, where in names:
        if name.startswith("HEADWATER_"):
            out.append(("--" + name[len("HEADWATER_"):].lower().replace("_", "-"), where))
    return out


def selects(selector, labels):
    return all(labels.get(k) == v for k, v in selector.items())


@test
def renders_and_validates(r):
    for which in ("base", OVERLAY):
        docs = r.render(which)
        assert docs, f"{which} rendered nothing"
        path = os.path.join(r.tmp, which.replace("/", "_") + ".json")
        with open(path, "w") as f:
            json.dump(docs, f)
        p = subprocess.run(["node", os.path.join(HERE, "validate.mjs"), path],
                           capture_output=True, text=True, cwd=HERE)
        print(p.stdout + p.stderr, end="")
        assert p.returncode == 0, f"{which}: objects fail the Kubernetes schemas"
    kinds = {d["kind"] for d in r.render(OVERLAY)}
    for k in ("StatefulSet", "Deployment", "Service", "PodDisruptionBudget",
              "HorizontalPodAutoscaler", "ConfigMap", "Secret", "Namespace"):
        assert k in kinds, f"the overlay renders no {k}"


@test
def every_flag_is_one_the_binary_accepts(r):
    unknown = []
    for which in ("base", OVERLAY):
        docs = r.render(which)
        for w in workloads(docs):
            for c in containers(w):
                b = binary_of(c)
                for flag, where in manifest_flags(docs, c):
                    if flag not in r.flags[b]:
                        unknown.append(f"{which}: {w['kind']}/{w['metadata']['name']} {where}: "
                                       f"{b} does not accept {flag}")
    assert not unknown, "flags the binaries' --help does not list:\n  " + "\n  ".join(
        sorted(set(unknown)))


@test
def probes_hit_the_admin_listener(r):
    for w in workloads(r.render(OVERLAY)):
        for c in containers(w):
            b = binary_of(c)
            ports = {p["name"]: p["containerPort"] for p in c.get("ports", [])}
            admin = env_value(c, "HEADWATER_ADMIN_LISTEN")
            assert admin, f"{c['name']}: no HEADWATER_ADMIN_LISTEN"
            probes = [("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")]
            if "startupProbe" in c:
                probes.append(("startupProbe", "/healthz"))
            for kind, path in probes:
                probe = c.get(kind)
                assert probe and "httpGet" in probe, f"{c['name']}: no HTTP {kind}"
                g = probe["httpGet"]
                assert g["path"] == path, f"{c['name']} {kind}: {g['path']}, want {path}"
                assert g["path"] in PROBE_PATHS[b], f"{b} does not serve {g['path']}"
                port = ports.get(g["port"], g["port"])
                assert admin.endswith(f":{port}"), \
                    f"{c['name']} {kind} port {g['port']} is not --admin-listen {admin}"


@test
def selectors_match_pods(r):
    docs = r.render(OVERLAY)
    pods = [(w, w["spec"]["template"]["metadata"]["labels"]) for w in workloads(docs)]
    for w, labels in pods:
        assert selects(w["spec"]["selector"]["matchLabels"], labels), w["metadata"]["name"]
    for pdb in of_kind(docs, "PodDisruptionBudget"):
        sel = pdb["spec"]["selector"]["matchLabels"]
        hit = [w["metadata"]["name"] for w, labels in pods if selects(sel, labels)]
        assert len(hit) == 1, f"PDB {pdb['metadata']['name']} selects {hit}"
        assert pdb["spec"].get("maxUnavailable") == 1, pdb
    for svc in of_kind(docs, "Service"):
        sel = dict(svc["spec"]["selector"])
        sel.pop("statefulset.kubernetes.io/pod-name", None)
        hit = [w for w, labels in pods if selects(sel, labels)]
        assert len(hit) == 1, f"Service {svc['metadata']['name']} selects {len(hit)} workloads"
        names = {p["name"] for c in containers(hit[0]) for p in c.get("ports", [])}
        for p in svc["spec"]["ports"]:
            assert p["targetPort"] in names, f"{svc['metadata']['name']}: no port {p}"
        if svc["spec"].get("type") in ("LoadBalancer", "NodePort"):
            assert all(p["targetPort"] != "admin" for p in svc["spec"]["ports"]), \
                f"Service {svc['metadata']['name']} exposes an admin port outside the cluster"
    hpa = one(docs, "HorizontalPodAutoscaler", "headwater-gateway")
    ref = hpa["spec"]["scaleTargetRef"]
    one(docs, ref["kind"], ref["name"])


@test
def peers_resolve_to_the_headless_services_pods(r):
    docs = r.render(OVERLAY)
    for sts in of_kind(docs, "StatefulSet"):
        name, svc_name = sts["metadata"]["name"], sts["spec"]["serviceName"]
        ns = sts["metadata"].get("namespace")
        svc = one(docs, "Service", svc_name)
        assert svc["spec"].get("clusterIP") == "None", f"{svc_name} is not headless"
        assert svc["spec"].get("publishNotReadyAddresses") is True, \
            f"{svc_name}: bootstrap needs not-ready pods in DNS"
        assert sts["spec"].get("podManagementPolicy") == "Parallel", \
            "OrderedReady deadlocks the first bootstrap (every voter must be up)"
        c = containers(sts)[0]
        rpc = {p["name"]: p["containerPort"] for p in c["ports"]}["rpc"]
        assert env_value(c, "HEADWATER_LISTEN").endswith(f":{rpc}")
        assert any(e["name"] == "POD_NAMESPACE" and
                   e["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace"
                   for e in c["env"] if "valueFrom" in e), "POD_NAMESPACE from the downward API"
        n = sts["spec"]["replicas"]
        want = [f"{i + 1}={name}-{i}.{svc_name}.$(POD_NAMESPACE).svc.cluster.local:{rpc}"
                for i in range(n)]
        got = env_value(c, "HEADWATER_PEERS").split(",")
        assert got == want, f"--peers of {name}:\n  got  {got}\n  want {want}"
        script = " ".join(c["args"])
        assert '--id "$((ord + 1))"' in script and 'ord="${HOSTNAME##*-}"' in script, script
        for i in range(n):
            raft = one(docs, "Service", f"{name}-{i}-raft")
            assert raft["spec"]["selector"]["statefulset.kubernetes.io/pod-name"] == f"{name}-{i}"
            assert raft["spec"].get("publishNotReadyAddresses") is True
        assert "headwater-node-${ord}-raft" in script
        gw = one(docs, "Deployment", "headwater-gateway")
        nodes = env_value(containers(gw)[0], "HEADWATER_NODES").split(",")
        assert nodes == [p.split("=", 1)[1] for p in want], nodes
        assert ns == "headwater" or ns is None


@test
def referenced_secrets_and_configmaps_exist(r):
    for which in ("base", OVERLAY):
        docs = r.render(which)
        names = {(d["kind"], d["metadata"]["name"]) for d in docs}
        missing = []
        for w in workloads(docs):
            spec = w["spec"]["template"]["spec"]
            refs = [("Secret", v["secret"]["secretName"]) for v in spec.get("volumes", [])
                    if "secret" in v]
            refs += [("ConfigMap", v["configMap"]["name"]) for v in spec.get("volumes", [])
                     if "configMap" in v]
            for c in spec["containers"]:
                refs += [("ConfigMap", e["configMapRef"]["name"]) for e in c.get("envFrom", [])
                         if "configMapRef" in e]
                refs += [("Secret", e["secretRef"]["name"]) for e in c.get("envFrom", [])
                         if "secretRef" in e]
            for kind, name in refs:
                if (kind, name) not in names and not (which == "base" and kind == "Secret"):
                    missing.append(f"{which}: {w['metadata']['name']} needs {kind}/{name}")
        assert not missing, "\n".join(missing)
    docs = r.render(OVERLAY)
    tls = [s for s in of_kind(docs, "Secret") if s["type"] == "kubernetes.io/tls"]
    assert len(tls) == 1 and {"tls.crt", "tls.key"} <= set(tls[0]["data"]), tls


@test
def pods_run_unprivileged_read_only(r):
    for w in workloads(r.render(OVERLAY)):
        spec = w["spec"]["template"]["spec"]
        assert spec["securityContext"]["runAsNonRoot"] is True, w["metadata"]["name"]
        for c in spec["containers"]:
            sc = c["securityContext"]
            assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False
            assert c["resources"]["requests"] and c["resources"]["limits"], c["name"]
    sts = one(r.render(OVERLAY), "StatefulSet", "headwater-node")
    assert sts["spec"]["volumeClaimTemplates"][0]["metadata"]["name"] in {
        m["name"] for m in containers(sts)[0]["volumeMounts"]}


def pod_env(docs, c, ns):
    """The container's environment as the kubelet builds it: ConfigMaps (envFrom), then env
    with $(VAR) references expanded; the downward API's namespace is ns."""
    env = {}
    for ef in c.get("envFrom", []):
        env.update(one(docs, "ConfigMap", ef["configMapRef"]["name"]).get("data", {}))
    for e in c.get("env", []):
        if "valueFrom" in e:
            assert e["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace", e
            env[e["name"]] = ns
        else:
            env[e["name"]] = re.sub(r"\$\((\w+)\)", lambda m: env.get(m[1], m[0]), e["value"])
    return env


def mount_secrets(docs, w, root):
    """Write the pod's secret volumes under root; returns {mountPath: local dir}."""
    spec = w["spec"]["template"]["spec"]
    vols = {v["name"]: v["secret"]["secretName"] for v in spec.get("volumes", []) if "secret" in v}
    out = {}
    for m in spec["containers"][0].get("volumeMounts", []):
        if m["name"] not in vols:
            continue
        d = os.path.join(root, w["metadata"]["name"] + m["mountPath"].replace("/", "_"))
        os.makedirs(d, exist_ok=True)
        for k, v in one(docs, "Secret", vols[m["name"]])["data"].items():
            with open(os.path.join(d, k), "wb") as f:
                f.write(base64.b64decode(v.replace("\n", "")))
        out[m["mountPath"]] = d
    return out


def localise(env, mounts, addrs):
    """Pod addresses -> loopback ports picked here; mount paths -> local files."""
    out = {}
    for k, v in env.items():
        for name, local in addrs.items():
            v = v.replace(name, local)
        for path, local in mounts.items():
            if v.startswith(path + "/"):
                v = local + v[len(path):]
        out[k] = v
    return out


def http_status(port, path):
    try:
        with urllib.request.urlopen(f"http://{HOST}:{port}{path}", timeout=2) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code
    except OSError:
        return None


@test
def rendered_config_boots_a_cluster(r):
    """Run the overlay's node and gateway containers as processes on loopback: the rendered
    environment, ConfigMaps, Secret files and the node entrypoint script (with getent answering
    for the raft Services) must make 3 ready nodes and a ready gateway."""
    docs = r.render(OVERLAY)
    sts, gw = one(docs, "StatefulSet", "headwater-node"), one(docs, "Deployment", "headwater-gateway")
    ns, name, svc = sts["metadata"]["namespace"], sts["metadata"]["name"], sts["spec"]["serviceName"]
    n = sts["spec"]["replicas"]
    ports = free_ports(3 * n + 3)
    rpc, raft, admin = ports[:n], ports[n:2 * n], ports[2 * n:3 * n]
    gw_http, gw_tls, gw_admin = ports[3 * n:]
    addrs = {f"{name}-{i}.{svc}.{ns}.svc.cluster.local:7001": f"{HOST}:{rpc[i]}" for i in range(n)}
    shim = os.path.join(r.tmp, "bin")
    os.makedirs(shim, exist_ok=True)
    with open(os.path.join(shim, "getent"), "w") as f:  # the raft Services' ClusterIPs
        f.write(f'#!/bin/sh\ncase "$2" in {name}-*-raft.{ns}.svc.cluster.local) '
                f'echo "{HOST}  $2";; *) exit 2;; esac\n')
    os.chmod(os.path.join(shim, "getent"), 0o755)
    procs = []
    try:
        c = containers(sts)[0]
        mounts = mount_secrets(docs, sts, r.tmp)
        for i in range(n):
            env = localise(pod_env(docs, c, ns), mounts, dict(addrs, **{
                "0.0.0.0:7001": f"{HOST}:{rpc[i]}", "0.0.0.0:7101": f"{HOST}:{raft[i]}",
                "0.0.0.0:7080": f"{HOST}:{admin[i]}"}))
            env["HEADWATER_DATA_DIR"] = os.path.join(r.tmp, f"pv-{i}", "data")
            script = c["args"][0].replace("/usr/bin/headwater-node", os.environ["HW_NODE_BIN"])
            script = script.replace(":7101", f":{raft[i]}")
            env.update(HOSTNAME=f"{name}-{i}", PATH=shim + ":" + os.environ["PATH"])
            log = open(os.path.join(r.tmp, f"node{i}.log"), "wb")
            procs.append(subprocess.Popen(c["command"] + [script], env=env, stdout=log,
                                          stderr=subprocess.STDOUT))
        gc = containers(gw)[0]
        env = localise(pod_env(docs, gc, ns), mount_secrets(docs, gw, r.tmp), dict(addrs, **{
            "0.0.0.0:8080": f"{HOST}:{gw_http}", "0.0.0.0:8443": f"{HOST}:{gw_tls}",
            "0.0.0.0:9080": f"{HOST}:{gw_admin}"}))
        env["PATH"] = os.environ["PATH"]
        log = open(os.path.join(r.tmp, "gateway.log"), "wb")
        procs.append(subprocess.Popen([os.environ["HW_GATEWAY_BIN"]], env=env, stdout=log,
                                      stderr=subprocess.STDOUT))
        deadline = time.monotonic() + 90
        want = [(admin[i], f"node {i}") for i in range(n)] + [(gw_admin, "gateway")]
        while True:
            for p in procs:
                assert p.poll() is None, f"{p.args[0]} exited with {p.returncode}: " + tails(r)
            got = [(who, http_status(port, "/readyz")) for port, who in want]
            if all(st == 200 for _, st in got):
                break
            assert time.monotonic() < deadline, f"not ready after 90s: {got}\n" + tails(r)
            time.sleep(0.2)
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()


def tails(r):
    out = []
    for f in sorted(os.listdir(r.tmp)):
        if f.endswith(".log"):
            with open(os.path.join(r.tmp, f), "rb") as fh:
                lines = fh.read().decode("utf-8", "replace").splitlines()[-8:]
            out.append(f"==== {f}\n" + "\n".join(lines))
    return "\n".join(out)


if __name__ == "__main__":
    hwtest.main(TESTS, fixture=Rendered)
