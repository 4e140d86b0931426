"""`status` columns: one the credentials may not read is marked, the others still shown."""
from deployer.adapters.kube import KubeError
from deployer.stages.status import MemberStatus, fill_columns
from tests.fakes.adapters import FakeCluster
from tests.unit.stages.test_pipeline import MANIFEST


def test_a_forbidden_column_is_marked_and_the_rest_is_read(workspace):
    cluster = FakeCluster(MANIFEST)
    cluster.installed()
    cluster.fail("read_lease", KubeError("HTTP 403: leases is forbidden", status=403))
    row = MemberStatus("staging")
    fill_columns(row, cluster.kube, workspace.federation.member("staging"))
    assert row.lock == "forbidden (HTTP 403)"
    assert row.workloads == "1/1" and row.certificates == "-"
    assert row.unread == ["lock: HTTP 403: leases is forbidden"] and not row.error
