"""deploy/k8s rendered by kustomize and checked offline.

Every built-in kind is validated strictly against the Kubernetes schemas of the oldest and the
newest version we support (kubernetes-validate). KEDA's ScaledObject has no schema there, so its
required fields and references are checked here, and so is what the schemas cannot know: probes
on the paths and ports each service serves, settings each binary has, hardened pods, a PDB per
Deployment, Services that select pods.
"""

import base64
import os
import re
import shutil
import subprocess
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
BIN_DIR = Path(os.environ.get("SLUICE_BIN_DIR", ROOT / "target" / "debug"))
# The oldest Kubernetes still in common support, and the newest the schemas know.
VERSIONS = ["1.29.0", "1.37.0"]
TREES = ["base", "overlays/example", "overlays/tls", "overlays/auth"]
ROLES = {"sluice-ingest": "ingest", "sluice-gateway": "gateway", "sluice-worker": "worker"}


def kustomize(tree):
    """The rendered documents of one kustomization (kustomize ≥ 4, alone or inside kubectl)."""
    if shutil.which("kustomize"):
        cmd = ["kustomize", "build", str(K8S / tree)]
    elif shutil.which("kubectl"):
        cmd = ["kubectl", "kustomize", str(K8S / tree)]
    else:
        pytest.fail("rendering deploy/k8s needs kustomize, or kubectl ≥ 1.21 (kustomize v4+)")
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, f"{' '.join(cmd)} failed: {out.stderr}"
    return [d for d in yaml.safe_load_all(out.stdout) if d]


@pytest.fixture(scope="module", params=TREES)
def rendered(request):
    docs = kustomize(request.param)
    return request.param, docs


def of_kind(docs, kind):
    return [d for d in docs if d["kind"] == kind]


