#!/usr/bin/env bash
# Renders and validates the deployment files under deploy/.
#
#   ./scripts/check-deploy.sh
#
# - Kubernetes: renders each overlay of deploy/kubernetes with kubectl's
#   kustomize, validates every object against the Kubernetes API schemas in
#   strict mode (unknown fields are errors; an object of a kind without a
#   built-in schema is an error too), then checks what schemas cannot say:
#   references between the objects, probes, resources and security contexts.
# - Compose: validates deploy/compose.yaml against the Compose Specification's
#   JSON schema, interpolates it as Compose would (every ${VAR:?…} given a
#   stand-in value, every other variable unset), then validates the result
#   again, parses it with a typed Compose parser and checks its references.
# - Every CAIRN__SECTION__KEY variable named in deploy/ must be a key of
#   docs/configuration.md.
# - deploy/Dockerfile: hadolint.
# Before that, the validators are shown a broken Compose file and a broken
# Kubernetes object, and must reject both.
#
# Its tools (pinned in deploy/requirements-check.txt) are installed once into
# a virtualenv in the cache folder. Nothing here needs a cluster or a
# container engine.
#
# Environment:
#   CAIRN_CACHE_DIR  cache folder (default: ~/.cache/cairn)
set -euo pipefail

# shellcheck source=scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

DEPLOY="$ROOT/deploy"
OVERLAYS=(dev production)
# The oldest Kubernetes the manifests are written for (the sandbox hosts'
# user namespaces are on by default from 1.33) and the newest the validator
# knows.
KUBERNETES_VERSIONS=(1.33.0 1.37.0)

TMP=$(mktemp -d "${TMPDIR:-/tmp}/cairn-check-deploy.XXXXXX")
trap 'rm -rf "$TMP"' EXIT

# The validators, in a virtualenv keyed by their pinned requirements.
deploy_venv() {
    local requirements="$DEPLOY/requirements-check.txt" key venv
    if ! python3 -m venv --help >/dev/null 2>&1; then
        apt_install python3 python3-venv
    fi
    key=$(sha256sum "$requirements" | cut -c1-16)
    venv="$CAIRN_CACHE_DIR/venvs/deploy-$key"
    if [[ ! -f $venv/.complete ]]; then
        log "deploy: installing the validators (once; kept in the cache folder)" >&2
        rm -rf "$venv"
        python3 -m venv "$venv" >&2
        "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$requirements" >&2
        touch "$venv/.complete"
    fi
    printf '%s\n' "$venv"
}

VENV=$(deploy_venv)
PY="$VENV/bin/python"
KUBECTL="$VENV/bin/kubectl"

# The checks that need more than a schema, in Python (run with the venv's
# interpreter, which has PyYAML and the Compose parser).
cat >"$TMP/checks.py" <<'PY'
import json
import re
import sys
from pathlib import Path

import yaml


def fail(problems, what):
    if problems:
        for problem in problems:
            print(f"error: {what}: {problem}", file=sys.stderr)
        sys.exit(1)


# --- Compose ----------------------------------------------------------------

REFERENCE = re.compile(r"\$(?:\$|\{(?P<braced>[^}]*)\}|(?P<named>[A-Za-z_][A-Za-z0-9_]*)|(?P<bad>))")
BRACED = re.compile(r"^(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>.*))?$", re.S)


def interpolate(text, where, problems):
    """Compose's interpolation with ${VAR:?…}/${VAR?…} variables set to a
    stand-in and every other variable unset, so a variable with neither a
    default nor `?` (such as an nginx `$var` left unescaped) is an error."""

    def substitute(match):
        if match.group(0) == "$$":
            return "$"
        if match.group("bad") is not None:
            problems.append(f"{where}: `$` neither escaped as `$$` nor starting a variable in {text!r}")
            return ""
        braced = match.group("braced")
        if braced is None:
            problems.append(f"{where}: ${match.group('named')} has no default and is not required: Compose would substitute an empty string")
            return ""
        parsed = BRACED.match(braced)
        if not parsed or "$" in (parsed.group("arg") or ""):
            problems.append(f"{where}: unsupported interpolation ${{{braced}}}")
            return ""
        name, op, arg = parsed.group("name"), parsed.group("op"), parsed.group("arg")
        if op in (":?", "?"):
            return f"stand-in-{name.lower()}"
        if op in (":-", "-"):
            return arg
        if op in (":+", "+"):
            return ""
        problems.append(f"{where}: ${{{name}}} has no default and is not required: Compose would substitute an empty string")
        return ""

    return REFERENCE.sub(substitute, text)


