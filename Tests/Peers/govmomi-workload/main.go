// Command govmomi-workload provisions virtual machines through a vSphere SOAP
// endpoint with govmomi 0.24.2 and waits for each CreateVM task (and, with
// -power-on, each PowerOnVM task) in one of two wait styles:
//
//   - percall: object.Task.Wait from govmomi 0.24.2. Each wait creates a
//     private PropertyCollector (property.WaitForUpdates calls
//     Collector.Create), so concurrent waits never share server-side state.
//   - shared: the pattern of govmomi 0.36's Task.WaitEx, written against the
//     0.24.2 API. Every waiter creates a filter on the session's default
//     PropertyCollector and polls WaitForUpdatesEx on that same collector,
//     concurrently with the other waiters.
//
// Against vcsim the shared style loses updates. Whichever WaitForUpdatesEx
// call runs next on a collector receives the updates of all its filters:
// vcsim reports a new filter's initial state only once, and it clears the
// collector's single list of pending changes when a call reads it. A waiter
// skips updates for other tasks, so a task's owner often never receives the
// update that shows its task finished.
// A wait that exceeds -wait-timeout is cancelled and counted as blocked.
//
// stdout receives exactly one JSON summary line once the workload has run;
// progress and errors go to stderr. Exit status: 0 when every wait
// completed, 1 when any wait blocked or failed, 2 on bad arguments or a
// failed login.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/vmware/govmomi/find"
	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/session"
	taskerror "github.com/vmware/govmomi/task"
	"github.com/vmware/govmomi/vim25"
	"github.com/vmware/govmomi/vim25/methods"
	"github.com/vmware/govmomi/vim25/soap"
	"github.com/vmware/govmomi/vim25/types"
)

// passwordEnv is read when -password is empty, so that passwords need not
// appear on command lines.
const passwordEnv = "TAPEDECK_PASSWORD"

// cleanupTimeout bounds calls that run after a wait has already ended, such
// as DestroyPropertyFilter and Logout, whose own context may have expired.
const cleanupTimeout = 10 * time.Second

const (
	exitOK       = 0
	exitFailed   = 1
	exitBadUsage = 2
)

type options struct {
	url         *url.URL
	user        string
	password    string
	insecure    bool
	caFile      string
	vms         int
	concurrency int
	wait        string
	waitTimeout time.Duration
	powerOn     bool
	namePrefix  string
}

// summary is the JSON line printed on stdout. Completed, Blocked and Errors
// add up to Waits, except that Errors also counts a failed placement lookup,
// which happens before any task starts. A power-on wait is only attempted for
// a VM whose create wait completed, so Waits can be less than VMs*2 with
// -power-on.
type summary struct {
	Wait        string `json:"wait"`
	VMs         int    `json:"vms"`
	Concurrency int    `json:"concurrency"`
	Completed   int    `json:"completed"`
	Blocked     int    `json:"blocked"`
	Errors      int    `json:"errors"`
	ElapsedMS   int64  `json:"elapsed_ms"`
	PowerOn     bool   `json:"power_on"`
	Waits       int    `json:"waits"`
	// RoundTrips counts the HTTP requests the client sent, cancelled ones
	// included, so a recording proxy's test can check it kept every one.
	RoundTrips int64 `json:"round_trips"`
}

// roundTrips is incremented by countingTransport for every HTTP request.
var roundTrips int64

// countingTransport counts requests before handing them to the real transport.
type countingTransport struct {
	next http.RoundTripper
}

func (t countingTransport) RoundTrip(request *http.Request) (*http.Response, error) {
	atomic.AddInt64(&roundTrips, 1)
	return t.next.RoundTrip(request)
}

type outcome int

const (
	completed outcome = iota
	blocked
	failed
)

// waitFunc waits for a task to reach the success or error state and returns
// its final TaskInfo.
type waitFunc func(ctx context.Context, client *vim25.Client, task types.ManagedObjectReference) (*types.TaskInfo, error)

func main() {
	os.Exit(run())
}

