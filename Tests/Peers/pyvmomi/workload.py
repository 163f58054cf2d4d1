#!/usr/bin/env python3
"""Drive a vSphere SOAP endpoint with pyvmomi (the PyPI package).

Each VM goes through CreateVM_Task, PowerOnVM_Task, PowerOffVM_Task and
Destroy_Task, and every task is awaited with pyVim.task.WaitForTask. Several
VMs are handled at once, so WaitForTask runs concurrently from --threads
threads that share one session and therefore its default PropertyCollector.

stdout receives one JSON summary line; progress and errors go to stderr.
Exit status: 0 when every task completed, 1 when any failed or blocked,
2 on bad arguments or a failed connection or login.
"""

import argparse
import concurrent.futures
import contextlib
import json
import os
import socket
import ssl
import sys
import threading
import time
import urllib.parse
import uuid

from pyVim import connect, task as pyvim_task
from pyVmomi import vim

PASSWORD_ENV = "TAPEDECK_PASSWORD"

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_USAGE = 2


class WaitBlocked(Exception):
    """A task wait that hit --wait-timeout."""


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True,
                        help="SDK URL such as http://127.0.0.1:PORT/sdk, without credentials")
    parser.add_argument("--user", required=True, help="user name for Login")
    parser.add_argument("--password", default="",
                        help=f"password for Login (default: ${PASSWORD_ENV})")
    parser.add_argument("--insecure", action="store_true",
                        help="skip TLS certificate verification")
    parser.add_argument("--ca-file", help="PEM file of CA certificates to trust for https URLs")
    parser.add_argument("--vms", type=int, default=4, help="number of VMs (default: 4)")
    parser.add_argument("--threads", type=int, default=4,
                        help="number of VMs handled at once (default: 4)")
    parser.add_argument("--wait-timeout", type=float, default=30.0,
                        help="seconds a single HTTP request or task wait may take before it "
                             "counts as blocked (default: 30)")
    parser.add_argument("--name-prefix",
                        help="prefix for VM names (default: random per run)")
    args = parser.parse_args(argv)

    url = urllib.parse.urlsplit(args.url)
    if url.scheme not in ("http", "https"):
        parser.error(f"--url: scheme must be http or https, not {url.scheme!r}")
    if url.username is not None or url.password is not None:
        parser.error(f"--url must not contain credentials; use --user and --password or ${PASSWORD_ENV}")
    try:
        port = url.port
    except ValueError as error:
        parser.error(f"--url: {error}")
    if not url.hostname:
        parser.error("--url has no host")
    args.scheme = url.scheme
    args.host = url.hostname
    args.port = port or (443 if url.scheme == "https" else 80)
    args.path = url.path or "/sdk"

    args.password = args.password or os.environ.get(PASSWORD_ENV, "")
    if not args.password:
        parser.error(f"--password or ${PASSWORD_ENV} is required")
    if args.insecure and args.ca_file:
        parser.error("--insecure and --ca-file are mutually exclusive")
    if args.vms < 1:
        parser.error("--vms must be at least 1")
    if args.threads < 1:
        parser.error("--threads must be at least 1")
    if args.wait_timeout <= 0:
        parser.error("--wait-timeout must be positive")
    args.name_prefix = args.name_prefix or f"tapedeck-py-{uuid.uuid4().hex[:6]}"
    return args


def ssl_context(args):
    if args.scheme != "https":
        return None
    if args.insecure:
        return ssl._create_unverified_context()
    # An explicit context is passed even without --ca-file, because pyVim.connect
    # silently skips verification for localhost, 127.0.0.1 and ::1 otherwise.
    return ssl.create_default_context(cafile=args.ca_file)


def connect_service(args):
    return connect.SmartConnect(
        protocol=args.scheme,
        host=args.host,
        port=args.port,
        path=args.path,
        user=args.user,
        pwd=args.password,
        sslContext=ssl_context(args),
        # Bounds every HTTP request, so that a WaitForUpdates call that never
        # returns cannot hang the workload.
        httpConnectionTimeout=args.wait_timeout,
    )


def find_placement(content):
    """Return the VM folder, resource pool and datastore name to create VMs in.

    A cluster's pool is preferred, because vcsim's default inventory also has a
    standalone host.
    """
    datacenters = [e for e in content.rootFolder.childEntity if isinstance(e, vim.Datacenter)]
    if not datacenters:
        raise RuntimeError("inventory has no datacenter")
    datacenter = datacenters[0]
    compute = [e for e in datacenter.hostFolder.childEntity if isinstance(e, vim.ComputeResource)]
    compute.sort(key=lambda e: not isinstance(e, vim.ClusterComputeResource))
    if not compute:
        raise RuntimeError(f"datacenter {datacenter.name} has no compute resource")
    if not datacenter.datastore:
        raise RuntimeError(f"datacenter {datacenter.name} has no datastore")
    return datacenter.vmFolder, compute[0].resourcePool, datacenter.datastore[0].name