def walk(value, where, problems):
    if isinstance(value, dict):
        return {key: walk(item, f"{where}.{key}", problems) for key, item in value.items()}
    if isinstance(value, list):
        return [walk(item, f"{where}[{index}]", problems) for index, item in enumerate(value)]
    if isinstance(value, str):
        return interpolate(value, where, problems)
    return value


def compose_interpolate(source, target):
    """Loads the Compose file (merge keys applied), interpolates it, drops
    the x- extension fields at the top and writes it as JSON."""
    document = yaml.safe_load(Path(source).read_text())
    problems = []
    document = walk(document, "compose", problems)
    fail(problems, source)
    document = {key: value for key, value in document.items() if not key.startswith("x-")}
    Path(target).write_text(json.dumps(document, indent=1))


def compose_check(path):
    """The interpolated file through the typed parser, and the references
    between its parts."""
    import compose_spec

    text = Path(path).read_text()
    try:
        compose_spec.PyCompose.from_json(text).validate()
    except Exception as error:  # the parser's errors are ValueErrors
        fail([str(error)], "compose_spec")
    document = json.loads(text)
    services = document.get("services", {})
    volumes = set(document.get("volumes") or {})
    configs = set(document.get("configs") or {})
    problems = []
    for name, service in services.items():
        if "image" not in service and "build" not in service:
            problems.append(f"service {name} has neither image nor build")
        depends = service.get("depends_on", {})
        for other in depends if isinstance(depends, (dict, list)) else []:
            if other not in services:
                problems.append(f"service {name} depends on {other}, which is not a service")
        for mount in service.get("volumes", []):
            source = mount.get("source") if isinstance(mount, dict) else (mount.split(":")[0] if ":" in mount else None)
            kind = mount.get("type", "volume") if isinstance(mount, dict) else "volume"
            if source and kind == "volume" and not source.startswith((".", "/", "~")) and source not in volumes:
                problems.append(f"service {name} mounts volume {source}, which is not declared under volumes")
        for config in service.get("configs", []):
            source = config["source"] if isinstance(config, dict) else config
            if source not in configs:
                problems.append(f"service {name} uses config {source}, which is not declared under configs")
        check = service.get("healthcheck", {}).get("test")
        if isinstance(check, list) and check[:1] not in (["CMD"], ["CMD-SHELL"], ["NONE"]):
            problems.append(f"service {name}: a healthcheck test list starts with CMD, CMD-SHELL or NONE")
    fail(problems, path)
    print(f"{len(services)} services, {len(volumes)} volumes, {len(configs)} configs: references resolve")


# --- Configuration keys -----------------------------------------------------

def config_keys(reference, *paths):
    """Every CAIRN__… variable named in the given files must be a key of the
    configuration reference (`section.key` is CAIRN__SECTION__KEY)."""
    known = set()
    for line in Path(reference).read_text().splitlines():
        if line.startswith("| `"):
            for key in re.findall(r"`([a-z0-9_.]+)`", line.split("|")[1]):
                known.add("CAIRN__" + key.upper().replace(".", "__"))
    if len(known) < 50:
        fail([f"only {len(known)} keys found: has the table's format changed?"], reference)
    used = {}
    for path in paths:
        for name in re.findall(r"\bCAIRN__[A-Z0-9_]*[A-Z0-9]", Path(path).read_text()):
            if name != "CAIRN__SECTION__KEY":
                used.setdefault(name, set()).add(Path(path).name)
    fail([f"{name} ({', '.join(sorted(used[name]))}) is not a configuration key"
          for name in sorted(used) if name not in known], "configuration keys")
    print(f"{len(used)} CAIRN__ variables, all keys of {Path(reference).name}")


# --- Kubernetes -------------------------------------------------------------

def pod_spec(obj):
    return obj["spec"]["template"]["spec"]


