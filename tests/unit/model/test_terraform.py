"""Terraform stacks as data: plan summaries, the destroy guard, digests, and whether the
roots agree with config/federation.yaml (python-hcl2, no Terraform run)."""
from __future__ import annotations

import os
import shutil

import pytest

from deployer.model import federation, terraform as model
from tests.support import ROOT


def _show(*changes, outputs=None, variables=None):
    return {"resource_changes": [
        {"address": a, "type": a.split(".")[-2], "mode": "managed",
         "change": {"actions": list(acts), "after": {"name": a}, "after_unknown": {}}}
        for a, acts in changes], "output_changes": outputs or {},
        "variables": variables or {}}


def test_a_summary_counts_each_kind_of_change():
    show = _show(("module.k3s.hcloud_server.this", ["delete", "create"]),
                 ("module.k3s.hcloud_firewall.this", ["update"]),
                 ("module.k3s.hcloud_network.this", ["no-op"]),
                 ("module.k3s.ssh_resource.kubeconfig", ["create"]),
                 outputs={"kubeconfig": {"actions": ["update"]}, "x": {"actions": ["no-op"]}})
    summary = model.summarize("m", show)
    assert summary.counts() == {"create": 1, "update": 1, "delete": 0, "replace": 1}
    assert summary.outputs_changed == ["kubeconfig"]
    assert [c["address"] for c in summary.to_json()["changes"]] == [
        "module.k3s.hcloud_server.this", "module.k3s.hcloud_firewall.this",
        "module.k3s.ssh_resource.kubeconfig"]


def test_destroying_a_cluster_pool_or_server_needs_consent_by_name():
    show = _show(("module.k3s.hcloud_server.this", ["delete", "create"]),
                 ("module.gke.google_container_node_pool.user", ["delete"]),
                 ("module.gke.google_container_cluster.this", ["update"]),
                 ("module.k3s.hcloud_firewall.this", ["delete"]))
    summary = model.summarize("m", show)
    assert [c.address for c in summary.protected()] == [
        "module.k3s.hcloud_server.this", "module.gke.google_container_node_pool.user"]
    assert [c.address for c in summary.protected(("user",))] == [
        "module.k3s.hcloud_server.this"]
    assert summary.protected(("module.k3s.hcloud_server.this", "user")) == []


def test_the_digest_follows_what_the_plan_would_do():
    one = _show(("a.hcloud_server.this", ["create"]))
    same = _show(("a.hcloud_server.this", ["create"]))
    other = _show(("a.hcloud_server.this", ["create"]), variables={"location": {"value": "x"}})
    assert model.digest(one) == model.digest(same) != model.digest(other)


@pytest.fixture
def tree(tmp_path):
    for part in ("config", "terraform"):
        shutil.copytree(ROOT / part, tmp_path / part)
    return tmp_path


def test_the_example_stacks_agree_with_the_federation(tree):
    stacks = model.load_stacks(tree)
    assert set(stacks) == {"staging", "gke", "hetzner-fsn"}
    assert stacks["hetzner-fsn"].module_of_kind("hetzner-k3s") == "k3s"
    assert stacks["gke"].backend == "gcs" and stacks["hetzner-fsn"].backend == "s3"
    assert model.check_stacks(federation.load(tree), stacks, tree) == []


def test_disagreements_are_named(tree):
    shutil.rmtree(tree / "terraform/members/gke")
    shutil.copytree(tree / "terraform/members/staging", tree / "terraform/members/gone")
    tfvars = tree / "terraform/members/hetzner-fsn/terraform.tfvars"
    tfvars.write_text(tfvars.read_text() + 'kubernetes_version = "1.30"\n')
    problems = model.check_stacks(federation.load(tree), model.load_stacks(tree), tree)
    text = "\n".join(problems)
    assert "member gke runs on gke, but there is no stack terraform/members/gke" in text
    assert "terraform/members/gone: no member 'gone'" in text
    assert "hetzner-fsn/terraform.tfvars: sets kubernetes_version" in text


def test_an_override_file_switches_the_backend(tree):
    root = tree / "terraform/members/gke"
    (root / "backend_override.tf").write_text('terraform {\n  backend "local" {}\n}\n')
    assert model.load_stack("gke", root).backend == "local"