def named(docs, kind, name):
    found = [d for d in of_kind(docs, kind) if d["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name}, found {len(found)}"
    return found[0]


def namespace_of(doc):
    return doc["metadata"].get("namespace", "default")


def containers(deployment):
    return deployment["spec"]["template"]["spec"]["containers"]


def test_renders_the_three_services(rendered):
    _, docs = rendered
    assert {d["metadata"]["name"] for d in of_kind(docs, "Deployment")} == set(ROLES)


@pytest.mark.parametrize("version", VERSIONS)
def test_every_builtin_kind_is_valid(rendered, version):
    tree, docs = rendered
    builtin = [d for d in docs if "keda.sh" not in d["apiVersion"]]
    assert len(builtin) >= 10
    for doc in builtin:
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as e:
            pytest.fail(f"{tree}: {doc['kind']} {doc['metadata']['name']} on {version}: {e.message} at {list(e.path)}")


def test_scaledobject_scales_workers_on_the_backlog(rendered):
    tree, docs = rendered
    (scaled,) = of_kind(docs, "ScaledObject")
    assert scaled["apiVersion"] == "keda.sh/v1alpha1"
    spec = scaled["spec"]
    # KEDA's required fields: the target and at least one trigger with a type and metadata.
    target = spec["scaleTargetRef"]
    assert target.get("kind", "Deployment") == "Deployment"
    worker = named(docs, "Deployment", target["name"])
    assert worker["metadata"]["name"] == "sluice-worker"
    assert "replicas" not in worker["spec"], "KEDA owns the worker count"
    assert namespace_of(scaled) == namespace_of(worker)
    assert 1 <= spec["minReplicaCount"] <= spec["maxReplicaCount"]
    for field in ("pollingInterval", "cooldownPeriod", "minReplicaCount", "maxReplicaCount"):
        assert isinstance(spec[field], int) and spec[field] >= 0, field
    (trigger,) = spec["triggers"]
    assert trigger["type"] == "metrics-api"
    assert trigger.get("metricType", "AverageValue") in ("AverageValue", "Value", "Utilization")
    meta = trigger["metadata"]
    assert meta["format"] == "json"
    # KEDA reads trigger metadata as strings.
    for field in ("targetValue", "activationTargetValue"):
        assert isinstance(meta[field], str) and float(meta[field]) > 0, field
    # waiting + in flight, never LLEN alone: a field the gateway documents as exactly that.
    assert meta["valueLocation"] == "backlog"
    documented = (ROOT / "proto-docs" / "websocket.md").read_text()
    assert re.search(r"^\| `backlog` \| integer \| `queue_depth \+ in_flight`", documented, re.M)
    # The URL is the gateway Service's cluster DNS name in the namespace the objects land in.
    scheme = "https" if tree == "overlays/tls" else "http"
    m = re.fullmatch(scheme + r"://([a-z0-9-]+)\.([a-z0-9-]+)\.svc(?:\.cluster\.local)?:(\d+)/stats", meta["url"])
    assert m, meta["url"]
    service = named(docs, "Service", m.group(1))
    assert m.group(2) == namespace_of(service), f"{tree}: the URL names namespace {m.group(2)}"
    assert int(m.group(3)) in [p["port"] for p in service["spec"]["ports"]]
    assert service["spec"]["selector"] == {"app.kubernetes.io/name": "sluice-gateway"}


def help_text(binary):
    path = BIN_DIR / binary
    assert path.exists(), f"{path} is missing: cargo build --workspace --bins first (or set SLUICE_BIN_DIR)"
    return subprocess.run([path, "--help"], capture_output=True, text=True, timeout=30, check=True).stdout


def test_each_service_runs_its_binary_with_settings_it_has(rendered):
    tree, docs = rendered
    for deployment in of_kind(docs, "Deployment"):
        name = deployment["metadata"]["name"]
        (container,) = containers(deployment)
        assert container["command"] == [name]
        assert container["image"].split("/")[-1].split(":")[0] == "sluice"
        known = set(re.findall(r"SLUICE__[A-Z0-9_]+", help_text(name)))
        configured = [e["name"] for e in container.get("env", [])]
        for e in container.get("env", []):
            ref = e.get("valueFrom", {}).get("secretKeyRef")
            if ref and tree != "base":
                assert e["name"] in named(docs, "Secret", ref["name"])["data"], e["name"]
        for source in container["envFrom"]:
            kind, ref = ("ConfigMap", source["configMapRef"]) if "configMapRef" in source else ("Secret", source["secretRef"])
            found = [d for d in of_kind(docs, kind) if d["metadata"]["name"] == ref["name"]]
            if found:
                configured += list(found[0]["data"])
            else:
                assert (kind, tree) == ("Secret", "base"), f"{name} refers to a missing {kind} {ref['name']}"
        settings = [v for v in configured if v.startswith("SLUICE__")]
        # A secret setting may be given as the file holding it (`…_FILE`, mounted from a Secret).
        unknown = [v for v in settings if v not in known and v.removesuffix("_FILE") not in known]
        assert not unknown, f"{name} has no such settings: {unknown}"
        if tree != "base":
            needs = {"SLUICE__REDIS__URL"} | ({"SLUICE__POSTGRES__URL"} if name != "sluice-gateway" else set())
            assert needs <= set(settings), name


def test_the_secret_comes_from_the_overlay(rendered):
    tree, docs = rendered
    secrets = of_kind(docs, "Secret")
    if tree == "base":
        assert not secrets, "the base carries no connection settings"
        return
    (secret,) = secrets
    assert set(secret["data"]) == {"SLUICE__REDIS__URL", "SLUICE__POSTGRES__URL"}
    for deployment in of_kind(docs, "Deployment"):
        (container,) = containers(deployment)
        refs = {s["secretRef"]["name"] for s in container["envFrom"] if "secretRef" in s}
        refs |= {e["valueFrom"]["secretKeyRef"]["name"] for e in container.get("env", []) if "secretKeyRef" in e.get("valueFrom", {})}
        assert refs == {secret["metadata"]["name"]}, deployment["metadata"]["name"]


def listen_port(container):
    env = {e["name"]: e.get("value", "") for e in container.get("env", [])}
    listens = [v for k, v in env.items() if k.endswith("__LISTEN")]
    assert len(listens) == 1, f"{container['name']} sets one listen address: {listens}"
    return int(listens[0].rsplit(":", 1)[1])


def test_probes_ask_the_service_on_its_port(rendered):
    _, docs = rendered
    for deployment in of_kind(docs, "Deployment"):
        (container,) = containers(deployment)
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        assert list(ports.values()) == [listen_port(container)]
        for probe, path in (("readinessProbe", "/ready"), ("livenessProbe", "/health")):
            get = container[probe]["httpGet"]
            assert get["path"] == path, f"{deployment['metadata']['name']} {probe}"
            assert ports.get(get["port"], get["port"]) == listen_port(container)


def quantity(value):
    """A CPU or memory quantity in base units (cores, bytes)."""
    value = str(value)
    units = {"m": 1e-3, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "k": 1e3, "M": 1e6, "G": 1e9}
    for suffix, factor in sorted(units.items(), key=lambda u: -len(u[0])):
        if value.endswith(suffix):
            return float(value[: -len(suffix)]) * factor
    return float(value)


def test_pods_are_non_root_hardened_and_bounded(rendered):
    _, docs = rendered
    for deployment in of_kind(docs, "Deployment"):
        name = deployment["metadata"]["name"]
        pod = deployment["spec"]["template"]["spec"]
        assert pod["automountServiceAccountToken"] is False
        security = pod["securityContext"]
        assert security["runAsNonRoot"] is True and security["runAsUser"] > 0, name
        assert security["seccompProfile"]["type"] == "RuntimeDefault"
        (container,) = containers(deployment)
        own = container["securityContext"]
        assert own["allowPrivilegeEscalation"] is False and own["readOnlyRootFilesystem"] is True
        assert own["capabilities"]["drop"] == ["ALL"]
        resources = container["resources"]
        for what in ("cpu", "memory"):
            request, limit = resources["requests"][what], resources["limits"][what]
            assert 0 < quantity(request) <= quantity(limit), f"{name} {what}: {request} > {limit}"


def test_termination_grace_covers_the_shutdown(rendered):
    _, docs = rendered
    grace = {d["metadata"]["name"]: d["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] for d in of_kind(docs, "Deployment")}
    # A worker commits its batch in hand; ingest waits up to ingest.body_timeout_ms (15 s) for a
    # slow upload after the 5 s preStop pause; the gateway gives its streams 5 s.
    assert grace["sluice-worker"] >= 30
    assert grace["sluice-ingest"] >= 5 + 15
    assert grace["sluice-gateway"] >= 5 + 5


def selects(selector, labels):
    return all(labels.get(k) == v for k, v in selector.items())


def test_every_deployment_has_a_pdb_and_services_select_pods(rendered):
    _, docs = rendered
    pdbs = of_kind(docs, "PodDisruptionBudget")
    for deployment in of_kind(docs, "Deployment"):
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        covering = [p for p in pdbs if selects(p["spec"]["selector"]["matchLabels"], labels)]
        assert len(covering) == 1, deployment["metadata"]["name"]
        spec = covering[0]["spec"]
        assert spec.get("minAvailable", 0) >= 1 or spec.get("maxUnavailable", 0) >= 1
    for service in of_kind(docs, "Service"):
        targets = [d for d in of_kind(docs, "Deployment") if selects(service["spec"]["selector"], d["spec"]["template"]["metadata"]["labels"])]
        assert len(targets) == 1, service["metadata"]["name"]
        port_names = {p["name"] for p in containers(targets[0])[0]["ports"]}
        assert all(p["targetPort"] in port_names for p in service["spec"]["ports"])


def test_the_tls_overlay_encrypts_every_hop():
    docs = kustomize("overlays/tls")
    (secret,) = of_kind(docs, "Secret")
    urls = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
    assert urls["SLUICE__REDIS__URL"].startswith("rediss://")
    assert "sslmode=verify-full" in urls["SLUICE__POSTGRES__URL"]
    for deployment in of_kind(docs, "Deployment"):
        name = deployment["metadata"]["name"]
        section = ROLES[name].upper()
        pod = deployment["spec"]["template"]
        (container,) = containers(deployment)
        env = {e["name"]: e.get("value") for e in container.get("env", [])}
        (volume,) = [v for v in pod["spec"]["volumes"] if v["name"] == "tls"]
        assert volume["secret"]["secretName"] == "sluice-tls"
        (mount,) = [m for m in container["volumeMounts"] if m["name"] == "tls"]
        assert mount["readOnly"]
        for key, file in (("CERT_FILE", "tls.crt"), ("KEY_FILE", "tls.key")):
            assert env[f"SLUICE__{section}__TLS__{key}"] == f"{mount['mountPath']}/{file}", name
        assert env["SLUICE__REDIS__TLS_CA_FILE"] == f"{mount['mountPath']}/ca.crt"
        assert f"sslrootcert={mount['mountPath']}/ca.crt" in urls["SLUICE__POSTGRES__URL"]
        for probe in ("readinessProbe", "livenessProbe"):
            assert container[probe]["httpGet"]["scheme"] == "HTTPS", f"{name} {probe}"
        assert pod["metadata"]["annotations"]["prometheus.io/scheme"] == "https"
    (scaled,) = of_kind(docs, "ScaledObject")
    (trigger,) = scaled["spec"]["triggers"]
    assert trigger["metadata"]["authMode"] == "tls"
    auth = [d for d in docs if d["kind"] == "TriggerAuthentication"]
    assert [a["metadata"]["name"] for a in auth] == [trigger["authenticationRef"]["name"]]
    params = {p["parameter"]: (p["name"], p["key"]) for p in auth[0]["spec"]["secretTargetRef"]}
    assert params["ca"] == ("sluice-tls", "ca.crt")


def test_the_auth_overlay_checks_every_caller():
    docs = kustomize("overlays/auth")
    for name, section in (("sluice-ingest", "INGEST"), ("sluice-gateway", "GATEWAY")):
        deployment = named(docs, "Deployment", name)
        (container,) = containers(deployment)
        env = {e["name"]: e.get("value") for e in container["env"]}
        assert env["SLUICE__AUTH__MODE"] == "keys", name
        token_file = env[f"SLUICE__{section}__ADMIN_TOKEN_FILE"]
        mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
        mount = next(path for path in mounts if token_file.startswith(path + "/"))
        volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
        assert volumes[mounts[mount]]["secret"]["secretName"] == "sluice-auth", name
    (scaled,) = of_kind(docs, "ScaledObject")
    (trigger,) = scaled["spec"]["triggers"]
    assert trigger["metadata"]["authMode"] == "bearer"
    auth = named(docs, "TriggerAuthentication", trigger["authenticationRef"]["name"])
    assert [r["parameter"] for r in auth["spec"]["secretTargetRef"]] == ["bearerToken"]