def k8s_check(path, namespace):
    """What the schemas cannot see in one rendered overlay."""
    objects = [obj for obj in yaml.safe_load_all(Path(path).read_text()) if obj]
    by_kind = {}
    for obj in objects:
        by_kind.setdefault(obj["kind"], {})[obj["metadata"]["name"]] = obj
    problems = []
    if namespace not in by_kind.get("Namespace", {}):
        problems.append(f"no Namespace {namespace}")
    for obj in objects:
        if obj["kind"] != "Namespace" and obj["metadata"].get("namespace") != namespace:
            problems.append(f"{obj['kind']}/{obj['metadata']['name']} is not in the namespace {namespace}")
    workloads = {
        name: obj for kind in ("Deployment", "StatefulSet") for name, obj in by_kind.get(kind, {}).items()
    }
    if not workloads:
        problems.append("no Deployment or StatefulSet")

    def data_of(kind, name):
        obj = by_kind.get(kind, {}).get(name)
        return None if obj is None else {**obj.get("data", {}), **obj.get("stringData", {})}

    def selects(selector, labels):
        return all(labels.get(key) == value for key, value in (selector or {}).items())

    for name, obj in workloads.items():
        where = f"{obj['kind']}/{name}"
        spec = pod_spec(obj)
        labels = obj["spec"]["template"]["metadata"].get("labels", {})
        if not selects(obj["spec"]["selector"].get("matchLabels"), labels):
            problems.append(f"{where}: its selector does not select its own pods")
        if spec.get("automountServiceAccountToken") is not False:
            problems.append(f"{where}: automountServiceAccountToken is not false")
        pod_security = spec.get("securityContext", {})
        sandbox_host = labels.get("app.kubernetes.io/component") == "sandbox-host"
        for container in spec["containers"]:
            cwhere = f"{where} container {container['name']}"
            security = container.get("securityContext", {})
            if not (security.get("runAsNonRoot") or pod_security.get("runAsNonRoot")):
                problems.append(f"{cwhere}: runAsNonRoot is not set")
            if security.get("privileged"):
                problems.append(f"{cwhere}: privileged")
            if security.get("allowPrivilegeEscalation") is not False:
                problems.append(f"{cwhere}: allowPrivilegeEscalation is not false")
            if security.get("readOnlyRootFilesystem") is not True:
                problems.append(f"{cwhere}: readOnlyRootFilesystem is not true")
            capabilities = security.get("capabilities", {})
            if "ALL" not in capabilities.get("drop", []) or capabilities.get("add"):
                problems.append(f"{cwhere}: capabilities are not all dropped")
            seccomp = (security.get("seccompProfile") or pod_security.get("seccompProfile") or {}).get("type")
            # Only the sandbox hosts may leave seccomp unconfined (bubblewrap).
            if seccomp != "RuntimeDefault" and not (sandbox_host and seccomp == "Unconfined"):
                problems.append(f"{cwhere}: seccompProfile is {seccomp}, not RuntimeDefault")
            resources = container.get("resources", {})
            for part in ("requests", "limits"):
                for resource in ("cpu", "memory"):
                    if resource not in resources.get(part, {}):
                        problems.append(f"{cwhere}: no {part}.{resource}")
            ports = {port.get("name") for port in container.get("ports", [])}
            for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
                handler = container.get(probe, {}).get("httpGet")
                if not handler:
                    problems.append(f"{cwhere}: no HTTP {probe}")
                elif isinstance(handler["port"], str) and handler["port"] not in ports:
                    problems.append(f"{cwhere}: {probe} uses port {handler['port']}, which it does not have")
            for source in container.get("envFrom", []):
                for kind, key in (("ConfigMap", "configMapRef"), ("Secret", "secretRef")):
                    if key in source and data_of(kind, source[key]["name"]) is None:
                        problems.append(f"{cwhere}: envFrom names {kind} {source[key]['name']}, which is not rendered")
            for variable in container.get("env", []):
                reference = variable.get("valueFrom", {})
                for kind, key in (("ConfigMap", "configMapKeyRef"), ("Secret", "secretKeyRef")):
                    if key in reference:
                        data = data_of(kind, reference[key]["name"])
                        if data is None or reference[key]["key"] not in data:
                            problems.append(
                                f"{cwhere}: {variable['name']} reads {kind} {reference[key]['name']} "
                                f"key {reference[key]['key']}, which is not rendered")
            mounts = {mount["name"] for mount in container.get("volumeMounts", [])}
            declared = {volume["name"] for volume in spec.get("volumes", [])}
            declared |= {claim["metadata"]["name"] for claim in obj["spec"].get("volumeClaimTemplates", [])}
            for missing in sorted(mounts - declared):
                problems.append(f"{cwhere}: mounts volume {missing}, which the pod does not declare")

    def selected(selector):
        return [name for name, obj in workloads.items()
                if selects(selector, obj["spec"]["template"]["metadata"].get("labels", {}))]

    for name, service in by_kind.get("Service", {}).items():
        targets = selected(service["spec"].get("selector"))
        if not targets:
            problems.append(f"Service/{name} selects no workload")
        for port in service["spec"].get("ports", []):
            target = port.get("targetPort")
            if isinstance(target, str) and not any(
                target in {p.get("name") for c in pod_spec(workloads[t])["containers"] for p in c.get("ports", [])}
                for t in targets
            ):
                problems.append(f"Service/{name}: targetPort {target} is no port of the pods it selects")
    for name, obj in by_kind.get("StatefulSet", {}).items():
        if obj["spec"].get("serviceName") not in by_kind.get("Service", {}):
            problems.append(f"StatefulSet/{name}: its serviceName is not a rendered Service")
    for name, budget in by_kind.get("PodDisruptionBudget", {}).items():
        if not selected(budget["spec"]["selector"].get("matchLabels")):
            problems.append(f"PodDisruptionBudget/{name} selects no workload")
    for name, scaler in by_kind.get("HorizontalPodAutoscaler", {}).items():
        target = scaler["spec"]["scaleTargetRef"]
        if target["name"] not in by_kind.get(target["kind"], {}):
            problems.append(f"HorizontalPodAutoscaler/{name} scales {target['kind']}/{target['name']}, which is not rendered")
        elif "replicas" in by_kind[target["kind"]][target["name"]]["spec"]:
            problems.append(f"HorizontalPodAutoscaler/{name}: {target['name']} sets replicas, which the HPA owns")
    for name, policy in by_kind.get("NetworkPolicy", {}).items():
        selector = policy["spec"]["podSelector"].get("matchLabels")
        if selector and not selected(selector):
            problems.append(f"NetworkPolicy/{name} selects no workload")
        # A named port the selected pods do not have lets nothing through.
        for rule in policy["spec"].get("ingress", []):
            for port in rule.get("ports", []):
                if not isinstance(port.get("port"), str):
                    continue
                for target in selected(selector) if selector else []:
                    names = {p.get("name") for c in pod_spec(workloads[target])["containers"] for p in c.get("ports", [])}
                    if port["port"] not in names:
                        problems.append(f"NetworkPolicy/{name}: port {port['port']} is no port of {target}")
    fail(problems, path)
    counts = ", ".join(f"{len(items)} {kind}" for kind, items in sorted(by_kind.items()))
    print(f"{len(objects)} objects ({counts}): references, probes, resources and security contexts check out")


