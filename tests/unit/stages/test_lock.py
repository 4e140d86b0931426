"""The deploy lock (a coordination.k8s.io/v1 Lease) against the Kubernetes API test double."""
from __future__ import annotations

import datetime
import os
import socket
import time

import pytest

from deployer.errors import DeployError
from deployer.adapters.kube import Kube
from deployer.console import Console
from deployer.stages.lock import DeployLock, holder_identity

NS = "member-staging"
UTC = datetime.timezone.utc


@pytest.fixture
def api_client(kubeconfig):
    from kubernetes import config

    api_client = config.new_client_from_config(config_file=str(kubeconfig))
    yield api_client
    api_client.close()


@pytest.fixture
def coordination(api_client):
    from kubernetes import client

    return client.CoordinationV1Api(api_client)


def make_lock(api_client, holder, messages, **kwargs):
    kwargs.setdefault("poll", 0.1)
    return DeployLock(Kube(api_client), NS, holder, console=Console(), log=messages.append,
                      **kwargs)


def lease_of(kube_api) -> dict | None:
    return kube_api.object("leases", NS, "deployer-lock", group="coordination.k8s.io")


def renew_time(kube_api) -> datetime.datetime:
    return datetime.datetime.fromisoformat(lease_of(kube_api)["spec"]["renewTime"]
                                           .replace("Z", "+00:00"))


def write_lease(coordination, holder, *, renewed, transitions=0, duration=60):
    """Another deployer's Lease, written through the client (namespace created first)."""
    from kubernetes import client

    try:
        client.CoreV1Api(coordination.api_client).create_namespace(
            client.V1Namespace(metadata=client.V1ObjectMeta(name=NS)))
    except client.ApiException as exc:
        assert exc.status == 409
    return coordination.create_namespaced_lease(NS, client.V1Lease(
        metadata=client.V1ObjectMeta(name="deployer-lock"),
        spec=client.V1LeaseSpec(holder_identity=holder, lease_duration_seconds=duration,
                                acquire_time=renewed, renew_time=renewed,
                                lease_transitions=transitions)))


def steal(coordination, holder):
    """Someone else takes the Lease over (a replace with the current resourceVersion)."""
    lease = coordination.read_namespaced_lease("deployer-lock", NS)
    lease.spec.holder_identity = holder
    lease.spec.acquire_time = lease.spec.renew_time = datetime.datetime.now(UTC)
    return coordination.replace_namespaced_lease("deployer-lock", NS, lease)


def test_acquire_creates_namespace_and_lease(api_client, kube_api):
    messages: list[str] = []
    assert kube_api.object("namespaces", "", NS) is None
    make_lock(api_client, "alice@laptop", messages, duration=30).acquire(timeout=1)
    assert kube_api.object("namespaces", "", NS) is not None
    spec = lease_of(kube_api)["spec"]
    assert spec["holderIdentity"] == "alice@laptop"
    assert spec["leaseDurationSeconds"] == 30
    assert spec["leaseTransitions"] == 0
    assert spec["acquireTime"] == spec["renewTime"]
    renewed = datetime.datetime.fromisoformat(spec["renewTime"].replace("Z", "+00:00"))
    assert renewed.utcoffset() == datetime.timedelta(0)
    assert abs((datetime.datetime.now(UTC) - renewed).total_seconds()) < 5


def test_second_holder_waits_then_fails_naming_the_first(api_client):
    messages: list[str] = []
    make_lock(api_client, "alice@laptop", messages).acquire(timeout=1)
    other = make_lock(api_client, "https://github.com/o/r/actions/runs/1", messages, poll=0.2)
    started = time.monotonic()
    with pytest.raises(DeployError) as info:
        other.acquire(timeout=1.5)
    assert 1.4 <= time.monotonic() - started < 3
    text = str(info.value)
    assert f"member namespace {NS} is locked by alice@laptop since " in text
    assert "last renewed" in text and "--break-lock" in text
    waiting = [m for m in messages if m.startswith("waiting for the deploy lock")]
    assert len(waiting) == 1 and "held by alice@laptop since" in waiting[0]


