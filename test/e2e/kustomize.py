#!/usr/bin/env python3
"""Renders a kustomization the way `kubectl kustomize` does, for the subset
packaging/kubernetes uses (Debian 12's kubectl 1.20 embeds kustomize 2.0,
which predates components, and no newer one is packaged):

  resources    files (YAML streams) and directories with a kustomization
  components   directories with kind: Component (resources, patches)
  patches      path: FILE, strategic merge patches: maps merged key by key,
               lists of maps with "name" merged by name (others replaced),
               a document with "$patch: delete" removes the object
  images       name -> newName / newTag, in containers and initContainers

Anything else in a kustomization is an error, so that a manifest using a
feature this renderer does not know fails the test instead of rendering
something kubectl would not.
"""

import copy
import os

import k8sapi as K

KNOWN = {"apiVersion", "kind", "resources", "components", "patches",
         "images"}


class KustomizeError(ValueError):
    pass


def _load(path):
    with open(path) as f:
        return [d for d in K.yaml_load_all(f.read(), path) if d is not None]


def _kfile(d):
    for n in ("kustomization.yaml", "kustomization.yml", "Kustomization"):
        p = os.path.join(d, n)
        if os.path.isfile(p):
            return p
    raise KustomizeError("%s: no kustomization" % d)


def _key(o):
    m = o.get("metadata") or {}
    return (o.get("apiVersion", "").split("/")[0] if "/" in o.get(
        "apiVersion", "") else "", o.get("kind"), m.get("namespace", ""),
        m.get("name"))


def merge(base, patch):
    """Strategic merge of patch into base (both plain data)."""
    if isinstance(base, dict) and isinstance(patch, dict):
        out = copy.deepcopy(base)
        for k, v in patch.items():
            if v is None:
                out.pop(k, None)
            elif k in out:
                out[k] = merge(out[k], v)
            else:
                out[k] = copy.deepcopy(v)
        return out
    if (isinstance(base, list) and isinstance(patch, list)
            and all(isinstance(x, dict) and "name" in x
                    for x in base + patch)):
        out = copy.deepcopy(base)
        for p in patch:
            for i, b in enumerate(out):
                if b["name"] == p["name"]:
                    out[i] = merge(b, p)
                    break
            else:
                out.append(copy.deepcopy(p))
        return out
    return copy.deepcopy(patch)


def _apply_patch(objs, patch, where):
    key = _key(patch)
    for i, o in enumerate(objs):
        if _key(o) == key:
            if patch.get("$patch") == "delete":
                del objs[i]
            else:
                objs[i] = merge(o, patch)
            return
    raise KustomizeError("%s: patch target %r not found" % (where, key))


def _apply_images(objs, images):
    for o in objs:
        spec = (o.get("spec") or {}).get("template", {}).get("spec") or {}
        for c in spec.get("containers", []) + spec.get("initContainers", []):
            name, _, tag = c["image"].partition(":")
            for im in images:
                if im["name"] == name:
                    c["image"] = "%s:%s" % (im.get("newName", name),
                                            im.get("newTag", tag))


def render(d, kind="Kustomization"):
    kpath = _kfile(d)
    (k,) = _load(kpath)
    if k.get("kind") != kind:
        raise KustomizeError("%s: kind %s, expected %s"
                             % (kpath, k.get("kind"), kind))
    unknown = set(k) - KNOWN
    if unknown:
        raise KustomizeError("%s: fields this renderer does not know: %s"
                             % (kpath, sorted(unknown)))
    objs = []
    for r in k.get("resources") or []:
        p = os.path.normpath(os.path.join(d, r))
        objs += render(p) if os.path.isdir(p) else _load(p)
    for c in k.get("components") or []:
        comp = render(os.path.join(d, c), kind="Component")
        objs = comp["apply"](objs)
    for p in k.get("patches") or []:
        if kind == "Component":
            break   # they apply to what the component is added to
        if set(p) != {"path"}:
            raise KustomizeError("%s: only patches with path: are known"
                                 % kpath)
        for doc in _load(os.path.join(d, p["path"])):
            _apply_patch(objs, doc, kpath)
    _apply_images(objs, k.get("images") or [])
    seen = set()
    for o in objs:
        if _key(o) in seen:
            raise KustomizeError("%s: %r twice" % (kpath, _key(o)))
        seen.add(_key(o))
    if kind == "Component":
        own, patches = objs, [doc for p in k.get("patches") or []
                              for doc in _load(os.path.join(d, p["path"]))]

        def apply(base):
            out = base + [o for o in own if o not in base]
            for doc in patches:
                _apply_patch(out, doc, kpath)
            return out
        return {"apply": apply}
    return objs