func run() int {
	opts, err := parseFlags()
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "govmomi-workload: %v\n", err)
		return exitBadUsage
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	client, err := login(ctx, opts)
	if err != nil {
		fmt.Fprintf(os.Stderr, "govmomi-workload: login: %v\n", err)
		return exitBadUsage
	}
	w := &workload{opts: opts, client: client}
	w.summary = summary{Wait: opts.wait, VMs: opts.vms, Concurrency: opts.concurrency, PowerOn: opts.powerOn}
	if opts.wait == "shared" {
		w.waitTask = waitShared
	} else {
		w.waitTask = waitPerCall
	}

	start := time.Now()
	if err := w.findPlacement(ctx); err != nil {
		fmt.Fprintf(os.Stderr, "govmomi-workload: find placement: %v\n", err)
		w.summary.Errors++
	} else {
		w.provisionAll(ctx)
	}
	w.summary.ElapsedMS = time.Since(start).Milliseconds()

	// Log out before counting, so round_trips covers the whole session.
	logout(client)
	w.summary.RoundTrips = atomic.LoadInt64(&roundTrips)
	line, _ := json.Marshal(w.summary)
	fmt.Println(string(line))

	expected := opts.vms
	if opts.powerOn {
		expected *= 2
	}
	if w.summary.Completed == expected && w.summary.Errors == 0 {
		return exitOK
	}
	return exitFailed
}

