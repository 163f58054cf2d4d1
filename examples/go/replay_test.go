// Package replay_test shows how a Go test suite can run govmomi code against
// `tapedeck replay` instead of a live vCenter.
//
// TestMain starts one replay server for the whole package and stops it when
// the tests are done. The test then talks to it exactly as it would talk to
// vCenter. The cassette was recorded by Tests/Peers/govmomi-workload with
// -name-prefix tapedeck-vm, so the test sends the requests that client sent,
// because replay returns a recorded response only to a request that matches it.
//
// Run it from the repository root, after `swift build`:
//
//	GO111MODULE=off GOPATH=/usr/share/gocode go test -count=1 ./examples/go/
package replay_test

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vmware/govmomi"
	"github.com/vmware/govmomi/find"
	"github.com/vmware/govmomi/vim25/types"
)

// cassette is relative to the repository root.
const cassette = "Cassettes/govmomi-percall-20vm-c10.cassette"

// readyTimeout bounds the wait for replay to start listening. Loading a
// cassette takes well under a second, so the margin is for a loaded CI machine.
const readyTimeout = 30 * time.Second

// stopTimeout bounds the wait for replay to exit after SIGTERM.
const stopTimeout = 10 * time.Second

// sdkURL is the replay server's SOAP endpoint, set by TestMain.
var sdkURL *url.URL

func TestMain(m *testing.M) {
	os.Exit(runWithReplay(m))
}

// runWithReplay is TestMain's body, in a function of its own so that its
// deferred cleanup runs before os.Exit.
func runWithReplay(m *testing.M) int {
	// go test runs a package's tests in the package's directory, which is
	// examples/go, two levels below the repository root.
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	binary := os.Getenv("TAPEDECK_BIN")
	if binary == "" {
		binary = filepath.Join(root, ".build", "debug", "tapedeck")
	}

	dir, err := os.MkdirTemp("", "tapedeck-example-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	readyFile := filepath.Join(dir, "ready")

	// Without --listen, replay binds 127.0.0.1 on a port the OS picks, so
	// parallel test runs never collide. The ready file tells us that port.
	replay := exec.Command(binary, "replay",
		"--cassette", filepath.Join(root, cassette),
		"--ready-file", readyFile)
	// With a package argument, go test shows this output only when a test
	// fails or with -v, which is when the replay log (including any unmatched
	// request) is wanted.
	replay.Stdout = os.Stderr
	replay.Stderr = os.Stderr
	if err := replay.Start(); err != nil {
		fmt.Fprintf(os.Stderr, "start %s: %v (build it with `swift build`, or set TAPEDECK_BIN)\n", binary, err)
		return 1
	}
	exited := make(chan error, 1)
	go func() { exited <- replay.Wait() }()
	defer stop(replay, exited)

	base, err := waitForReadyFile(readyFile, exited)
	if err != nil {
		fmt.Fprintf(os.Stderr, "tapedeck replay: %v\n", err)
		return 1
	}
	sdkURL, err = url.Parse(base + "/sdk")
	if err != nil {
		fmt.Fprintf(os.Stderr, "tapedeck replay wrote a bad URL %q: %v\n", base, err)
		return 1
	}
	return m.Run()
}

// waitForReadyFile returns the base URL once replay has written it. Replay
// writes the file by renaming a finished temporary file, so a file that
// exists is complete. The newline check is only a second guard.
func waitForReadyFile(path string, exited <-chan error) (string, error) {
	deadline := time.Now().Add(readyTimeout)
	for time.Now().Before(deadline) {
		if data, err := os.ReadFile(path); err == nil && strings.HasSuffix(string(data), "\n") {
			return strings.TrimSpace(string(data)), nil
		}
		select {
		case err := <-exited:
			return "", fmt.Errorf("exited before it was ready: %v", err)
		case <-time.After(20 * time.Millisecond):
		}
	}
	return "", fmt.Errorf("not ready within %s", readyTimeout)
}

// stop sends SIGTERM, which makes replay close its listener and exit 0, and
// kills it if it has not exited in time, so a test run never leaves it behind.
func stop(replay *exec.Cmd, exited <-chan error) {
	if replay.ProcessState != nil {
		return
	}
	_ = replay.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-exited:
		var exitErr *exec.ExitError
		if errors.As(err, &exitErr) {
			fmt.Fprintf(os.Stderr, "tapedeck replay exited with %v\n", err)
		}
	case <-time.After(stopTimeout):
		_ = replay.Process.Kill()
		<-exited
		fmt.Fprintf(os.Stderr, "tapedeck replay ignored SIGTERM for %s and was killed\n", stopTimeout)
	}
}

func TestCreateVMWaitsForTaskToSucceed(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	// Replay checks no password, so any one will do.
	u := *sdkURL
	u.User = url.UserPassword("admin", "not-checked")
	client, err := govmomi.NewClient(ctx, &u, false)
	if err != nil {
		t.Fatalf("login: %v", err)
	}
	defer func() {
		if err := client.Logout(ctx); err != nil {
			t.Errorf("logout: %v", err)
		}
	}()

	// The lookups below are the recorded client's, in the same order and
	// with the same arguments. A different route to the same objects (an
	// inventory path, say) sends other RetrieveProperties requests, and the
	// cassette has no response for those.
	finder := find.NewFinder(client.Client, false)
	dc, err := finder.DefaultDatacenter(ctx)
	if err != nil {
		t.Fatalf("default datacenter: %v", err)
	}
	finder.SetDatacenter(dc)
	folders, err := dc.Folders(ctx)
	if err != nil {
		t.Fatalf("datacenter folders: %v", err)
	}
	// The recorded inventory (vcsim's) has a cluster and a standalone host,
	// so there is no single default pool. The client took the cluster's.
	clusters, err := finder.ClusterComputeResourceList(ctx, "*")
	if err != nil || len(clusters) == 0 {
		t.Fatalf("clusters: %v (found %d)", err, len(clusters))
	}
	pool, err := clusters[0].ResourcePool(ctx)
	if err != nil {
		t.Fatalf("cluster resource pool: %v", err)
	}
	datastore, err := finder.DefaultDatastore(ctx)
	if err != nil {
		t.Fatalf("default datastore: %v", err)
	}

	// Every field must equal the recorded request's, name included:
	// `tapedeck cat CASSETTE` shows what was sent.
	spec := types.VirtualMachineConfigSpec{
		Name:     "tapedeck-vm-000",
		GuestId:  string(types.VirtualMachineGuestOsIdentifierOtherGuest),
		NumCPUs:  1,
		MemoryMB: 32,
		Files:    &types.VirtualMachineFileInfo{VmPathName: fmt.Sprintf("[%s]", datastore.Name())},
	}
	task, err := folders.VmFolder.CreateVM(ctx, spec, pool, nil)
	if err != nil {
		t.Fatalf("CreateVM_Task: %v", err)
	}
	// Wait watches the task through a PropertyCollector of its own, which
	// replay models from the recording, so it returns once the task has
	// reached the state the recording shows: success.
	if err := task.Wait(ctx); err != nil {
		t.Fatalf("wait for %s: %v", task.Reference().Value, err)
	}
}
