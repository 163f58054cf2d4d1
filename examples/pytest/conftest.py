"""A pytest fixture that serves a tapedeck cassette for the whole test session.

`replay_url` starts `tapedeck replay` once, waits until it is listening, and
yields its base URL (such as http://127.0.0.1:40123); clients use URL + "/sdk".
Replay stops when the session ends. When a test fails, the replay log is added
to the failure report, because a request that matches no recorded one is
logged there with the recorded request it came closest to.

The binary is $TAPEDECK_BIN, or .build/debug/tapedeck as `swift build` makes it.
"""

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
CASSETTE = REPO_ROOT / "Cassettes" / "pyvmomi-4vm-t4.cassette"

# Seconds. Loading a cassette takes well under a second, so the margin is for a
# loaded CI machine.
READY_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0

# Where the running replay writes its log, so that a failed test can show it.
_log_key = pytest.StashKey[Path]()


def _tapedeck_binary():
    return Path(os.environ.get("TAPEDECK_BIN") or REPO_ROOT / ".build" / "debug" / "tapedeck")


def _wait_for_ready_file(path, process, log):
    """Return the URL that replay wrote to `path`, or fail the session."""
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        # Replay writes a temporary file and renames it, so a file that exists
        # is complete. The newline check is only a second guard.
        if path.exists():
            text = path.read_text()
            if text.endswith("\n"):
                return text.strip()
        if process.poll() is not None:
            pytest.fail(f"tapedeck replay exited with status {process.returncode} "
                        f"before it was ready:\n{log.read_text()}", pytrace=False)
        time.sleep(0.02)
    pytest.fail(f"tapedeck replay was not ready within {READY_TIMEOUT} s:\n{log.read_text()}",
                pytrace=False)


@pytest.fixture(scope="session")
def replay_url(request, tmp_path_factory):
    directory = tmp_path_factory.mktemp("tapedeck-replay")
    ready_file = directory / "ready"
    log = directory / "replay.log"
    binary = _tapedeck_binary()
    if not binary.exists():
        pytest.fail(f"{binary} not found: build it with `swift build`, or set TAPEDECK_BIN",
                    pytrace=False)

    # Without --listen, replay binds 127.0.0.1 on a port the OS picks, so
    # parallel test runs never collide. The ready file tells us that port.
    with open(log, "wb") as log_file:
        process = subprocess.Popen(
            [binary, "replay", "--cassette", CASSETTE, "--ready-file", ready_file],
            stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT)
    request.config.stash[_log_key] = log
    try:
        yield _wait_for_ready_file(ready_file, process, log)
    finally:
        # SIGTERM makes replay close its listener and exit 0. Killing it after
        # a bounded wait means a test run never leaves it behind.
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# An old-style hook wrapper, because it works with every pytest since 7.0.
@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    log = item.config.stash.get(_log_key, None)
    if report.failed and log is not None and log.exists():
        report.sections.append(("tapedeck replay log", log.read_text()))