class Workload:
    def __init__(self, args, service):
        self.args = args
        self.service = service
        self.lock = threading.Lock()
        self.counts = {"completed": 0, "blocked": 0, "errors": 0}

    def record(self, outcome):
        with self.lock:
            self.counts[outcome] += 1

    def wait(self, name, method, task):
        """Wait for one task with WaitForTask and record the outcome.

        Returns the task's result, or raises after recording a failure.
        """
        try:
            state = pyvim_task.WaitForTask(
                task,
                si=self.service,
                maxWaitTime=self.args.wait_timeout,
                raiseOnError=True,
                log=lambda message: print(f"{name}: {method}: {message}", file=sys.stderr),
            )
        except (socket.timeout, TimeoutError) as error:
            self.record("blocked")
            raise WaitBlocked(f"{method}: no reply within {self.args.wait_timeout}s") from error
        except Exception as error:
            # WaitForTask raises a bare Exception when maxWaitTime runs out.
            if "exceeded timeout" in str(error):
                self.record("blocked")
                raise WaitBlocked(f"{method}: {error}") from error
            self.record("errors")
            raise
        if state != vim.TaskInfo.State.success:
            self.record("errors")
            raise RuntimeError(f"{method} ended in state {state}")
        self.record("completed")
        return task.info.result

    def provision(self, index, folder, pool, datastore):
        name = f"{self.args.name_prefix}-{index:03d}"
        config = vim.vm.ConfigSpec(
            name=name,
            guestId="otherGuest",
            numCPUs=1,
            memoryMB=32,
            files=vim.vm.FileInfo(vmPathName=f"[{datastore}]"),
        )
        vm = self.run_step(name, "CreateVM_Task",
                           lambda: folder.CreateVM_Task(config=config, pool=pool))
        for method in ("PowerOnVM_Task", "PowerOffVM_Task", "Destroy_Task"):
            self.run_step(name, method, getattr(vm, method))

    def run_step(self, name, method, start):
        """Start a task, wait for it and return its result."""
        try:
            task = start()
        except Exception:
            self.record("errors")
            raise
        return self.wait(name, method, task)


def run(args):
    try:
        service = connect_service(args)
    except vim.fault.InvalidLogin as error:
        print(f"workload.py: login: {error.msg}", file=sys.stderr)
        return EXIT_BAD_USAGE
    except Exception as error:
        print(f"workload.py: connect: {error}", file=sys.stderr)
        return EXIT_BAD_USAGE

    summary = {"wait": "WaitForTask", "vms": args.vms, "threads": args.threads,
               "completed": 0, "blocked": 0, "errors": 0, "elapsed_ms": 0, "waits": 0}
    start = time.monotonic()
    try:
        folder, pool, datastore = find_placement(service.RetrieveContent())
        workload = Workload(args, service)
        with concurrent.futures.ThreadPoolExecutor(max_workers=args.threads) as pool_executor:
            futures = {
                pool_executor.submit(workload.provision, i, folder, pool, datastore): i
                for i in range(args.vms)
            }
            for future in concurrent.futures.as_completed(futures):
                error = future.exception()
                if error is not None:
                    print(f"{args.name_prefix}-{futures[future]:03d}: {error}", file=sys.stderr)
        summary.update(workload.counts)
    except Exception as error:
        print(f"workload.py: {error}", file=sys.stderr)
        summary["errors"] += 1
    finally:
        summary["elapsed_ms"] = int((time.monotonic() - start) * 1000)
        try:
            connect.Disconnect(service)
        except Exception as error:
            print(f"workload.py: logout: {error}", file=sys.stderr)

    summary["waits"] = summary["completed"] + summary["blocked"] + summary["errors"]
    print(json.dumps(summary, separators=(",", ":")), file=sys.__stdout__, flush=True)
    expected = args.vms * 4
    ok = summary["completed"] == expected and summary["blocked"] == 0 and summary["errors"] == 0
    return EXIT_OK if ok else EXIT_FAILED


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    # pyVim.task prints some messages to stdout, which must carry only the
    # JSON summary, so everything else printed is sent to stderr.
    with contextlib.redirect_stdout(sys.stderr):
        return run(args)


if __name__ == "__main__":
    sys.exit(main())