def test_same_holder_reacquires_at_once(api_client, kube_api):
    messages: list[str] = []
    make_lock(api_client, "alice@laptop", messages).acquire(timeout=1)
    first = lease_of(kube_api)
    started = time.monotonic()
    make_lock(api_client, "alice@laptop", messages).acquire(timeout=5)
    assert time.monotonic() - started < 1
    second = lease_of(kube_api)
    assert second["spec"]["holderIdentity"] == "alice@laptop"
    assert second["metadata"]["resourceVersion"] != first["metadata"]["resourceVersion"]
    assert second["spec"]["leaseTransitions"] == 0


def test_expired_lease_is_taken_over(api_client, coordination, kube_api):
    long_ago = datetime.datetime(2020, 1, 2, 3, 4, 5, tzinfo=UTC)
    write_lease(coordination, "bob@dead-laptop", renewed=long_ago, transitions=2)
    messages: list[str] = []
    make_lock(api_client, "alice@laptop", messages).acquire(timeout=1)
    spec = lease_of(kube_api)["spec"]
    assert spec["holderIdentity"] == "alice@laptop"
    assert spec["leaseTransitions"] == 3
    assert any("stale deploy lock from bob@dead-laptop" in m and "2020-01-02T03:04:05Z" in m
               for m in messages)


def test_lease_renewed_recently_is_not_expired(api_client, coordination):
    recent = datetime.datetime.now(UTC) - datetime.timedelta(seconds=5)
    write_lease(coordination, "bob@laptop", renewed=recent, duration=60)
    with pytest.raises(DeployError, match="locked by bob@laptop"):
        make_lock(api_client, "alice@laptop", []).acquire(timeout=0.3)


def test_break_lock_removes_a_fresh_lease_with_a_warning(api_client, kube_api, capsys):
    make_lock(api_client, "bob@laptop", []).acquire(timeout=1)
    lock = DeployLock(Kube(api_client), NS, "alice@laptop", console=Console(),
                      poll=0.1)  # default log: the console's info
    lock.acquire(timeout=0.5, break_lock=True)
    assert lease_of(kube_api)["spec"]["holderIdentity"] == "alice@laptop"
    err = capsys.readouterr().err
    assert f"warning: broke the deploy lock {NS}/deployer-lock held by bob@laptop since" in err
    assert f"took the deploy lock {NS}/deployer-lock as alice@laptop" in err
    assert ("DELETE", f"/apis/coordination.k8s.io/v1/namespaces/{NS}/leases/deployer-lock") in \
        kube_api.requests


def test_held_renews_and_releases(api_client, kube_api):
    messages: list[str] = []
    lock = make_lock(api_client, "alice@laptop", messages, duration=3)
    with lock.held(timeout=1):
        acquired = lease_of(kube_api)["spec"]["acquireTime"]
        first = renew_time(kube_api)
        time.sleep(1.5)
        assert renew_time(kube_api) > first
        assert lease_of(kube_api)["spec"]["acquireTime"] == acquired
        assert not lock.lost
    assert lease_of(kube_api) is None


def test_held_releases_when_the_block_raises(api_client, kube_api):
    lock = make_lock(api_client, "alice@laptop", [], duration=3)
    with pytest.raises(RuntimeError, match="upgrade failed"):
        with lock.held(timeout=1):
            assert lease_of(kube_api) is not None
            raise RuntimeError("upgrade failed")
    assert lease_of(kube_api) is None


def test_release_leaves_a_lease_someone_else_holds(api_client, coordination, kube_api):
    messages: list[str] = []
    lock = make_lock(api_client, "alice@laptop", messages)
    lock.acquire(timeout=1)
    steal(coordination, "bob@laptop")
    lock.release()
    assert lease_of(kube_api)["spec"]["holderIdentity"] == "bob@laptop"
    assert any("no longer ours" in m for m in messages)


def test_the_double_honours_delete_preconditions(api_client, coordination, kube_api):
    from kubernetes import client

    make_lock(api_client, "alice@laptop", []).acquire(timeout=1)
    meta = coordination.read_namespaced_lease("deployer-lock", NS).metadata
    for wrong in (client.V1Preconditions(resource_version="1"),
                  client.V1Preconditions(uid="not-the-uid")):
        with pytest.raises(client.ApiException) as info:
            coordination.delete_namespaced_lease("deployer-lock", NS, body=client.V1DeleteOptions(
                preconditions=wrong))
        assert info.value.status == 409 and "Precondition failed" in info.value.body
    assert lease_of(kube_api) is not None
    coordination.delete_namespaced_lease("deployer-lock", NS, body=client.V1DeleteOptions(
        preconditions=client.V1Preconditions(uid=meta.uid, resource_version=meta.resource_version)))
    assert lease_of(kube_api) is None


