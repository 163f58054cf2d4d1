"""Helpers shared by the benchmark scripts in this directory (bench-record,
bench-replay): SOAP bodies, starting and stopping servers, /proc readings, wrk
runs, builds and the machine description.

Each script sets `benchlib.program` to its own name, which prefixes the progress
lines that `log` writes to stderr.
"""

import ctypes
import http.client
import json
import math
import os
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TAPEDECK = REPO / ".build" / "release" / "tapedeck"
VCSIM = REPO / ".build" / "peers" / "vcsim"
VCSIM_USER = "admin"

WRK_THREADS = 2
SOCKET_TIMEOUT_S = 10.0
READY_TIMEOUT_S = 60.0
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")

# The name that prefixes progress lines. Each script sets its own.
program = "bench"

def log(message):
    print(f"{program}: {message}", file=sys.stderr, flush=True)


class BenchmarkError(Exception):
    pass


# --- SOAP bodies -------------------------------------------------------------

def envelope(body):
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"'
        ' xmlns:xsd="http://www.w3.org/2001/XMLSchema"'
        ' xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
        f"<soapenv:Body>{body}</soapenv:Body></soapenv:Envelope>"
    ).encode()


RETRIEVE_SERVICE_CONTENT = envelope(
    '<RetrieveServiceContent xmlns="urn:vim25">'
    '<_this type="ServiceInstance">ServiceInstance</_this>'
    "</RetrieveServiceContent>"
)


def login_body(password):
    # The password goes into XML text, so the characters XML reserves are escaped.
    escaped = password.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return envelope(
        '<Login xmlns="urn:vim25"><_this type="SessionManager">SessionManager</_this>'
        f"<userName>{VCSIM_USER}</userName><password>{escaped}</password></Login>"
    )


def retrieve_name_body(property_collector, folder):
    return envelope(
        '<RetrievePropertiesEx xmlns="urn:vim25">'
        f'<_this type="PropertyCollector">{property_collector}</_this>'
        "<specSet><propSet><type>Folder</type><pathSet>name</pathSet></propSet>"
        f'<objectSet><obj type="Folder">{folder}</obj></objectSet></specSet>'
        "<options></options></RetrievePropertiesEx>"
    )


SOAP_HEADERS = {
    "Content-Type": "text/xml; charset=utf-8",
    # vcsim from govmomi 0.24 reports API version 6.5, so clients send that.
    "SOAPAction": '"urn:vim25/6.5"',
}


# --- Processes ---------------------------------------------------------------

_libc = ctypes.CDLL(None, use_errno=True)
PR_SET_PDEATHSIG = 1


def _die_with_parent():
    # Runs in the child before exec: the kernel sends SIGTERM to the child when
    # this script dies, even by SIGKILL, so no server outlives the benchmark.
    _libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


class Processes:
    """Servers this run started, stopped in reverse start order at the end."""

    def __init__(self, directory):
        self.directory = directory
        self.running = []

    def start(self, name, argv, env=None):
        stdout = open(self.directory / f"{name}.stdout", "wb")
        stderr = open(self.directory / f"{name}.stderr", "wb")
        process = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr, env=env,
            preexec_fn=_die_with_parent, start_new_session=True)
        stdout.close()
        stderr.close()
        self.running.append((name, process))
        return process

    def stop(self, process, timeout):
        """Send SIGTERM, wait up to `timeout` seconds, then SIGKILL; return the exit code."""
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                name = self.name_of(process)
                log(f"{name} (pid {process.pid}) did not exit {timeout:.0f} s after SIGTERM; sending SIGKILL")
                process.kill()
                process.wait()
        self.running = [(n, p) for n, p in self.running if p is not process]
        return process.returncode

    def stop_all(self):
        for _, process in reversed(list(self.running)):
            self.stop(process, 15)

    def name_of(self, process):
        return next((n for n, p in self.running if p is process), str(process.args[0]))

    def stderr_tail(self, name, lines=15):
        path = self.directory / f"{name}.stderr"
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def wait_for_ready_file(path, process, name, processes):
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if path.exists() and path.read_text().strip():
            return path.read_text().strip()
        if process.poll() is not None:
            raise BenchmarkError(
                f"{name} exited with status {process.returncode} before writing {path.name}:\n"
                + processes.stderr_tail(name))
        time.sleep(0.05)
    raise BenchmarkError(f"{name} wrote no {path.name} within {READY_TIMEOUT_S:.0f} s")


def wait_for_port(port, process, name, processes):
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise BenchmarkError(
                f"{name} exited with status {process.returncode} before listening:\n"
                + processes.stderr_tail(name))
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise BenchmarkError(f"{name} did not listen on 127.0.0.1:{port} within {READY_TIMEOUT_S:.0f} s")


