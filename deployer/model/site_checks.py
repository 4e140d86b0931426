"""Checks of a member's rendered site that no schema can make: settings that render valid
objects but would take the site down on a real cluster. Each finding is a policy Violation
(file:line, key, message), blamed on the values key (and the file that set it) where one is
to blame, else on the object and its template."""
from __future__ import annotations

import re
from typing import Any, Iterable, Iterator

from deployer.model.federation import FEDERATION_FILE, Federation, Member
from deployer.model.manifests import K8sObject
from deployer.model.policy import Violation
from deployer.model.values import DELETED, MemberValues, lookup

# image tags that are somebody's note to fill in, not a tag (chartpress's is the classic)
_PLACEHOLDER = re.compile(r"^(set-by-.+|placeholder|changeme|change-me|todo|tbd|x+|tag)$|"
                          r"[<>{}$]", re.IGNORECASE)
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_WORKLOADS = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet"}
_DEFAULT_CLASS = "ingressclass.kubernetes.io/is-default-class"
_USER_LAYERS = ("common", "member", "common secrets", "secrets")   # what an operator wrote (not chart defaults,
                                                 # not values generated from federation.yaml)


def check_values(mv: MemberValues, defaults: dict | None = None) -> list[Violation]:
    """What can be told from the values alone, before (and whether or not) helm renders
    them: image tags an operator's file sets to a placeholder, or to "" where the chart has
    a tag (z2jh writes `image: {{ name }}:{{ tag }}` unquoted: an empty tag breaks the YAML
    and helm's error names neither the file nor the key)."""
    found: dict[tuple[str, str], Violation] = {}
    for path, value in _walk(mv.final):
        if not (len(path) >= 2 and path[-1] == "tag" and "image" in str(path[-2]).lower()
                and isinstance(value, str)):
            continue
        if value == "":
            default = lookup(defaults or {}, path)
            if not (isinstance(default, str) and default) or not _user_set(mv, path):
                continue
            message = f"image tag is empty (the chart's default is {default!r}); the image " \
                "reference would end in ':'"
        elif _PLACEHOLDER.search(value) and _user_set(mv, path):
            message = f"image tag {value!r} is a placeholder, not a published tag"
        else:
            continue
        where = _Blame(mv, ()).where(path)
        found.setdefault((where, ".".join(map(str, path))),
                         Violation(where, ".".join(map(str, path)), message))
    return list(found.values())


def check_rendered(fed: Federation, member: Member, mv: MemberValues,
                   objects: list[K8sObject], subcharts: Iterable = (),
                   defaults: dict | None = None,
                   known: Iterable[Violation] = ()) -> list[Violation]:
    """Every finding about the rendered objects (images, ingress routes and classes, objects
    the API server rejects). `defaults`: the chart's and subcharts' default values (to find
    the key behind a setting no file made). One finding per file:line and key: the first
    (and none for a place `known`, the values checks' findings, already names)."""
    blame = _Blame(mv, subcharts, defaults)
    found: dict[tuple[str, str], Violation] = {(v.where, v.key): v for v in known}
    skip = set(found)
    also: dict[tuple[str, str], list[str]] = {}
    for v in (*_image_tags(mv, objects, blame), *_ingress(fed, member, mv, objects, blame),
              *_api_rejects(objects, blame)):
        first = found.setdefault((v.where, v.key), v)
        subject = v.message.split(" ", 1)[0]
        if first is not v and "/" in subject and subject != first.message.split(" ", 1)[0] \
                and subject not in also.setdefault((v.where, v.key), []):
            also[(v.where, v.key)].append(subject)      # same setting, another object
    return [Violation(v.where, v.key, v.message + (f" (also {', '.join(also[k])})"
                                                   if also.get(k) else ""))
            for k, v in found.items() if k not in skip]