if __name__ == "__main__":
    command, *arguments = sys.argv[1:]
    {
        "compose-interpolate": compose_interpolate,
        "compose-check": compose_check,
        "config-keys": config_keys,
        "k8s-check": k8s_check,
    }[command](*arguments)
PY

# Validates one file of Kubernetes objects in strict mode against every
# version in KUBERNETES_VERSIONS. kubernetes-validate only warns about a kind
# it has no schema for; here every line but "passed" is a failure.
k8s_validate() {
    local file=$1 version output rc passed
    for version in "${KUBERNETES_VERSIONS[@]}"; do
        rc=0
        output=$("$VENV/bin/kubernetes-validate" --strict -k "$version" "$file" 2>&1) || rc=$?
        passed=$(grep -c '^INFO .* passed for resource ' <<<"$output" || true)
        if [[ $rc -ne 0 ]] || grep -qv '^INFO .* passed for resource ' <<<"$output"; then
            grep -v '^INFO .* passed for resource ' <<<"$output" >&2 || true
            return 1
        fi
        echo "Kubernetes $version, strict: $passed objects valid"
    done
}

compose_schema() {
    "$VENV/bin/check-jsonschema" --builtin-schema vendor.compose-spec "$1"
}

# The validators must reject what is wrong, or their passes mean nothing.
self_test() {
    mkdir -p "$TMP/broken"
    sed 's/^    restart: unless-stopped$/    restart: unless-stopped\n    restart_policy_typo: always/' \
        "$DEPLOY/compose.yaml" >"$TMP/broken/compose.yaml"
    grep -q restart_policy_typo "$TMP/broken/compose.yaml" || die "self-test: could not break a copy of compose.yaml"
    if compose_schema "$TMP/broken/compose.yaml" >/dev/null 2>&1; then
        die "self-test: the Compose schema accepted a service with an unknown key"
    fi
    cat >"$TMP/broken/unknown-field.yaml" <<'EOF'
apiVersion: v1
kind: Service
metadata: {name: broken}
spec:
  ports: [{port: 8080, targetPrt: 8080}]
EOF
    cat >"$TMP/broken/unknown-kind.yaml" <<'EOF'
apiVersion: monitoring.coreos.com/v1
kind: ServiceMonitor
metadata: {name: not-built-in}
spec: {}
EOF
    if k8s_validate "$TMP/broken/unknown-field.yaml" >/dev/null 2>&1; then
        die "self-test: kubernetes-validate accepted an object with an unknown field"
    fi
    if k8s_validate "$TMP/broken/unknown-kind.yaml" >/dev/null 2>&1; then
        die "self-test: an object of a kind with no built-in schema passed"
    fi
    echo "CAIRN__SANDBOX__MAX_RUNING=4" >"$TMP/broken/typo.env"
    if "$PY" "$TMP/checks.py" config-keys "$ROOT/docs/configuration.md" "$TMP/broken/typo.env" >/dev/null 2>&1; then
        die "self-test: a misspelt configuration key passed"
    fi
    rm -rf "$TMP/broken"
    echo "rejected: a Compose service with an unknown key, a Kubernetes object with an" \
        "unknown field, an object of a kind with no built-in schema, a misspelt CAIRN__ key"
}