def test_bad_hcl_is_one_line_naming_the_file_in_the_repository_and_the_line(tree):
    (tree / "terraform/members/gke/broken.tf").write_text('resource "x" {\n  a = \n')
    from deployer.errors import ConfigError

    with pytest.raises(ConfigError) as caught:
        model.load_stacks(tree)
    message = str(caught.value)
    assert message.startswith("terraform/members/gke/broken.tf:2: not valid HCL: "), message
    assert "\n" not in message and str(tree) not in message and "at line" not in message
    assert (caught.value.file, caught.value.line) == ("terraform/members/gke/broken.tf", 2)
    # a tfvars file too, read for the federation checks
    (tree / "terraform/members/gke/broken.tf").unlink()
    (tree / "terraform/members/gke/terraform.tfvars").write_text('project = "x"\n}\n')
    with pytest.raises(ConfigError) as caught:
        model.check_stacks(federation.load(tree), model.load_stacks(tree), tree)
    assert str(caught.value).startswith("terraform/members/gke/terraform.tfvars:2: not valid HCL")
    (tree / "terraform/members/gke/terraform.tfvars").write_bytes(b'project = "\xff"\n')
    with pytest.raises(ConfigError) as caught:
        model.check_stacks(federation.load(tree), model.load_stacks(tree), tree)
    assert str(caught.value).startswith("terraform/members/gke/terraform.tfvars:1: not valid "
                                        "UTF-8")


def test_everything_but_disposable_resources_is_guarded():
    show = _show(("module.cluster.google_artifact_registry_repository.images",
                  ["delete", "create"]),
                 ("module.cluster.google_service_account.deploy", ["delete"]),
                 ("module.cluster.google_project_iam_member.deploy", ["delete", "create"]),
                 ("module.k3s.ssh_resource.kubeconfig", ["delete", "create"]))
    assert [c.address for c in model.summarize("m", show).protected()] == [
        "module.cluster.google_artifact_registry_repository.images",
        "module.cluster.google_service_account.deploy"]


def test_a_stack_without_a_backend_and_tfvars_naming_another_cluster(tree):
    main = tree / "terraform/members/gke/main.tf"
    text = main.read_text()
    start = text.index('  backend "gcs"')
    end = text.index("}\n", start) + 2
    main.write_text(text[:start] + text[end:])
    tfvars = tree / "terraform/members/staging/terraform.tfvars"
    tfvars.write_text(tfvars.read_text().replace('cluster_name = "staging"',
                                                 'cluster_name = "staging2"'))
    problems = "\n".join(model.check_stacks(federation.load(tree), model.load_stacks(tree),
                                            tree))
    assert "terraform/members/gke: no backend block" in problems
    assert "cluster_name 'staging2' is not the cluster.name 'staging' of staging" in problems


def test_a_parse_cache_gives_what_parsing_gives_and_follows_every_change(tree, tmp_path):
    cache = tmp_path / "parsed"
    fresh = model.load_stacks(tree)
    assert model.load_stacks(tree, cache) == fresh                  # filled
    entries = sorted(cache.iterdir())
    assert entries and all(p.suffix == ".json" for p in entries)
    assert model.load_stacks(tree, cache) == fresh                  # read back
    assert sorted(cache.iterdir()) == entries
    # a changed file is parsed again (its old entry stays, unused)
    variables = tree / "terraform/members/gke/variables.tf"
    variables.write_text(variables.read_text() + '\nvariable "extra" {\n  type = string\n}\n')
    assert "extra" in model.load_stack("gke", tree / "terraform/members/gke", cache).variables
    assert len(list(cache.iterdir())) == len(entries) + 1
    # of a tfvars file (a local one may hold a token) only the settings checked are kept
    tfvars = tree / "terraform/members/gke/terraform.tfvars"
    tfvars.write_text(tfvars.read_text() + 'domain = "elsewhere.example.org"\n'
                      'hcloud_token = "tok-3f9a1c"\n')
    for _ in range(2):          # filled, then read back
        problems = model.check_stacks(federation.load(tree), model.load_stacks(tree, cache),
                                      tree, parse_cache=cache)
        assert any("terraform.tfvars: sets domain" in p for p in problems), problems
    _kept_without_the_token_and_keyed_by_times(tree, cache, tfvars)


def test_a_broken_parse_cache_entry_is_parsed_again(tree, tmp_path):
    cache = tmp_path / "parsed"
    fresh = model.load_stacks(tree, cache)
    for entry in cache.iterdir():
        entry.write_text('{"truncat')
    assert model.load_stacks(tree, cache) == fresh
    # and bad HCL is still one error, never a cache entry
    (tree / "terraform/members/gke/broken.tf").write_text('resource "x" {\n  a = \n')
    before = set(cache.iterdir())
    from deployer.errors import ConfigError

    with pytest.raises(ConfigError, match="gke/broken.tf:2: not valid HCL"):
        model.load_stacks(tree, cache)
    assert set(cache.iterdir()) == before