def unread_keys(mv: MemberValues, defaults: dict, subcharts: Iterable,
                conditions: Iterable[tuple[str, ...]] = ()) -> list[Violation]:
    """Keys an operator set under a subchart that the subchart does not have: absent from
    its default values (helm's values of a chart are its defaults plus what is given; a key
    no default names is read by no template of a well-kept chart). A default that is an
    empty map is free-form (annotations, nodeSelector, extraEnv...), as is, for a chart with
    a values schema, a map whose schema allows more keys than it lists."""
    subs = sorted(subcharts, key=lambda s: -len(s.prefix))
    read = {tuple(c) for c in conditions} | {c for s in subs for c in s.conditions}
    found: dict[tuple, Violation] = {}
    for layer in mv.layers:
        if layer.name not in _USER_LAYERS:
            continue
        for path, value in _leaves(layer.data):
            if value is None or path in read:
                continue
            sub = next((s for s in subs if path[:len(s.prefix)] == s.prefix
                        and len(path) > len(s.prefix)), None)
            if sub is None or path[len(sub.prefix)] == "global":
                continue
            unknown = _first_unknown(path[len(sub.prefix):], lookup(defaults, sub.prefix),
                                     sub.schema, getattr(sub, "commented", frozenset()),
                                     getattr(sub, "template_words", None),
                                     getattr(sub, "rendered_whole", frozenset()))
            if unknown is None:
                continue
            key = sub.prefix + unknown
            why = "declared in its values schema, but no template of the chart mentions " \
                "it" if _declared(sub.schema, unknown) else \
                "not among its defaults, so no template reads it"
            found.setdefault(key, Violation(
                layer.where(key), ".".join(key),
                f"the {sub.name} chart has no such value ({why})"))
    return list(found.values())


# -- (a) image tags ------------------------------------------------------------------------
def _user_set(mv: MemberValues, path: tuple) -> bool:
    _, settings = mv.explain(tuple(path))
    return any(s.layer.name in _USER_LAYERS for s in settings)


def _image_tags(mv: MemberValues, objects: list[K8sObject], blame: "_Blame") -> Iterator[Violation]:
    for obj in objects:
        for container, image in _images(obj):
            ref, _, digest = image.partition("@")
            if digest:
                continue
            last = ref.rsplit("/", 1)[-1]
            tag = last.split(":", 1)[1] if ":" in last else None
            if tag is None:
                problem = "has no tag (would pull whatever :latest is)"
            elif tag == "":
                problem = "has an empty tag"
            elif _PLACEHOLDER.search(tag):
                problem = f"has the placeholder tag {tag!r}"
            else:
                continue
            what = f"{obj.ref} container {container} image {image!r} {problem}"
            path = blame.image_key(obj, ref.rsplit(":", 1)[0] if tag is not None else ref, tag)
            if path is not None:
                yield Violation(blame.where(path), ".".join(map(str, path)), what)
            else:
                yield Violation(obj.source or obj.ref, obj.ref, what)


def _images(obj: K8sObject) -> Iterator[tuple[str, str]]:
    spec = _pod_spec(obj)
    for key in ("initContainers", "containers", "ephemeralContainers"):
        for c in (spec or {}).get(key) or []:
            if isinstance(c, dict):
                yield str(c.get("name", "?")), str(c.get("image") or "")


def _pod_spec(obj: K8sObject) -> dict | None:
    body = obj.body.get("spec") or {}
    if obj.kind == "Pod":
        return body
    if obj.kind == "CronJob":
        body = ((body.get("jobTemplate") or {}).get("spec")) or {}
    template = body.get("template") if isinstance(body, dict) else None
    return (template or {}).get("spec") if isinstance(template, dict) else None