func parseFlags() (*options, error) {
	opts := &options{}
	var rawURL string
	fs := flag.NewFlagSet("govmomi-workload", flag.ContinueOnError)
	fs.StringVar(&rawURL, "url", "", "SDK `URL`, such as http://127.0.0.1:PORT/sdk, without credentials (required)")
	fs.StringVar(&opts.user, "user", "", "user `name` for Login (required)")
	fs.StringVar(&opts.password, "password", "", "password for Login (default: $"+passwordEnv+")")
	fs.BoolVar(&opts.insecure, "insecure", false, "skip TLS certificate verification")
	fs.StringVar(&opts.caFile, "ca-file", "", "PEM `file` of CA certificates to trust for https URLs")
	fs.IntVar(&opts.vms, "vms", 20, "`number` of VMs to create")
	fs.IntVar(&opts.concurrency, "concurrency", 10, "`number` of VMs provisioned at once")
	fs.StringVar(&opts.wait, "wait", "percall", "wait `style`: percall or shared")
	fs.DurationVar(&opts.waitTimeout, "wait-timeout", 15*time.Second, "cancel a single task wait after this `duration` and count it as blocked")
	fs.BoolVar(&opts.powerOn, "power-on", false, "power each VM on after it is created, waiting in the same style")
	fs.StringVar(&opts.namePrefix, "name-prefix", "", "`prefix` for VM names (default: random per run, so runs against one simulator do not collide)")
	if err := fs.Parse(os.Args[1:]); err != nil {
		return nil, err
	}
	if fs.NArg() != 0 {
		return nil, fmt.Errorf("unexpected arguments: %v", fs.Args())
	}

	if rawURL == "" {
		return nil, errors.New("-url is required")
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("-url: %v", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("-url: scheme must be http or https, not %q", u.Scheme)
	}
	if u.User != nil {
		return nil, errors.New("-url must not contain credentials; use -user and -password or $" + passwordEnv)
	}
	opts.url = u

	if opts.user == "" {
		return nil, errors.New("-user is required")
	}
	if opts.password == "" {
		opts.password = os.Getenv(passwordEnv)
	}
	if opts.password == "" {
		return nil, fmt.Errorf("-password or $%s is required", passwordEnv)
	}
	if opts.insecure && opts.caFile != "" {
		return nil, errors.New("-insecure and -ca-file are mutually exclusive")
	}
	if opts.vms < 1 {
		return nil, errors.New("-vms must be at least 1")
	}
	if opts.concurrency < 1 {
		return nil, errors.New("-concurrency must be at least 1")
	}
	if opts.wait != "percall" && opts.wait != "shared" {
		return nil, fmt.Errorf("-wait must be percall or shared, not %q", opts.wait)
	}
	if opts.waitTimeout <= 0 {
		return nil, errors.New("-wait-timeout must be positive")
	}
	if opts.namePrefix == "" {
		opts.namePrefix = fmt.Sprintf("tapedeck-%x", time.Now().UnixNano()&0xffffff)
	}
	return opts, nil
}

func login(ctx context.Context, opts *options) (*vim25.Client, error) {
	soapClient := soap.NewClient(opts.url, opts.insecure)
	if opts.caFile != "" {
		if err := soapClient.SetRootCAs(opts.caFile); err != nil {
			return nil, err
		}
	}
	soapClient.Client.Transport = countingTransport{next: soapClient.Client.Transport}
	client, err := vim25.NewClient(ctx, soapClient)
	if err != nil {
		return nil, err
	}
	if err := session.NewManager(client).Login(ctx, url.UserPassword(opts.user, opts.password)); err != nil {
		return nil, err
	}
	return client, nil
}

func logout(client *vim25.Client) {
	ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
	defer cancel()
	if err := session.NewManager(client).Logout(ctx); err != nil {
		fmt.Fprintf(os.Stderr, "govmomi-workload: logout: %v\n", err)
	}
}

type workload struct {
	opts     *options
	client   *vim25.Client
	waitTask waitFunc

	folder    *object.Folder
	pool      *object.ResourcePool
	datastore string

	mu      sync.Mutex
	summary summary
}

// findPlacement picks the VM folder, resource pool and datastore of the
// default datacenter. A cluster's pool is preferred because vcsim's VPX
// inventory also has a standalone host, which makes the default resource pool
// ambiguous.
func (w *workload) findPlacement(ctx context.Context) error {
	finder := find.NewFinder(w.client, false)
	dc, err := finder.DefaultDatacenter(ctx)
	if err != nil {
		return err
	}
	finder.SetDatacenter(dc)

	folders, err := dc.Folders(ctx)
	if err != nil {
		return err
	}
	w.folder = folders.VmFolder

	clusters, err := finder.ClusterComputeResourceList(ctx, "*")
	if err == nil && len(clusters) > 0 {
		w.pool, err = clusters[0].ResourcePool(ctx)
	} else {
		w.pool, err = finder.DefaultResourcePool(ctx)
	}
	if err != nil {
		return err
	}

	ds, err := finder.DefaultDatastore(ctx)
	if err != nil {
		return err
	}
	w.datastore = ds.Name()
	return nil
}

func (w *workload) provisionAll(ctx context.Context) {
	indexes := make(chan int)
	var workers sync.WaitGroup
	for i := 0; i < w.opts.concurrency; i++ {
		workers.Add(1)
		go func() {
			defer workers.Done()
			for index := range indexes {
				w.provision(ctx, index)
			}
		}()
	}
	for i := 0; i < w.opts.vms; i++ {
		indexes <- i
	}
	close(indexes)
	workers.Wait()
}

// provision creates one VM and, with -power-on, powers it on.
func (w *workload) provision(ctx context.Context, index int) {
	name := fmt.Sprintf("%s-%03d", w.opts.namePrefix, index)
	spec := types.VirtualMachineConfigSpec{
		Name:     name,
		GuestId:  string(types.VirtualMachineGuestOsIdentifierOtherGuest),
		NumCPUs:  1,
		MemoryMB: 32,
		Files:    &types.VirtualMachineFileInfo{VmPathName: fmt.Sprintf("[%s]", w.datastore)},
	}

	info, result := w.runTask(ctx, name, "CreateVM_Task", func() (*object.Task, error) {
		return w.folder.CreateVM(ctx, spec, w.pool, nil)
	})
	if result != completed || !w.opts.powerOn {
		return
	}

	ref, ok := info.Result.(types.ManagedObjectReference)
	if !ok {
		fmt.Fprintf(os.Stderr, "%s: CreateVM_Task result is %T, not a VirtualMachine reference\n", name, info.Result)
		w.record(failed)
		return
	}
	vm := object.NewVirtualMachine(w.client, ref)
	w.runTask(ctx, name, "PowerOnVM_Task", func() (*object.Task, error) {
		return vm.PowerOn(ctx)
	})
}

// runTask starts a task, waits for it with the configured style and records
// the outcome. Only a wait that hits -wait-timeout counts as blocked.
func (w *workload) runTask(ctx context.Context, name, method string, start func() (*object.Task, error)) (*types.TaskInfo, outcome) {
	task, err := start()
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %s: %v\n", name, method, err)
		w.record(failed)
		return nil, failed
	}

	waitCtx, cancel := context.WithTimeout(ctx, w.opts.waitTimeout)
	defer cancel()
	info, err := w.waitTask(waitCtx, w.client, task.Reference())

	var result outcome
	switch {
	case err == nil:
		result = completed
	case errors.Is(waitCtx.Err(), context.DeadlineExceeded) && ctx.Err() == nil:
		fmt.Fprintf(os.Stderr, "%s: %s %s: wait blocked for %s, cancelled\n", name, method, task.Reference().Value, w.opts.waitTimeout)
		result = blocked
	default:
		fmt.Fprintf(os.Stderr, "%s: %s %s: %v\n", name, method, task.Reference().Value, err)
		result = failed
	}
	w.record(result)
	return info, result
}