def test_renewal_notices_the_lock_was_lost(api_client, coordination, kube_api, capsys):
    messages: list[str] = []
    lock = make_lock(api_client, "alice@laptop", messages, duration=3)
    with lock.held(timeout=1):
        steal(coordination, "bob@laptop")
        deadline = time.monotonic() + 3
        while not lock.lost and time.monotonic() < deadline:
            time.sleep(0.05)
        assert lock.lost
    assert lease_of(kube_api)["spec"]["holderIdentity"] == "bob@laptop"  # not deleted
    assert f"warning: lost the deploy lock {NS}/deployer-lock: it is now held by bob@laptop" \
        in capsys.readouterr().err
    assert any("not releasing it" in m for m in messages)


def test_renewal_survives_a_server_error(api_client, kube_api):
    messages: list[str] = []
    lock = make_lock(api_client, "alice@laptop", messages, duration=3)
    with lock.held(timeout=1):
        first = renew_time(kube_api)
        kube_api.faults.fail(r"/leases/deployer-lock", 503, times=1, methods=("PUT",))
        time.sleep(2.4)   # tick 1 (1 s) hits the 503, tick 2 (2 s) renews
        assert renew_time(kube_api) > first
        assert not lock.lost
    assert any("renewing the deploy lock" in m and "503" in m for m in messages)
    assert lease_of(kube_api) is None


def test_holder_identity_in_ci():
    env = {"GITHUB_RUN_ID": "42", "GITHUB_REPOSITORY": "jupyterhub/mybinder.org-deploy",
           "USER": "runner"}
    assert holder_identity(env) == \
        "https://github.com/jupyterhub/mybinder.org-deploy/actions/runs/42"
    env["GITHUB_SERVER_URL"] = "https://ghe.example.org"
    assert holder_identity(env) == \
        "https://ghe.example.org/jupyterhub/mybinder.org-deploy/actions/runs/42"
    env.update(GITHUB_JOB="deploy-staging", GITHUB_RUN_ATTEMPT="2")
    assert holder_identity(env) == ("https://ghe.example.org/jupyterhub/mybinder.org-deploy/"
                                    "actions/runs/42 (job deploy-staging, attempt 2)")


def test_holder_identity_on_a_laptop():
    host = socket.gethostname()
    pid = f"(pid {os.getpid()})"
    assert holder_identity({"USER": "alice", "LOGNAME": "other"}) == f"alice@{host} {pid}"
    assert holder_identity({"LOGNAME": "bob"}) == f"bob@{host} {pid}"
    assert holder_identity({}).endswith(f"@{host} {pid}")


def test_an_api_server_that_does_not_answer_fails_soon_saying_why(api_client, kube_api):
    messages: list[str] = []
    lock = make_lock(api_client, "alice@laptop", messages, unreachable_for=1.5)
    kube_api.go_away()
    started = time.monotonic()
    with pytest.raises(DeployError) as info:
        lock.acquire(timeout=600)
    assert time.monotonic() - started < 60, "not the whole lock timeout"
    reason = f"cannot reach the API server at {kube_api.url}: connection refused"
    assert info.value.message == f"cannot take the deploy lock {NS}/deployer-lock: {reason}"
    assert "reachable" in info.value.hint
    assert messages and all(reason in m and "retrying" in m for m in messages)
    assert len(messages) < 5, "retried with backoff, said once in a while"


def test_an_api_server_back_within_the_retries_gives_the_lock(api_client, kube_api):
    import threading

    messages: list[str] = []
    lock = make_lock(api_client, "alice@laptop", messages, unreachable_for=10)
    kube_api.go_away()
    threading.Timer(0.5, kube_api.come_back).start()
    lock.acquire(timeout=600)
    try:
        assert lease_of(kube_api)["spec"]["holderIdentity"] == "alice@laptop"
        assert "connection refused" in messages[0]
    finally:
        lock.release()