# -- (b, c) ingress: every domain routed, every class present, an entry point ---------------
def _ingress(fed: Federation, member: Member, mv: MemberValues, objects: list[K8sObject],
             blame: "_Blame") -> Iterator[Violation]:
    declared = set(member.preinstalled_ingress_classes)
    classes = {o.name: o for o in objects if o.kind == "IngressClass"}
    default = [n for n, o in classes.items()
               if str(((o.body.get("metadata") or {}).get("annotations") or {})
                      .get(_DEFAULT_CLASS)).lower() == "true"]
    routed: dict[str, list[str]] = {}
    where_declared = f"preinstalled.ingress_classes of {member.name} in {FEDERATION_FILE}"
    have = ", ".join(sorted(classes)) or "none"
    named_by_release = f"{member.release}-traefik"
    if named_by_release in classes and lookup(mv.final, ("traefik", "ingressClass", "name")) \
            in (None, "", DELETED):
        # traefik names its class after the release when ingressClass.name is empty
        have += f"; traefik's is named {named_by_release!r} because traefik.ingressClass.name " \
            f"is empty (set at {blame.where(('traefik', 'ingressClass', 'name'))})"
    for obj in objects:
        if obj.kind == "Ingress":
            spec = obj.body.get("spec") or {}
            annotations = (obj.body.get("metadata") or {}).get("annotations") or {}
            cls = spec.get("ingressClassName") or annotations.get("kubernetes.io/ingress.class")
            if cls is None and not default and not declared:
                yield Violation(obj.source or obj.ref, f"{obj.ref} spec.ingressClassName",
                                f"{obj.ref} names no ingress class and no rendered "
                                f"IngressClass is the default (nor any in {where_declared})")
            elif cls is not None and cls not in classes and cls not in declared:
                path = blame.value_key(obj, ("ingressClassName",), cls) or \
                    blame.value_key(obj, ("ingressClass",), cls)
                yield _at(blame, path, obj, f"{obj.ref} uses ingress class {cls!r}, but no "
                          f"IngressClass {cls!r} is rendered (rendered: {have}) nor listed "
                          f"in {where_declared}")
            for rule in spec.get("rules") or []:
                if isinstance(rule, dict) and rule.get("host") and rule.get("http"):
                    routed.setdefault(str(rule["host"]), []).append(obj.ref)
            if spec.get("defaultBackend"):
                routed.setdefault("*", []).append(obj.ref)
        elif obj.kind in ("ClusterIssuer", "Issuer"):
            solvers = (((obj.body.get("spec") or {}).get("acme") or {}).get("solvers")) or []
            for i, solver in enumerate(solvers):
                ingress = ((solver or {}).get("http01") or {}).get("ingress") or {}
                cls = ingress.get("ingressClassName") or ingress.get("class")
                if cls and cls not in classes and cls not in declared:
                    path = blame.value_key(obj, ("ingressClassName",), cls) or \
                        blame.value_key(obj, ("class",), cls)
                    yield _at(blame, path, obj,
                              f"{obj.ref} solves HTTP-01 challenges with ingress class "
                              f"{cls!r}, but no IngressClass {cls!r} is rendered (rendered: "
                              f"{have}) nor listed in {where_declared}")
    for kind, host in vars(member.domains).items():
        if not isinstance(host, str) or not host or kind not in ("binder", "hub", "static",
                                                                 "federation"):
            continue
        if not any(_host_matches(pattern, host) for pattern in routed):
            line = fed.line_of("members", member.name, "domains", kind)
            off = _turned_off(mv, host)
            if off is not None:
                yield Violation(off[0], ".".join(map(str, off[1])),
                                f"no Ingress rule routes {host} (the member's {kind} domain, "
                                f"{FEDERATION_FILE}:{line}): this turns off the Ingress that "
                                "would route it")
                continue
            yield Violation(f"{FEDERATION_FILE}:{line}", f"members.{member.name}.domains.{kind}",
                            f"no Ingress rule routes {host} (the member's {kind} domain)")
    if routed and not declared and not _entry_point(objects):
        setting = blame.service_type_setting()
        hint = f" ({setting[1]} is set to {setting[2]!r} at {setting[0]})" if setting else ""
        yield Violation(f"{FEDERATION_FILE}:{fed.line_of('members', member.name)}",
                        f"members.{member.name}",
                        "nothing receives the member's traffic: no Service of type "
                        "LoadBalancer and no pod on host ports 80/443 is rendered, and no "
                        f"ingress class is listed in preinstalled.ingress_classes{hint}")


def _turned_off(mv: MemberValues, host: str) -> tuple[str, tuple] | None:
    """(file:line, key) of an operator's `...enabled: false` whose map holds `host` (the
    Ingress it would have rendered: binderhub.ingress.enabled with binderhub.ingress.hosts,
    static.enabled with static.host)."""
    for layer in reversed(mv.layers):
        if layer.name not in _USER_LAYERS:
            continue
        for path, value in _leaves(layer.data):
            if path[-1] != "enabled" or value is not False or lookup(mv.final, path) is not False:
                continue
            section = lookup(mv.final, path[:-1])
            if any(v == host or isinstance(v, list) and host in v
                   for _, v in _walk(section)):
                return layer.where(path), path
    return None


