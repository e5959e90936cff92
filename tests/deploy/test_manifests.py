"""deploy/k8s offline: `kubectl kustomize` renders the base and the example overlay, every
rendered object validates against the Kubernetes API schemas (npm kubernetes-models, run with
node: validate.mjs), and the manifests agree with the binaries and with each other:

  - every flag in a manifest (command line or HEADWATER_<FLAG> variable, ConfigMaps included)
    is one the binary's --help lists;
  - every probe's path is one the admin listener serves, on a port the container declares and
    sets as its --admin-listen;
  - every PodDisruptionBudget and Service selects the pods of a workload;
  - the StatefulSet's --peers are ID=<pod>.<headless service>.<namespace>...:<rpc port> with
    ID = ordinal + 1 for every ordinal, and each ordinal has its raft Service;
  - every Secret and ConfigMap a pod references exists (the base leaves Secrets to overlays).

Environment: HW_NODE_BIN, HW_GATEWAY_BIN (meson sets them). Ends with `hwtest: N passed, N
failed`."""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "integration"))
import hwtest  # noqa: E402
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
        print(p.stdout, p.stderr, end="")
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
            for kind, path in (("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")):
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


if __name__ == "__main__":
    hwtest.main(TESTS, fixture=Rendered)