def test_json_variables_files_are_checked_as_tfvars_are_naming_the_line(tree):
    gke = tree / "terraform/members/gke"
    (gke / "zz.auto.tfvars.json").write_text(
        '{\n  "zone": "us-central1-a",\n  "project": "someone-elses-project",\n'
        '  "labels": {"domain": "nested, not a variable"},\n  "domain": "elsewhere.org"\n}\n')
    (gke / "terraform.tfvars.json").write_text('{"cluster_name": "other"}')
    problems = model.check_stacks(federation.load(tree), model.load_stacks(tree), tree)
    assert problems == [
        "terraform/members/gke/terraform.tfvars.json:1: cluster_name 'other' is not the "
        "cluster.name 'prod' of gke in config/federation.yaml",
        "terraform/members/gke/zz.auto.tfvars.json:5: sets domain, which comes from "
        "config/federation.yaml; remove it there",
        "terraform/members/gke/zz.auto.tfvars.json:3: project 'someone-elses-project' is not "
        "the cluster.project 'example-binder-prod' of gke in config/federation.yaml"]
    # the same setting in HCL is caught the same way
    (gke / "zz.auto.tfvars.json").unlink()
    (gke / "terraform.tfvars.json").unlink()
    (gke / "zz.auto.tfvars").write_text('project = "someone-elses-project"\n')
    assert model.check_stacks(federation.load(tree), model.load_stacks(tree), tree) == [
        "terraform/members/gke/zz.auto.tfvars: project 'someone-elses-project' is not the "
        "cluster.project 'example-binder-prod' of gke in config/federation.yaml"]


def test_variables_files_come_in_terraforms_order(tree):
    gke = tree / "terraform/members/gke"
    for name in ("b.auto.tfvars", "a.auto.tfvars.json", "terraform.tfvars.json", "ci.tfvars",
                 "c.auto.tfvars.json"):
        (gke / name).write_text("{}" if name.endswith(".json") else "")
    assert [p.name for p in model.variable_files(gke)] == [
        "terraform.tfvars", "terraform.tfvars.json", "a.auto.tfvars.json", "b.auto.tfvars",
        "c.auto.tfvars.json", "ci.tfvars"]


@pytest.mark.parametrize("text,expected", [
    ('{"project": "x",}', "zz.auto.tfvars.json:1: not valid JSON: "),
    ('{\n  "project" "x"\n}', "zz.auto.tfvars.json:2: not valid JSON: "),
    ("", "zz.auto.tfvars.json:1: not valid JSON: "),
    ('["project", "x"]', "zz.auto.tfvars.json: not a JSON object but an array"),
    ('"project"', "zz.auto.tfvars.json: not a JSON object but a string"),
])
def test_a_json_variables_file_that_is_not_one_object_is_one_error(tree, text, expected):
    from deployer.errors import ConfigError

    (tree / "terraform/members/gke/zz.auto.tfvars.json").write_text(text)
    with pytest.raises(ConfigError) as caught:
        model.check_stacks(federation.load(tree), model.load_stacks(tree), tree)
    message = str(caught.value)
    assert message.startswith("terraform/members/gke/" + expected), message
    assert "\n" not in message and "hint: " in message


def _kept_without_the_token_and_keyed_by_times(tree, cache, tfvars):
    """What the parse cache keeps of a variables file holding a token: the checked setting,
    never the token; and its entry is named by the file's path and times, not a hash of its
    bytes (a short token could be guessed back from it): the same bytes written again are a
    new entry, found by the file's new times. Returns the file's stat before that."""
    kept = "".join(p.read_text() for p in cache.iterdir())
    assert "elsewhere" in kept and "tok-3f9a1c" not in kept and "hcloud_token" not in kept
    before = set(cache.iterdir())
    stat = tfvars.stat()
    tfvars.write_bytes(tfvars.read_bytes())
    os.utime(tfvars, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))   # whatever the clock
    model.check_stacks(federation.load(tree), model.load_stacks(tree, cache), tree,
                       parse_cache=cache)
    assert len(set(cache.iterdir()) - before) == 1
    return stat


def test_the_parse_cache_keeps_of_a_json_variables_file_only_what_is_checked(tree, tmp_path):
    cache = tmp_path / "parsed"
    tfvars = tree / "terraform/members/gke/secret.auto.tfvars.json"
    tfvars.write_text('{"hcloud_token": "tok-3f9a1c", "domain": "elsewhere.example.org"}')
    for _ in range(2):          # filled, then read back
        problems = model.check_stacks(federation.load(tree), model.load_stacks(tree, cache),
                                      tree, parse_cache=cache)
        assert problems == ["terraform/members/gke/secret.auto.tfvars.json:1: sets domain, "
                            "which comes from config/federation.yaml; remove it there"]
    stat = _kept_without_the_token_and_keyed_by_times(tree, cache, tfvars)
    # a changed file is read anew
    tfvars.write_text('{"hcloud_token": "tok-3f9a1c"}')
    os.utime(tfvars, ns=(stat.st_atime_ns, stat.st_mtime_ns + 2 * 10**9))
    assert model.check_stacks(federation.load(tree), model.load_stacks(tree, cache), tree,
                              parse_cache=cache) == []