def _entry_point(objects: list[K8sObject]) -> bool:
    """A LoadBalancer Service, or an ingress controller bound to the nodes' ports 80/443."""
    for obj in objects:
        if obj.kind == "Service" and (obj.body.get("spec") or {}).get("type") == "LoadBalancer":
            return True
        spec = _pod_spec(obj) or {}
        host_network = spec.get("hostNetwork") is True
        for c in spec.get("containers") or []:
            for port in (c or {}).get("ports") or []:
                port = port or {}
                # a node's port 80/443: a hostPort, or a container port on the host network
                # (node-exporter's hostNetwork pod on 9100 receives no web traffic)
                if port.get("hostPort") in (80, 443) or \
                        host_network and port.get("containerPort") in (80, 443):
                    return True
    return False


def _host_matches(pattern: str, host: str) -> bool:
    if pattern in ("*", host):
        return True
    return pattern.startswith("*.") and host.count(".") == pattern.count(".") and \
        host.endswith(pattern[1:])


# -- (d) objects the schema allows but the API server rejects -------------------------------
def _api_rejects(objects: list[K8sObject], blame: "_Blame") -> Iterator[Violation]:
    for obj in objects:
        spec = obj.body.get("spec") or {}
        where = obj.source or obj.ref
        if obj.kind == "PodDisruptionBudget" and spec.get("minAvailable") is not None \
                and spec.get("maxUnavailable") is not None:
            path = blame.pdb_key(obj)
            if path is not None:
                yield Violation(blame.where(path + ("minAvailable",)),
                                ".".join(path + ("minAvailable",)),
                                f"{obj.ref} gets both minAvailable and maxUnavailable "
                                f"(maxUnavailable set at {blame.where(path + ('maxUnavailable',))}"
                                "); the API server accepts only one: set the other to null")
            else:
                yield Violation(where, f"{obj.ref} spec", "both minAvailable and "
                                "maxUnavailable are set; the API server accepts only one")
        for key, labels in _label_sets(obj):
            for name, value in labels.items():
                text = "" if value is None else str(value)
                if len(text) > 63 or not _LABEL_VALUE.match(text):
                    yield Violation(where, f"{obj.ref} {key}.{name}",
                                    f"label value {text!r} is not valid (at most 63 letters, "
                                    "digits, '-', '_' or '.', starting and ending with a "
                                    "letter or digit)")
        if obj.kind in _WORKLOADS:
            selector = spec.get("selector") or {}
            labels = (((spec.get("template") or {}).get("metadata") or {}).get("labels")) or {}
            if not _selects(selector, labels):
                yield Violation(where, f"{obj.ref} spec.selector",
                                f"selector {_short(selector)} does not match the pod template's "
                                f"labels {_short(labels)}; the API server rejects this")
        if obj.kind == "Service":
            ports = [p for p in spec.get("ports") or [] if isinstance(p, dict)]
            if len(ports) > 1 and any(not p.get("name") for p in ports):
                yield Violation(where, f"{obj.ref} spec.ports",
                                "a Service with more than one port needs a name on each")
        pod = _pod_spec(obj)
        if pod:
            yield from _pod_problems(obj, pod, where)


def _pod_problems(obj: K8sObject, pod: dict, where: str) -> Iterator[Violation]:
    volumes = {v.get("name") for v in pod.get("volumes") or [] if isinstance(v, dict)}
    names: set[str] = set()
    for key in ("initContainers", "containers"):
        for i, c in enumerate(pod.get(key) or []):
            if not isinstance(c, dict):
                continue
            if c.get("name") in names:
                yield Violation(where, f"{obj.ref} {key}[{i}].name",
                                f"container name {c.get('name')!r} is used twice in the pod")
            names.add(c.get("name"))
            for j, mount in enumerate(c.get("volumeMounts") or []):
                if isinstance(mount, dict) and mount.get("name") not in volumes:
                    yield Violation(where, f"{obj.ref} {key}[{i}].volumeMounts[{j}]",
                                    f"mounts volume {mount.get('name')!r}, which the pod does "
                                    "not define")