def free_port():
    # mitmdump has no ready file and cannot report a port it picked itself, so
    # the port is chosen here. Another program could take it before mitmdump
    # binds, in which case mitmdump exits and the run fails with its error.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def parse_origin(url):
    match = re.match(r"^http://127\.0\.0\.1:(\d+)(/.*)?$", url)
    if not match:
        raise BenchmarkError(f"expected a loopback URL such as http://127.0.0.1:PORT, got {url!r}")
    return int(match.group(1))


# --- /proc readings ----------------------------------------------------------

def cpu_ticks(pid):
    """User plus system CPU time of a process or thread, in clock ticks."""
    with open(f"/proc/{pid}/stat") as stat:
        text = stat.read()
    # The command name in brackets may contain spaces, so split after it.
    fields = text[text.rindex(")") + 2:].split()
    return int(fields[11]) + int(fields[12])


def thread_ticks(pid):
    """CPU ticks per live thread: {tid: (thread name, ticks)}."""
    threads = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as stat:
                text = stat.read()
        except FileNotFoundError:
            continue  # The thread exited between the listing and the read.
        name = text[text.index("(") + 1:text.rindex(")")]
        fields = text[text.rindex(")") + 2:].split()
        threads[tid] = (name, int(fields[11]) + int(fields[12]))
    return threads


def thread_schedstat(pid):
    """Per live thread: {tid: (thread name, CPU nanoseconds, timeslices run)}.

    From /proc/PID/task/TID/schedstat, which counts in nanoseconds. Use this
    instead of `thread_ticks` for many threads that each run briefly, because
    their per-thread tick counts stay at zero."""
    threads = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/comm") as comm:
                name = comm.read().strip()
            with open(f"/proc/{pid}/task/{tid}/schedstat") as schedstat:
                run_ns, _, slices = schedstat.read().split()
        except (FileNotFoundError, ProcessLookupError):
            continue  # The thread exited between the listing and the read.
        threads[tid] = (name, int(run_ns), int(slices))
    return threads


def memory_kb(pid):
    """VmRSS and VmHWM of a process, in KiB."""
    values = {}
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                values[key] = int(rest.split()[0])
    return values.get("VmRSS", 0), values.get("VmHWM", 0)


class CpuMeter:
    """CPU time that a set of processes spent between start() and stop()."""

    def __init__(self, pids):
        self.pids = {name: pid for name, pid in pids.items() if pid}

    def start(self):
        self.before = {name: cpu_ticks(pid) for name, pid in self.pids.items()}
        self.children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
        self.started = time.monotonic()

    def stop(self):
        elapsed = time.monotonic() - self.started
        seconds = {name: (cpu_ticks(pid) - self.before[name]) / CLOCK_TICKS for name, pid in self.pids.items()}
        # wrk is the only child that exits while the meter runs, so the change in
        # the children's usage is wrk's CPU time.
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        seconds["children"] = (
            children.ru_utime + children.ru_stime
            - self.children_before.ru_utime - self.children_before.ru_stime)
        return seconds, elapsed


class ProcessSampler(threading.Thread):
    """Samples a proxy's memory every 50 ms, and its per-thread CPU twice during a
    wrk run. The two CPU samples skip the first and last half second, when
    connections open and close, so every connection's thread is in both."""

    def __init__(self, pid, duration):
        super().__init__(daemon=True)
        self.pid = pid
        self.duration = duration
        self.halt = threading.Event()
        self.max_rss_kb = 0
        self.hwm_kb = 0
        self.first_threads = None
        self.last_threads = None
        self.thread_window = 0.0

    def run(self):
        started = time.monotonic()
        first_at = started + min(0.5, self.duration / 4)
        last_at = started + self.duration - min(0.5, self.duration / 4)
        while not self.halt.is_set():
            now = time.monotonic()
            try:
                rss, hwm = memory_kb(self.pid)
                self.max_rss_kb = max(self.max_rss_kb, rss)
                self.hwm_kb = max(self.hwm_kb, hwm)
                if self.first_threads is None and now >= first_at:
                    self.first_threads, first_time = thread_ticks(self.pid), now
                elif self.first_threads is not None and self.last_threads is None and now >= last_at:
                    self.last_threads = thread_ticks(self.pid)
                    self.thread_window = now - first_time
            except FileNotFoundError:
                return  # The process exited; the run reports that separately.
            self.halt.wait(0.05)

    def threads_by_name(self):
        """Compute the CPU used per thread between the two samples, in cores, busiest first."""
        if not self.first_threads or not self.last_threads or self.thread_window <= 0:
            return []
        return cores_by_thread(self.first_threads, self.last_threads, self.thread_window)