check_overlay() {
    local overlay=$1 rendered="$TMP/$1.yaml" namespace
    "$KUBECTL" kustomize "$DEPLOY/kubernetes/overlays/$overlay" >"$rendered"
    namespace=$(awk '/^namespace:/ { print $2; exit }' "$DEPLOY/kubernetes/overlays/$overlay/kustomization.yaml")
    [[ -n $namespace ]] || die "overlays/$overlay sets no namespace"
    echo "rendered overlays/$overlay: $(grep -c '^kind: ' "$rendered") objects in namespace $namespace"
    k8s_validate "$rendered"
    "$PY" "$TMP/checks.py" k8s-check "$rendered" "$namespace"
}

check_compose() {
    compose_schema "$DEPLOY/compose.yaml"
    "$PY" "$TMP/checks.py" compose-interpolate "$DEPLOY/compose.yaml" "$TMP/compose.json"
    echo "interpolated: every variable is required or has a default, every other \$ is escaped"
    compose_schema "$TMP/compose.json"
    "$PY" "$TMP/checks.py" compose-check "$TMP/compose.json"
}

check_config_keys() {
    local files
    mapfile -t files < <(find "$DEPLOY" -type f \( -name '*.yaml' -o -name '*.env' -o -name 'Dockerfile' -o -name '*.md' \) | sort)
    "$PY" "$TMP/checks.py" config-keys "$ROOT/docs/configuration.md" "${files[@]}"
}

log "deploy: tools"
"$KUBECTL" version --client
echo "kubernetes-validate $("$VENV/bin/kubernetes-validate" --version), $("$VENV/bin/check-jsonschema" --version)," \
    "compose-spec $("$PY" -c 'import importlib.metadata as m; print(m.version("compose-spec"))'), $("$VENV/bin/hadolint" --version)"

log "deploy: the validators reject broken files"
self_test

for overlay in "${OVERLAYS[@]}"; do
    log "deploy: kubernetes overlay $overlay"
    check_overlay "$overlay"
done

log "deploy: compose.yaml"
check_compose

log "deploy: configuration keys"
check_config_keys

log "deploy: Dockerfile"
"$VENV/bin/hadolint" --no-color "$DEPLOY/Dockerfile"
echo "hadolint: no findings"

log "deploy: all checks passed"