func (w *workload) record(result outcome) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.summary.Waits++
	switch result {
	case completed:
		w.summary.Completed++
	case blocked:
		w.summary.Blocked++
	default:
		w.summary.Errors++
	}
}

// waitPerCall uses govmomi 0.24.2's own task wait, which creates and destroys
// a private PropertyCollector for every call.
func waitPerCall(ctx context.Context, client *vim25.Client, task types.ManagedObjectReference) (*types.TaskInfo, error) {
	return object.NewTask(client, task).WaitForResult(ctx)
}

// waitShared follows govmomi 0.36's Task.WaitEx against the 0.24.2 API. It
// adds a filter for the task's info property to the session's default
// PropertyCollector, which every concurrent waiter shares, and polls
// WaitForUpdatesEx on that collector. Updates for other filters are skipped,
// as WaitEx does, and they are then lost for the waiters that own them.
func waitShared(ctx context.Context, client *vim25.Client, task types.ManagedObjectReference) (*types.TaskInfo, error) {
	collector := client.ServiceContent.PropertyCollector

	created, err := methods.CreateFilter(ctx, client, &types.CreateFilter{
		This: collector,
		Spec: types.PropertyFilterSpec{
			ObjectSet: []types.ObjectSpec{{Obj: task}},
			PropSet:   []types.PropertySpec{{Type: task.Type, PathSet: []string{"info"}}},
		},
		PartialUpdates: false,
	})
	if err != nil {
		return nil, err
	}
	defer func() {
		// ctx may have expired, and the filter must still go, or later
		// WaitForUpdatesEx calls keep reporting on it.
		cleanupCtx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
		defer cancel()
		_, _ = methods.DestroyPropertyFilter(cleanupCtx, client, &types.DestroyPropertyFilter{This: created.Returnval})
	}()

	// CancelWaitForUpdates is never sent, because on a shared collector it
	// would also cancel the other waiters' calls.
	request := types.WaitForUpdatesEx{This: collector, Version: ""}
	for {
		res, err := methods.WaitForUpdatesEx(ctx, client, &request)
		if err != nil {
			return nil, err
		}
		set := res.Returnval
		if set == nil {
			// Only a MaxWaitSeconds timeout returns no update set; poll again.
			continue
		}
		request.Version = set.Version

		for _, filterUpdate := range set.FilterSet {
			for _, update := range filterUpdate.ObjectSet {
				if update.Obj != task {
					continue
				}
				for _, missing := range update.MissingSet {
					return nil, soap.WrapVimFault(missing.Fault.Fault)
				}
				if info := finishedTaskInfo(update.ChangeSet); info != nil {
					if info.State == types.TaskInfoStateError && info.Error != nil {
						return info, taskerror.Error{LocalizedMethodFault: info.Error}
					}
					return info, nil
				}
			}
		}
	}
}

// finishedTaskInfo returns the task's info from the last assignment to the
// info property in changes, or nil unless that info is in the success or
// error state.
func finishedTaskInfo(changes []types.PropertyChange) *types.TaskInfo {
	var latest *types.TaskInfo
	for _, change := range changes {
		if change.Name != "info" || change.Op != types.PropertyChangeOpAssign || change.Val == nil {
			continue
		}
		if info, ok := change.Val.(types.TaskInfo); ok {
			latest = &info
		}
	}
	if latest == nil {
		return nil
	}
	if latest.State == types.TaskInfoStateSuccess || latest.State == types.TaskInfoStateError {
		return latest
	}
	return nil
}
