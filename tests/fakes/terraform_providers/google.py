"""Stand-in for the ``hashicorp/google`` provider (registry.terraform.io/hashicorp/google).

Same resource types, attribute names and types as the real provider for what is declared
here (a small subset of each resource); where it simplifies:

* No Google API is called, no credentials are read and nothing exists outside Terraform's
  state: reads return the state as it is, deletes only forget. Ids and self links have the
  real formats (``projects/P/locations/L/clusters/N``, ...); ``unique_id``, ``etag`` and
  the cluster ``endpoint`` (34.x.y.z) are random.
* ``project`` (and the node pool's / repository's ``location``) default to the provider's
  ``project`` (``zone`` or ``region``) at apply time, so they are unknown in a create plan.
* ``master_version`` is ``min_master_version`` + ".gke.100" (unchanged when it already
  names a -gke. build), 1.33.5-gke.1162000 when no minimum is set.
* Blocks are LIST blocks (``release_channel[0].channel``) like the real SDKv2 schemas;
  ``oauth_scopes`` is a list (a set in the real provider).
* Things the real API would reject are validation errors with attribute paths, found by
  ``terraform validate``: machine types, disk sizes, taint effects, release channels,
  repository ids and formats, service account ids, IAM roles and members.
* As in the real provider, destroying a ``google_container_cluster`` whose
  ``deletion_protection`` is true (the default) fails.
"""
from __future__ import annotations

import base64
import os

from tests.fakes.terraform_providers import (Attribute, Bool, List, ListBlock, Map, Number,
                                             StandInProvider, StandInResource, String, at_least,
                                             each, known, matches, one_of, random_digits, serve)

MACHINE_TYPE = (
    r"e2-(micro|small|medium)"
    r"|(e2|n1|n2|n2d|n4|c2|c2d|c3|c3d|c4|c4a|c4d|t2d|t2a|m1|m2|m3)"
    r"-(standard|highmem|highcpu|megamem|ultramem)-\d+(-lssd)?"
    r"|(e2|n1|n2|n2d)-custom-\d+-\d+"
)
LOCATION = r"[a-z]+-[a-z]+\d+(-[a-z])?"
DEFAULT_GKE_VERSION = "1.33.5-gke.1162000"


class GoogleResource(StandInResource):
    """Common to the google resources: the project (and location) fall back to the provider's."""

    def default(self, ctx, state: dict, key: str, *config_keys: str) -> str:
        if known(state.get(key)):
            return state[key]
        for ck in config_keys:
            if known(self.provider.config.get(ck)):
                return self.provider.config[ck]
        ctx.diagnostics.add_error(f"{key}: required field is not set",
                                  f"set {key} on the resource or {' or '.join(config_keys)} on the provider",
                                  path=[key])
        return ""

    def project(self, ctx, state: dict) -> str:
        return self.default(ctx, state, "project", "project")


class ContainerCluster(GoogleResource):
    name = "container_cluster"
    attributes = [
        Attribute("id", String(), computed=True),
        Attribute("name", String(), required=True, requires_replace=True),
        Attribute("location", String(), required=True, requires_replace=True),
        Attribute("project", String(), optional=True, computed=True, requires_replace=True),
        Attribute("min_master_version", String(), optional=True),
        Attribute("remove_default_node_pool", Bool(), optional=True),
        Attribute("initial_node_count", Number(), optional=True),
        Attribute("deletion_protection", Bool(), optional=True, computed=True, default=True),
        Attribute("network", String(), optional=True, computed=True, default="default"),
        Attribute("endpoint", String(), computed=True),
        Attribute("master_version", String(), computed=True),
        Attribute("self_link", String(), computed=True),
    ]
    blocks = [
        ListBlock("release_channel", [Attribute("channel", String(), required=True)], max_items=1),
        ListBlock("workload_identity_config", [Attribute("workload_pool", String(), optional=True)], max_items=1),
    ]
    checks = {
        ("location",): matches(LOCATION, "a region or zone"),
        ("initial_node_count",): at_least(0),
        ("release_channel", "*", "channel"): one_of("UNSPECIFIED", "RAPID", "REGULAR", "STABLE", "EXTENDED"),
        ("workload_identity_config", "*", "workload_pool"): matches(r"[a-z][-a-z0-9]{4,28}[a-z0-9]\.svc\.id\.goog",
                                                                    "PROJECT_ID.svc.id.goog"),
    }
    recompute = {"master_version": ("min_master_version",)}

    def computed(self, ctx, state):
        project = self.project(ctx, state)
        path = f"projects/{project}/locations/{state['location']}/clusters/{state['name']}"
        minimum = state.get("min_master_version")
        if not minimum:
            version = DEFAULT_GKE_VERSION
        elif "-gke." in minimum:
            version = minimum
        else:
            version = f"{minimum}.gke.100"
        return {
            "project": project,
            "id": path,
            "self_link": f"https://container.googleapis.com/v1/{path}",
            "endpoint": "34.%d.%d.%d" % tuple(int(random_digits(2)) for _ in range(3)),
            "master_version": version,
        }

    def delete(self, ctx, current):
        if current.get("deletion_protection"):
            ctx.diagnostics.add_error(
                "Cannot destroy cluster because deletion_protection is set to true. "
                "Set it to false to proceed with cluster deletion.")
            return current
        return None

    def parse_id(self, id):
        parts = id.split("/")
        if len(parts) == 6 and parts[0] == "projects":
            return {"project": parts[1], "location": parts[3], "name": parts[5], "deletion_protection": True}
        return {}


