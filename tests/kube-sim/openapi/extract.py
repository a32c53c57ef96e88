#!/usr/bin/env python3
"""Regenerate builtin-v1.33.json: the official Kubernetes v1.33.0 OpenAPI definitions that kube-sim
serves at /openapi/v2 and /openapi/v3 and that its server-side apply reads list types from
(`x-kubernetes-list-type`, `x-kubernetes-list-map-keys`, `x-kubernetes-map-type`).

Where it comes from: the PyPI package kubernetes-validate 1.37.0 (Apache-2.0) ships
`kubernetes-json-schema/v1.33.0-local/_definitions.json`, the `definitions` of Kubernetes v1.33.0's
`api/openapi-spec/swagger.json` converted to JSON Schema by openapi2jsonschema, which keeps every
`x-kubernetes-*` extension. This script undoes that conversion (`$defs` refs back to
`#/definitions/`, `["string", "null"]` types back to `string`, the `enum` it adds on apiVersion and
kind removed) and keeps only the definitions reachable from the kinds in KINDS.

    pip download --no-deps kubernetes-validate==1.37.0 -d /tmp/kv
    python3 tests/kube-sim/openapi/extract.py /tmp/kv/kubernetes_validate-1.37.0-py3-none-any.whl

To follow a new Kubernetes version, change VERSION (and kube-sim's default kube_version).
"""
import json
import os
import sys
import zipfile

VERSION = "v1.33.0"
# (group, version, kind): the built-ins kube-sim serves (catalog.rs) and a few it may soon.
KINDS = [
    ("", "v1", k) for k in ["Namespace", "ConfigMap", "Secret", "Service", "ServiceAccount",
                           "PersistentVolumeClaim", "PersistentVolume", "Pod", "Event",
                           "Endpoints", "Node", "LimitRange", "ResourceQuota"]
] + [
    ("apps", "v1", k) for k in ["Deployment", "StatefulSet", "DaemonSet", "ReplicaSet",
                                "ControllerRevision"]
] + [
    ("batch", "v1", "Job"), ("batch", "v1", "CronJob"),
] + [
    ("rbac.authorization.k8s.io", "v1", k)
    for k in ["Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding"]
] + [
    ("apiextensions.k8s.io", "v1", "CustomResourceDefinition"),
    ("coordination.k8s.io", "v1", "Lease"),
    ("networking.k8s.io", "v1", "Ingress"), ("networking.k8s.io", "v1", "NetworkPolicy"),
    ("networking.k8s.io", "v1", "IngressClass"),
    ("storage.k8s.io", "v1", "StorageClass"),
    ("policy", "v1", "PodDisruptionBudget"),
    ("autoscaling", "v2", "HorizontalPodAutoscaler"), ("autoscaling", "v1", "Scale"),
    ("events.k8s.io", "v1", "Event"),
    ("admissionregistration.k8s.io", "v1", "MutatingWebhookConfiguration"),
    ("admissionregistration.k8s.io", "v1", "ValidatingWebhookConfiguration"),
    ("apiregistration.k8s.io", "v1", "APIService"),
    ("discovery.k8s.io", "v1", "EndpointSlice"),
    ("scheduling.k8s.io", "v1", "PriorityClass"),
    ("", "v1", "List"),
]
# Shared types every document needs (Status for errors, the list/meta machinery).
EXTRA = [
    "io.k8s.apimachinery.pkg.apis.meta.v1.Status",
    "io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions",
    "io.k8s.apimachinery.pkg.apis.meta.v1.WatchEvent",
    "io.k8s.apimachinery.pkg.apis.meta.v1.APIResourceList",
]


# The v3 documents carry `default` on map-list keys that have one (so SSA can key an element whose
# applied config omits it, kubernetes PR 113380); the v2 definitions this comes from do not.
KEY_DEFAULTS = {
    "io.k8s.api.core.v1.ContainerPort": {"protocol": "TCP"},
    "io.k8s.api.core.v1.ServicePort": {"protocol": "TCP"},
    "io.k8s.api.core.v1.EndpointPort": {"protocol": "TCP"},
}
# openapi2jsonschema rewrote these two as oneOf; the swagger.json has plain strings with a format.
ORIGINAL = {
    "io.k8s.apimachinery.pkg.util.intstr.IntOrString": {"format": "int-or-string", "type": "string"},
    "io.k8s.apimachinery.pkg.api.resource.Quantity": {"type": "string"},
}


def clean(node, under_gvk_props=False):
    if isinstance(node, list):
        return [clean(x) for x in node]
    if not isinstance(node, dict):
        return node
    out = {}
    for k, v in node.items():
        if k == "$ref" and isinstance(v, str):
            out[k] = "#/definitions/" + v.rsplit("/", 1)[-1]
        elif k == "type" and isinstance(v, list):
            types = [t for t in v if t != "null"]
            out[k] = types[0] if len(types) == 1 else types
        elif k == "properties" and isinstance(v, dict):
            out[k] = {}
            for name, prop in v.items():
                prop = clean(prop)
                if under_gvk_props and name in ("apiVersion", "kind"):
                    prop.pop("enum", None)
                out[k][name] = prop
        else:
            out[k] = clean(v)
    return out


def refs(node, acc):
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "$ref" and isinstance(v, str):
                acc.add(v.rsplit("/", 1)[-1])
            else:
                refs(v, acc)
    elif isinstance(node, list):
        for v in node:
            refs(v, acc)


def main(wheel):
    with zipfile.ZipFile(wheel) as z:
        name = f"kubernetes_validate/kubernetes-json-schema/{VERSION}-local/_definitions.json"
        defs = json.loads(z.read(name))["$defs"]
    roots = set(EXTRA)
    wanted = set(KINDS)
    for dname, d in defs.items():
        for gvk in d.get("x-kubernetes-group-version-kind", []):
            if (gvk["group"], gvk["version"], gvk["kind"]) in wanted:
                # A kind's list type comes with it (kubectl get uses it).
                roots.add(dname)
                if dname + "List" in defs:
                    roots.add(dname + "List")
    keep, todo = set(), list(roots)
    while todo:
        d = todo.pop()
        if d in keep or d not in defs:
            continue
        keep.add(d)
        acc = set()
        refs(defs[d], acc)
        todo.extend(acc - keep)
    out = {k: clean(defs[k], "x-kubernetes-group-version-kind" in defs[k]) for k in sorted(keep)}
    out.update({k: v for k, v in ORIGINAL.items() if k in out})
    for d, fields in KEY_DEFAULTS.items():
        for f, default in fields.items():
            if d in out:
                out[d]["properties"][f]["default"] = default
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "builtin-v1.33.json")
    with open(path, "w") as f:
        json.dump({"source": f"Kubernetes {VERSION} api/openapi-spec/swagger.json definitions, "
                   "via PyPI kubernetes-validate 1.37.0; regenerate with extract.py",
                   "definitions": out}, f, indent=None, separators=(",", ":"), sort_keys=True)
        f.write("\n")
    print(f"{len(out)} definitions -> {path} ({os.path.getsize(path)} bytes)")


if __name__ == "__main__":
    main(sys.argv[1])
