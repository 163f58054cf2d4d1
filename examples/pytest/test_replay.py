"""pyvmomi code tested against `tapedeck replay` instead of a live vCenter.

The cassette was recorded by Tests/Peers/pyvmomi/workload.py with
--name-prefix tapedeck-py. Replay returns a recorded response only to a
request that matches it, so this test reaches the inventory and builds the VM
config the way that client did. Run it from the repository root, after `swift build`:

    python3 -m pytest -q examples/pytest
"""

import urllib.parse

from pyVim.connect import Disconnect, SmartConnect
from pyVim.task import WaitForTask
from pyVmomi import vim

# Seconds. Replay responds within milliseconds, so this only bounds a hang.
REQUEST_TIMEOUT = 30


def find_placement(content):
    """Return the VM folder, resource pool and datastore name of the first datacenter.

    Each attribute read below is a Fetch request that the recording holds.
    The recorded inventory (vcsim's) has a cluster and a standalone host.
    The recorded client took the cluster's pool, so this does too.
    """
    datacenter = next(e for e in content.rootFolder.childEntity if isinstance(e, vim.Datacenter))
    compute = [e for e in datacenter.hostFolder.childEntity if isinstance(e, vim.ComputeResource)]
    compute.sort(key=lambda e: not isinstance(e, vim.ClusterComputeResource))
    return datacenter.vmFolder, compute[0].resourcePool, datacenter.datastore[0].name


def test_create_vm_task_succeeds(replay_url):
    url = urllib.parse.urlsplit(replay_url)
    # Replay checks no password, so any one will do. Over http, pyvmomi needs
    # no SSL context. pyvmomi waits for a response forever by default, so a
    # bound on each request turns a hung request into a failed test.
    si = SmartConnect(protocol="http", host=url.hostname, port=url.port, path="/sdk",
                      user="admin", pwd="not-checked", httpConnectionTimeout=REQUEST_TIMEOUT)
    try:
        folder, pool, datastore = find_placement(si.RetrieveContent())
        # Every field must equal the recorded request's, name included:
        # `tapedeck cat CASSETTE` shows what was sent.
        config = vim.vm.ConfigSpec(
            name="tapedeck-py-000",
            guestId="otherGuest",
            numCPUs=1,
            memoryMB=32,
            files=vim.vm.FileInfo(vmPathName=f"[{datastore}]"),
        )
        task = folder.CreateVM_Task(config=config, pool=pool)
        # WaitForTask watches the task through the session's PropertyCollector,
        # which replay models from the recording, and returns the final state.
        assert WaitForTask(task, si=si, maxWaitTime=REQUEST_TIMEOUT) == vim.TaskInfo.State.success
        assert isinstance(task.info.result, vim.VirtualMachine)
    finally:
        Disconnect(si)