class ContainerNodePool(GoogleResource):
    name = "container_node_pool"
    attributes = [
        Attribute("id", String(), computed=True),
        Attribute("name", String(), optional=True, computed=True, requires_replace=True),
        Attribute("cluster", String(), required=True, requires_replace=True),
        Attribute("location", String(), optional=True, computed=True, requires_replace=True),
        Attribute("project", String(), optional=True, computed=True, requires_replace=True),
        Attribute("initial_node_count", Number(), optional=True, requires_replace=True),
        Attribute("node_count", Number(), optional=True, computed=True),
    ]
    blocks = [
        ListBlock("autoscaling", [
            Attribute("min_node_count", Number(), optional=True),
            Attribute("max_node_count", Number(), optional=True),
        ], max_items=1),
        ListBlock("node_config", [
            Attribute("machine_type", String(), optional=True),
            Attribute("disk_size_gb", Number(), optional=True),
            Attribute("labels", Map(String()), optional=True),
            Attribute("oauth_scopes", List(String()), optional=True),
            Attribute("service_account", String(), optional=True),
        ], blocks=[
            ListBlock("taint", [
                Attribute("key", String(), required=True),
                Attribute("value", String(), required=True),
                Attribute("effect", String(), required=True),
            ]),
        ], max_items=1),
    ]
    checks = {
        ("location",): matches(LOCATION, "a region or zone"),
        ("node_count",): at_least(0),
        ("autoscaling", "*", "min_node_count"): at_least(0),
        ("autoscaling", "*", "max_node_count"): at_least(1),
        ("node_config", "*", "machine_type"): matches(MACHINE_TYPE, "a Compute Engine machine type"),
        ("node_config", "*", "disk_size_gb"): at_least(10),
        ("node_config", "*", "oauth_scopes"): each(matches(r"https://www\.googleapis\.com/auth/[a-z._-]+|[a-z._-]+",
                                                           "an OAuth scope")),
        ("node_config", "*", "service_account"): matches(r"default|[^@\s]+@[^@\s]+", "a service account email"),
        ("node_config", "*", "taint", "*", "effect"): one_of("NO_SCHEDULE", "PREFER_NO_SCHEDULE", "NO_EXECUTE"),
    }
    nested_replace = (("node_config", "*", "machine_type"),)

    def check(self, diags, config):
        for i, scaling in enumerate(config.get("autoscaling") or []):
            low, high = scaling.get("min_node_count"), scaling.get("max_node_count")
            if known(low) and known(high) and low > high:
                diags.add_error("Invalid autoscaling", f"min_node_count ({low}) is above max_node_count ({high})",
                                path=["autoscaling", (i,), "min_node_count"])

    def computed(self, ctx, state):
        cluster = state["cluster"]
        parts = cluster.split("/")
        from_cluster = len(parts) == 6 and parts[0] == "projects"
        project = parts[1] if from_cluster and not known(state.get("project")) else self.project(ctx, state)
        location = (parts[3] if from_cluster and not known(state.get("location"))
                    else self.default(ctx, state, "location", "zone", "region"))
        name = state["name"] if known(state.get("name")) else "tf-" + random_digits(8)
        scaling = (state.get("autoscaling") or [{}])[0]
        return {
            "project": project,
            "location": location,
            "name": name,
            "id": f"projects/{project}/locations/{location}/clusters/{parts[-1]}/nodePools/{name}",
            "node_count": scaling.get("min_node_count") or state.get("initial_node_count") or 1,
        }