def _label_sets(obj: K8sObject) -> Iterator[tuple[str, dict]]:
    labels = (obj.body.get("metadata") or {}).get("labels")
    if isinstance(labels, dict):
        yield "metadata.labels", labels
    template = (obj.body.get("spec") or {}).get("template")
    if isinstance(template, dict):
        labels = (template.get("metadata") or {}).get("labels")
        if isinstance(labels, dict):
            yield "spec.template.metadata.labels", labels


def _selects(selector: dict, labels: dict) -> bool:
    for key, value in (selector.get("matchLabels") or {}).items():
        if str(labels.get(key)) != str(value) or key not in labels:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op = expr.get("key"), expr.get("operator")
        values = [str(v) for v in expr.get("values") or []]
        if op == "In" and str(labels.get(key)) not in values or key not in labels and op == "In":
            return False
        if op == "NotIn" and key in labels and str(labels[key]) in values:
            return False
        if op == "Exists" and key not in labels or op == "DoesNotExist" and key in labels:
            return False
    return True


def _short(data: Any) -> str:
    import json

    text = json.dumps(data, sort_keys=True)
    return text if len(text) <= 80 else text[:77] + "..."


def _at(blame: "_Blame", path: tuple | None, obj: K8sObject, message: str) -> Violation:
    if path is not None:
        return Violation(blame.where(path), ".".join(map(str, path)), message)
    return Violation(obj.source or obj.ref, obj.ref, message)


# -- unread keys ------------------------------------------------------------------------------
def _first_unknown(rel: tuple, defaults: Any, schema: dict | None,
                   commented: frozenset = frozenset(),
                   template_words: frozenset | None = None,
                   rendered_whole: frozenset = frozenset()) -> tuple | None:
    """The shortest prefix of `rel` the chart does not have, or None if it has it (or
    cannot tell). Keys its values.yaml documents in comments count as had; so do keys its
    schema declares, unless no template of the chart mentions them (binderhub's schema
    declares `networkPolicy` for compatibility, and nothing reads it). Any key under a map
    whose name is in `rendered_whole` is read: a template renders that map whole
    (traefik's `with .service.spec` + `toYaml .`, grafana's `index .Values "grafana.ini"`)."""
    node, node_schema = defaults, schema
    for i, key in enumerate(rel):
        if i > 0 and rel[i - 1] in rendered_whole:
            return None                       # the parent map is rendered whole
        if not isinstance(node, dict) or not node:
            return None                       # a scalar/list/null default, or free-form {}
        if node_schema is not None and i > 0 and _open(node_schema):
            return None                       # the schema lets this map hold any key
        if key not in node:
            declared = isinstance(node_schema, dict) and key in (node_schema.get("properties")
                                                                 or {})
            if declared and template_words is not None and isinstance(key, str) \
                    and key not in template_words:
                return rel[:i + 1]
            return None if declared or rel[:i + 1] in commented else rel[:i + 1]
        node = node[key]
        if isinstance(node_schema, dict):
            node_schema = (node_schema.get("properties") or {}).get(key)
    return None


def _declared(schema: Any, rel: tuple) -> bool:
    """Whether the schema lists the key path `rel` among its properties."""
    for key in rel:
        if not isinstance(schema, dict) or key not in (schema.get("properties") or {}):
            return False
        schema = schema["properties"][key]
    return bool(rel)


def _open(schema: Any) -> bool:
    """A map the schema means to be free-form: it says so (additionalProperties true or a
    schema, patternProperties), or names no properties at all. A schema that lists its
    properties and merely omits additionalProperties (traefik's, generated by helm-schema)
    still has a known set of keys: a key outside it and the defaults is read by nothing."""
    if not isinstance(schema, dict):
        return False
    extra = schema.get("additionalProperties")
    if extra is False:
        return False
    return extra is not None or bool(schema.get("patternProperties")) \
        or not schema.get("properties")