def cores_by_thread(first_threads, last_threads, window, units_per_second=CLOCK_TICKS):
    """CPU per thread between two samples taken `window` seconds apart, in
    cores, busiest first, as (label, thread count, cores). A sample maps thread
    ids to (name, CPU time, ...), the time in clock ticks as `thread_ticks`
    gives it, or in other units with `units_per_second`.

    Threads whose name more than three threads share, such as one per client
    connection, are summed into one entry. The others are listed one by one,
    because a single busy thread such as a writer is what a reader looks for."""
    used = {}
    for tid, (name, ticks, *_) in last_threads.items():
        earlier = first_threads[tid][1] if tid in first_threads else 0
        used[tid] = (name, (ticks - earlier) / units_per_second / window)
    counts = {}
    for name, _ in used.values():
        counts[name] = counts.get(name, 0) + 1
    entries = {}
    for tid, (name, cores) in used.items():
        label = name if counts[name] > 3 else f"{name} (thread {tid})"
        count, total = entries.get(label, (0, 0.0))
        entries[label] = (count + 1, total + cores)
    return sorted(((label, count, cores) for label, (count, cores) in entries.items()), key=lambda item: -item[2])


class SoapClient:
    """One keep-alive HTTP/1.1 connection to a target, timing each call."""

    def __init__(self, name, port):
        self.name = name
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=SOCKET_TIMEOUT_S)
        self.connection.connect()
        # Each request goes out in one send, but disabling Nagle keeps a small
        # write from waiting for a delayed ACK on any target.
        self.connection.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.headers = dict(SOAP_HEADERS)
        self.calls = 0
        self.property_collector = None
        self.root_folder = None

    def call(self, body, expected):
        """Send one SOAP call and check the response; return (response, body, elapsed ns)."""
        started = time.perf_counter_ns()
        self.connection.request("POST", "/sdk", body=body, headers=self.headers)
        response = self.connection.getresponse()
        payload = response.read()
        elapsed = time.perf_counter_ns() - started
        self.calls += 1
        if response.status != 200 or expected not in payload:
            raise BenchmarkError(
                f"{self.name}: expected HTTP 200 with {expected.decode()}, got {response.status}: "
                f"{payload[:400].decode(errors='replace')}")
        if response.will_close:
            raise BenchmarkError(f"{self.name}: the server closed the keep-alive connection")
        return response, payload, elapsed

    def discover(self):
        _, payload, _ = self.call(RETRIEVE_SERVICE_CONTENT, b"RetrieveServiceContentResponse")
        text = payload.decode()
        collector = re.search(r'<propertyCollector type="PropertyCollector">([^<]+)<', text)
        folder = re.search(r'<rootFolder type="Folder">([^<]+)<', text)
        if not collector or not folder:
            raise BenchmarkError(f"{self.name}: no propertyCollector or rootFolder in the ServiceContent")
        self.property_collector, self.root_folder = collector.group(1), folder.group(1)

    def login(self, password):
        response, _, _ = self.call(login_body(password), b"LoginResponse")
        cookie = re.search(r'vmware_soap_session=("?[^";]+"?)', response.getheader("Set-Cookie", ""))
        if not cookie:
            raise BenchmarkError(f"{self.name}: Login returned no vmware_soap_session cookie")
        self.headers["Cookie"] = f"vmware_soap_session={cookie.group(1)}"

    def close(self):
        self.connection.close()


def percentile(sorted_values, fraction):
    """Nearest-rank percentile of an already sorted list."""
    rank = math.ceil(fraction * len(sorted_values))
    return sorted_values[max(rank, 1) - 1]


WRK_SCRIPT = """\
-- Generated by a script in scripts/: POSTs one RetrieveServiceContent per request.
wrk.method = "POST"
wrk.body = [==[%(body)s]==]
wrk.headers["Content-Type"] = "text/xml; charset=utf-8"
wrk.headers["SOAPAction"] = '"urn:vim25/6.5"'

-- Prints the figures as one JSON line, so the benchmark need not parse wrk's text.
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH-JSON {"requests": %%d, "duration_us": %%d, "connect_errors": %%d, "read_errors": %%d, '
    .. '"write_errors": %%d, "status_errors": %%d, "timeouts": %%d, "p50_us": %%d, "p99_us": %%d}\\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
"""


