# Shell functions for scripts that run vcsim and tapedeck together on loopback.
# Source it after setting `work` to a scratch directory; `stop_all` ends whatever
# was started, so callers trap it on EXIT.

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
peers="$root/.build/peers"
started_pids=()

# Waits up to 30 s for a ready file and prints its first line.
wait_for_ready_file() {
  local file=$1 pid=$2
  for _ in $(seq 300); do
    if [[ -s $file ]]; then
      head -n 1 "$file"
      return 0
    fi
    kill -0 "$pid" 2>/dev/null || { echo "process $pid exited before writing $file" >&2; return 1; }
    sleep 0.1
  done
  echo "timed out waiting for $file" >&2
  return 1
}

# Starts vcsim with the password in TAPEDECK_PASSWORD; sets vcsim_url (…/sdk).
# A second call replaces the first vcsim.
start_vcsim() {
  if [[ -n ${vcsim_pid:-} ]]; then
    kill "$vcsim_pid" 2>/dev/null || true
    wait "$vcsim_pid" 2>/dev/null || true
  fi
  rm -f "$work/vcsim.url"
  "$peers/vcsim" -listen 127.0.0.1:0 -user admin -ready-file "$work/vcsim.url" >"$work/vcsim.log" 2>&1 &
  vcsim_pid=$!
  started_pids+=($vcsim_pid)
  vcsim_url=$(wait_for_ready_file "$work/vcsim.url" $vcsim_pid)
}

# Starts `tapedeck record` in front of vcsim; sets recorder_pid and recorder_url.
start_recorder() {
  local cassette=$1
  rm -f "$work/recorder.url"
  "$tapedeck" record --upstream "${vcsim_url%/sdk}" --cassette "$cassette" \
    --ready-file "$work/recorder.url" >/dev/null 2>"$work/recorder-$(basename "$cassette").log" &
  recorder_pid=$!
  started_pids+=($recorder_pid)
  recorder_url=$(wait_for_ready_file "$work/recorder.url" $recorder_pid)
}

# Stops the recorder with SIGTERM, as a user's Ctrl-C would, and waits for it to
# close the cassette.
stop_recorder() {
  kill -TERM "$recorder_pid"
  wait "$recorder_pid"
}

stop_all() {
  for pid in "${started_pids[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  wait 2>/dev/null || true
}

# A password made for this run only, so it is in no file and no history.
random_password() {
  echo "Td-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')!"
}