# -- finding the values key behind a rendered setting ------------------------------------------
class _Blame:
    """Where in the member's values a rendered setting comes from."""

    def __init__(self, mv: MemberValues, subcharts: Iterable, defaults: dict | None = None):
        from deployer.model.values import merge, prune_nulls

        self.mv = mv
        self.subcharts = sorted(subcharts, key=lambda s: -len(s.prefix))
        # what the templates see: every chart's defaults under the member's values
        self.values = prune_nulls(merge(defaults, mv.for_helm(defaults))) if defaults \
            else mv.final

    def where(self, path: tuple) -> str:
        """file:line of the last layer that set `path`, else the chart whose defaults did."""
        _, settings = self.mv.explain(tuple(path))
        exact = [s for s in settings if s.path == tuple(path)]
        if exact or settings:
            return (exact or settings)[-1].where
        sub = next((s for s in self.subcharts if tuple(path[:len(s.prefix)]) == s.prefix), None)
        return f"defaults of the {sub.name} chart" if sub else "chart defaults"

    def user_set(self, path: tuple) -> bool:
        return _user_set(self.mv, path)

    def prefix_of(self, obj: K8sObject) -> tuple:
        """The values path of the chart that rendered `obj` (from its template's path)."""
        parts = obj.source.split("/")
        prefix = []
        for i in range(1, len(parts) - 1):
            if parts[i] == "charts" and i + 1 < len(parts):
                prefix.append(parts[i + 1])
        return tuple(prefix)

    def value_key(self, obj: K8sObject, suffix: tuple, value: Any) -> tuple | None:
        """The values key under obj's chart, ending in `suffix`, that holds `value`."""
        prefix = self.prefix_of(obj)
        # the chart's own values, not those of its subcharts (a top-level template reads
        # clusterIssuer.ingressClassName, never binderhub.ingress.ingressClassName)
        inner = {s.prefix[len(prefix)] for s in self.subcharts
                 if len(s.prefix) > len(prefix) and s.prefix[:len(prefix)] == prefix}
        own = [(p, v) for p, v in _walk(lookup(self.values, prefix) or {}) if p[0] not in inner]
        hits = [p for p, v in own if p[-len(suffix):] == suffix and v == value]
        hits += [p[:-1] for p, v in own
                 if p[-len(suffix) - 1:-1] == suffix and p[-1] == "name" and v == value]
        if not hits:
            return None
        user = [p for p in hits if self.user_set(prefix + p)]
        return prefix + min(user or hits, key=len)

    def image_key(self, obj: K8sObject, name: str, tag: str | None) -> tuple | None:
        """The `...image.tag` key whose image name matches the rendered one and whose tag
        is the rendered tag (or empty/unset when none was rendered)."""
        prefix = self.prefix_of(obj)
        base = lookup(self.values, prefix)
        if not isinstance(base, dict):
            return None
        for path, node in _maps(base):
            repo = node.get("name") or node.get("repository")
            if not isinstance(repo, str) or not repo or not name.endswith(repo):
                continue
            value = node.get("tag")
            if value == tag or (tag in (None, "") and value in (None, "")):
                return prefix + path + ("tag",)
        return None

    def pdb_key(self, obj: K8sObject) -> tuple | None:
        prefix = self.prefix_of(obj)
        base = lookup(self.values, prefix)
        for path, node in _maps(base if isinstance(base, dict) else {}):
            if node.get("minAvailable") is not None and node.get("maxUnavailable") is not None:
                return prefix + path
        return None

    def service_type_setting(self) -> tuple[str, str, Any] | None:
        """(where, key, value) of an operator's service type that is not LoadBalancer."""
        for layer in reversed(self.mv.layers):
            if layer.name not in _USER_LAYERS:
                continue
            for path, value in _leaves(layer.data):
                if path[-1] == "type" and "service" in path and value != "LoadBalancer" \
                        and lookup(self.values, path) == value:
                    return layer.where(path), ".".join(path), value
        return None


def _walk(data: Any, prefix: tuple = ()) -> Iterator[tuple[tuple, Any]]:
    """(path, value) of every non-map value under `data`."""
    if isinstance(data, dict):
        for key, value in data.items():
            yield from _walk(value, prefix + (key,))
    elif prefix:
        yield prefix, data


def _maps(data: Any, prefix: tuple = ()) -> Iterator[tuple[tuple, dict]]:
    if isinstance(data, dict):
        yield prefix, data
        for key, value in data.items():
            yield from _maps(value, prefix + (key,))


def _leaves(data: Any, prefix: tuple = ()) -> Iterator[tuple[tuple, Any]]:
    if isinstance(data, dict) and data:
        for key, value in data.items():
            yield from _leaves(value, prefix + (key,))
    elif prefix:
        yield prefix, data


__all__ = ["check_values", "check_rendered", "unread_keys", "DELETED"]