def run_wrk(script, port, connections, duration, proxy_pid, pids):
    """Run wrk once against a port and return its figures.

    For a proxy the figures also include its memory, its per-thread CPU and how
    long it stayed busy after wrk stopped."""
    argv = [
        "wrk", f"-t{WRK_THREADS}", f"-c{connections}", f"-d{duration}s", "--timeout", "5s",
        "-s", str(script), f"http://127.0.0.1:{port}/sdk",
    ]

    meter = CpuMeter(pids)
    meter.start()
    wrk = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, preexec_fn=_die_with_parent)
    sampler = None
    if proxy_pid:
        sampler = ProcessSampler(proxy_pid, duration)
        sampler.start()

    busy_after = 0.0
    try:
        stdout, stderr = wrk.communicate(timeout=duration + 60)
        seconds, elapsed = meter.stop()
        if proxy_pid:
            # A recorder that queues exchanges faster than it writes them keeps
            # working after the load stops. Waiting here keeps that work out of
            # the next run, and the memory sampler keeps running until it ends.
            busy_after = wait_until_idle(proxy_pid)
    except subprocess.TimeoutExpired:
        wrk.kill()
        wrk.wait()
        raise BenchmarkError(f"wrk {' '.join(argv[1:])} ran more than 60 s past its -d{duration}s; killed it")
    finally:
        if sampler:
            sampler.halt.set()
            sampler.join()

    text = stdout.decode(errors="replace")
    match = re.search(r"^BENCH-JSON (\{.*\})$", text, re.MULTILINE)
    if wrk.returncode != 0 or not match:
        raise BenchmarkError(
            f"wrk {' '.join(argv[1:])} failed with status {wrk.returncode}:\n{text}\n{stderr.decode(errors='replace')}")

    figures = json.loads(match.group(1))
    completed = figures["requests"] - figures["status_errors"]
    figures["requests_per_s"] = completed / (figures["duration_us"] / 1e6)
    figures["cpu_core_share"] = {name: value / elapsed for name, value in seconds.items()}
    if sampler:
        figures["max_rss_mb"] = sampler.max_rss_kb * 1024 / 1e6
        figures["hwm_mb"] = sampler.hwm_kb * 1024 / 1e6
        figures["threads"] = sampler.threads_by_name()
        figures["busy_after_s"] = busy_after
    return figures


def wait_until_idle(pid, limit=120.0):
    """Wait until a process uses at most 5% of a core over a 0.2 s window.

    Returns how long, in seconds, the process stayed busier than that."""
    window = 0.2
    started = time.monotonic()
    previous = cpu_ticks(pid)
    while time.monotonic() - started < limit:
        time.sleep(window)
        current = cpu_ticks(pid)
        if (current - previous) / CLOCK_TICKS <= 0.05 * window:
            return max(0.0, time.monotonic() - started - window)
        previous = current
    raise BenchmarkError(f"process {pid} was still busy {limit:.0f} s after the wrk run ended")


def build_peers():
    # build-peers rebuilds vcsim only when its sources are newer than the binary,
    # and prints nothing on success.
    result = subprocess.run(
        [str(REPO / "scripts" / "build-peers")], cwd=REPO,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=1800)
    if result.returncode != 0 or not VCSIM.exists():
        raise BenchmarkError(
            f"scripts/build-peers failed to build {VCSIM} (status {result.returncode}); run scripts/bootstrap"
            " as root first to install Go and the govmomi sources:\n" + result.stdout.decode(errors="replace")[-4000:])


def build_tapedeck():
    log("building tapedeck: swift build -c release --product tapedeck (waits if another build holds the lock)")
    result = subprocess.run(
        ["swift", "build", "-c", "release", "--product", "tapedeck"], cwd=REPO,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=3600)
    if result.returncode != 0:
        raise BenchmarkError("swift build -c release failed:\n" + result.stdout.decode(errors="replace")[-4000:])


def find_mitmdump():
    found = shutil.which("mitmdump")
    if found:
        return found
    log("mitmdump not found; installing mitmproxy from PyPI: python3 -m pip install mitmproxy")
    result = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "mitmproxy"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=1800)
    if result.returncode != 0:
        raise BenchmarkError("pip install mitmproxy failed:\n" + result.stdout.decode(errors="replace")[-4000:])
    # pip puts the entry point next to this Python, which may not be on PATH
    # (pyenv, for one, only finds it after a rehash).
    candidate = Path(sys.executable).parent / "mitmdump"
    found = shutil.which("mitmdump") or (str(candidate) if candidate.exists() else None)
    if not found:
        raise BenchmarkError(f"pip installed mitmproxy, but no mitmdump is on PATH or in {candidate.parent}")
    return found


def first_line(argv):
    try:
        output = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60).stdout
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"unknown ({error})"
    lines = output.decode(errors="replace").strip().splitlines()
    return lines[0].strip() if lines else "unknown"


def machine_description():
    model = "unknown CPU"
    with open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    memory_gib = 0.0
    with open("/proc/meminfo") as meminfo:
        for line in meminfo:
            if line.startswith("MemTotal:"):
                memory_gib = int(line.split()[1]) / 1024 / 1024
    return {"cpus": os.cpu_count(), "cpu_model": model, "memory_gib": round(memory_gib, 1)}


def terminate(signal_number, _frame):
    # Turns SIGTERM and SIGHUP into an exception, so the cleanup in main() runs.
    raise KeyboardInterrupt(f"signal {signal_number}")