class ArtifactRegistryRepository(GoogleResource):
    name = "artifact_registry_repository"
    attributes = [
        Attribute("id", String(), computed=True),
        Attribute("name", String(), computed=True),
        Attribute("location", String(), optional=True, computed=True, requires_replace=True),
        Attribute("project", String(), optional=True, computed=True, requires_replace=True),
        Attribute("repository_id", String(), required=True, requires_replace=True),
        Attribute("format", String(), required=True, requires_replace=True),
        Attribute("description", String(), optional=True),
        Attribute("labels", Map(String()), optional=True),
    ]
    checks = {
        ("location",): matches(r"[a-z]+(-[a-z]+\d+)?", "a region or multi-region"),
        ("repository_id",): matches(r"[a-z]([a-z0-9-]{0,61}[a-z0-9])?", "a repository id"),
        ("format",): one_of("DOCKER", "MAVEN", "NPM", "PYTHON", "APT", "YUM", "GO", "KFP", "GENERIC",
                            ignore_case=True),
    }

    def computed(self, ctx, state):
        project = self.project(ctx, state)
        location = self.default(ctx, state, "location", "region")
        return {
            "project": project,
            "location": location,
            "id": f"projects/{project}/locations/{location}/repositories/{state['repository_id']}",
            "name": state["repository_id"],
        }

    def parse_id(self, id):
        parts = id.split("/")
        if len(parts) == 6 and parts[0] == "projects":
            return {"project": parts[1], "location": parts[3], "repository_id": parts[5], "name": parts[5]}
        return {}


class ServiceAccount(GoogleResource):
    name = "service_account"
    attributes = [
        Attribute("id", String(), computed=True),
        Attribute("account_id", String(), required=True, requires_replace=True),
        Attribute("display_name", String(), optional=True),
        Attribute("description", String(), optional=True),
        Attribute("project", String(), optional=True, computed=True, requires_replace=True),
        Attribute("email", String(), computed=True),
        Attribute("name", String(), computed=True),
        Attribute("unique_id", String(), computed=True),
        Attribute("member", String(), computed=True),
    ]
    checks = {
        ("account_id",): matches(r"[a-z]([-a-z0-9]{4,28}[a-z0-9])",
                                 "a service account id (6-30 characters, lowercase letters, digits, hyphens)"),
    }

    def computed(self, ctx, state):
        project = self.project(ctx, state)
        email = f"{state['account_id']}@{project}.iam.gserviceaccount.com"
        return {
            "project": project,
            "email": email,
            "id": f"projects/{project}/serviceAccounts/{email}",
            "name": f"projects/{project}/serviceAccounts/{email}",
            "unique_id": random_digits(21),
            "member": f"serviceAccount:{email}",
        }

    def parse_id(self, id):
        parts = id.split("/")
        if len(parts) == 4 and parts[0] == "projects" and "@" in parts[3]:
            return {"project": parts[1], "account_id": parts[3].split("@")[0], "email": parts[3], "name": id,
                    "member": f"serviceAccount:{parts[3]}", "unique_id": random_digits(21)}
        return {}


class ProjectIamMember(GoogleResource):
    name = "project_iam_member"
    attributes = [
        Attribute("id", String(), computed=True),
        Attribute("project", String(), required=True, requires_replace=True),
        Attribute("role", String(), required=True, requires_replace=True),
        Attribute("member", String(), required=True, requires_replace=True),
        Attribute("etag", String(), computed=True),
    ]
    checks = {
        ("role",): matches(r"(roles/|projects/[^/]+/roles/|organizations/[^/]+/roles/)[A-Za-z0-9_.]+",
                           "a role (roles/NAME, projects/P/roles/NAME or organizations/O/roles/NAME)"),
        ("member",): matches(r"(user|serviceAccount|group|domain|deleted:[a-zA-Z]+):\S+"
                             r"|principal(Set)?://\S+",
                             "an IAM member (user:, serviceAccount:, group:, domain:, principal://, ...)"),
    }

    def computed(self, ctx, state):
        return {
            "id": f"{state['project']}/{state['role']}/{state['member']}",
            "etag": base64.b64encode(os.urandom(8)).decode(),
        }


class GoogleProvider(StandInProvider):
    source = "hashicorp/google"
    prefix = "google_"
    config_attributes = [
        Attribute("project", String(), optional=True),
        Attribute("region", String(), optional=True),
        Attribute("zone", String(), optional=True),
    ]
    config_checks = {("region",): matches(r"[a-z]+-[a-z]+\d+", "a region"),
                     ("zone",): matches(r"[a-z]+-[a-z]+\d+-[a-z]", "a zone")}
    resources = [ContainerCluster, ContainerNodePool, ArtifactRegistryRepository, ServiceAccount,
                 ProjectIamMember]


def main() -> None:
    serve(GoogleProvider())


if __name__ == "__main__":
    main()
