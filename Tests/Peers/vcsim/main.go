// Command vcsim runs govmomi's vCenter simulator (the simulator package of
// govmomi 0.24.2) as a standalone SOAP peer for tapedeck's tests.
//
// It listens on loopback only, prints the /sdk URL on stdout and optionally
// writes it to a ready file, then serves until SIGINT or SIGTERM.
//
// Exit status: 0 after a clean shutdown, 1 when the server fails, 2 on bad
// flags.
package main

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/ioutil"
	"log"
	"math/big"
	"net"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/vmware/govmomi/simulator"
	// Registers vcsim's REST endpoints under /rest, sessions included.
	_ "github.com/vmware/govmomi/vapi/simulator"
)

// passwordEnv names the environment variable read when -user is given
// without -password, so that passwords need not appear on command lines.
const passwordEnv = "TAPEDECK_PASSWORD"

// shutdownGrace bounds how long shutdown waits for in-flight requests.
// vcsim's WaitForUpdatesEx handler ignores client disconnects and polls until
// an update arrives, so a request that a client abandoned can keep running
// forever and would otherwise block Server.Close.
const shutdownGrace = 2 * time.Second

type options struct {
	listen    string
	useTLS    bool
	certFile  string
	user      string
	password  string
	readyFile string
	hosts     int
	clusters  int
	logging   bool
	trace     bool
}

func main() {
	os.Exit(run())
}

func run() int {
	opts, err := parseFlags()
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "vcsim: %v\n", err)
		return 2
	}

	// Signals are caught from the start, so a SIGTERM sent as soon as the
	// ready file appears still gets a clean shutdown.
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM)
	// Ask the kernel for SIGTERM when the parent dies, so a test runner that
	// crashes or is killed leaves no simulator behind.
	syscall.RawSyscall(syscall.SYS_PRCTL, syscall.PR_SET_PDEATHSIG, uintptr(syscall.SIGTERM), 0)

	// The simulator logs every property collector pass through the standard
	// logger, which floods test output, so without -log only net/http's
	// messages get through. Those report handler panics (vcsim has a race
	// between WaitForUpdatesEx and DestroyPropertyFilter) and failed TLS
	// handshakes.
	if !opts.logging {
		log.SetFlags(0)
		log.SetOutput(httpMessagesOnly{os.Stderr})
	}
	simulator.Trace = opts.trace

	model := simulator.VPX()
	model.ClusterHost = opts.hosts
	model.Cluster = opts.clusters
	if err := model.Create(); err != nil {
		fmt.Fprintf(os.Stderr, "vcsim: create inventory: %v\n", err)
		return 1
	}
	// Model.Remove deletes the temporary datastore directories under $TMPDIR.
	defer model.Remove()

	listen := &url.URL{Host: opts.listen}
	if opts.user != "" {
		// Without Listen.User the simulator accepts any non-empty user name
		// and password. With it, Login rejects everything else with
		// InvalidLogin.
		listen.User = url.UserPassword(opts.user, opts.password)
	}
	model.Service.Listen = listen
	// Serves the REST API under /rest too, so that REST logins can be recorded.
	model.Service.RegisterEndpoints = true

	var cert *x509.Certificate
	if opts.useTLS {
		var tlsCert tls.Certificate
		tlsCert, cert, err = newServerCertificate()
		if err != nil {
			fmt.Fprintf(os.Stderr, "vcsim: generate TLS certificate: %v\n", err)
			return 1
		}
		model.Service.TLS = &tls.Config{Certificates: []tls.Certificate{tlsCert}}
	}

	server, err := startServer(model.Service)
	if err != nil {
		fmt.Fprintf(os.Stderr, "vcsim: %v\n", err)
		return 1
	}

	// Service.NewServer puts the credentials into the URL, so they are
	// stripped before the URL is printed or written anywhere.
	sdkURL := *server.URL
	sdkURL.User = nil

	// The certificate file is written before the ready file, so a client that
	// waits for the ready file can rely on the certificate being in place.
	if cert != nil && opts.certFile != "" {
		block := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw})
		if err := writeFileAtomic(opts.certFile, block); err != nil {
			fmt.Fprintf(os.Stderr, "vcsim: write certificate: %v\n", err)
			closeServer(server)
			return 1
		}
	}
	if opts.readyFile != "" {
		if err := writeFileAtomic(opts.readyFile, []byte(sdkURL.String())); err != nil {
			fmt.Fprintf(os.Stderr, "vcsim: write ready file: %v\n", err)
			closeServer(server)
			return 1
		}
		// A ready file left behind would point the next reader at a closed port.
		defer os.Remove(opts.readyFile)
	}
	fmt.Println(sdkURL.String())

	<-signals
	signal.Stop(signals)

	closeServer(server)
	return 0
}

func parseFlags() (*options, error) {
	opts := &options{}
	fs := flag.NewFlagSet("vcsim", flag.ContinueOnError)
	fs.StringVar(&opts.listen, "listen", "127.0.0.1:0", "loopback `address` to listen on; port 0 picks a free port")
	fs.BoolVar(&opts.useTLS, "tls", false, "serve HTTPS with a freshly generated self-signed certificate")
	fs.StringVar(&opts.certFile, "cert-file", "", "with -tls, write the server certificate as PEM to `file`, for use as a client CA file")
	fs.StringVar(&opts.user, "user", "", "accept only this user `name` (default: any non-empty user and password)")
	fs.StringVar(&opts.password, "password", "", "password for -user (default: $"+passwordEnv+")")
	fs.StringVar(&opts.readyFile, "ready-file", "", "once listening, atomically write the /sdk URL (without credentials) to `file`")
	fs.IntVar(&opts.hosts, "hosts", 3, "`number` of hosts per cluster")
	fs.IntVar(&opts.clusters, "clusters", 1, "`number` of clusters in the datacenter")
	fs.BoolVar(&opts.logging, "log", false, "let the simulator write its internal log to stderr")
	fs.BoolVar(&opts.trace, "trace", false, "write every SOAP request and response to stderr (includes the Login password)")
	if err := fs.Parse(os.Args[1:]); err != nil {
		return nil, err
	}
	if fs.NArg() != 0 {
		return nil, fmt.Errorf("unexpected arguments: %v", fs.Args())
	}

	if err := checkLoopback(opts.listen); err != nil {
		return nil, err
	}
	if opts.certFile != "" && !opts.useTLS {
		return nil, errors.New("-cert-file requires -tls")
	}
	if opts.hosts < 1 {
		return nil, errors.New("-hosts must be at least 1")
	}
	if opts.clusters < 0 {
		return nil, errors.New("-clusters must not be negative")
	}
	if opts.user == "" && opts.password != "" {
		return nil, errors.New("-password requires -user")
	}
	if opts.user != "" && opts.password == "" {
		opts.password = os.Getenv(passwordEnv)
		if opts.password == "" {
			return nil, fmt.Errorf("-user requires -password or $%s", passwordEnv)
		}
	}
	return opts, nil
}

// httpMessagesOnly passes on the first line of the standard logger's messages
// from net/http, which all start with "http: ", and drops the rest. The first
// line of a handler panic names the panic, and the goroutine stack after it is
// only needed with -log. It relies on the log package writing each message with
// a single Write call and on log.SetFlags(0), which leaves no date prefix.
type httpMessagesOnly struct{ out io.Writer }

func (w httpMessagesOnly) Write(message []byte) (int, error) {
	if bytes.HasPrefix(message, []byte("http: ")) {
		firstLine := message
		if i := bytes.IndexByte(message, '\n'); i >= 0 {
			firstLine = message[:i]
		}
		if _, err := fmt.Fprintf(w.out, "vcsim: %s\n", firstLine); err != nil {
			return 0, err
		}
	}
	return len(message), nil
}

// checkLoopback rejects listen addresses off the loopback interface, because
// this simulator has no real access control and tests never need it elsewhere.
func checkLoopback(address string) error {
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return fmt.Errorf("-listen %q: %v", address, err)
	}
	if host == "localhost" {
		return nil
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("-listen %q: host must be a loopback IP address or localhost", address)
	}
	return nil
}

// startServer wraps Service.NewServer, which panics when it cannot listen.
func startServer(service *simulator.Service) (server *simulator.Server, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("start server: %v", r)
		}
	}()
	return service.NewServer(), nil
}

// closeServer stops the server, giving in-flight requests shutdownGrace to
// finish before their connections are closed.
func closeServer(server *simulator.Server) {
	done := make(chan struct{})
	go func() {
		server.Close()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(shutdownGrace):
		server.CloseClientConnections()
		// The handlers of abandoned WaitForUpdatesEx calls may still be
		// running, so the process exits without waiting for Close.
		fmt.Fprintln(os.Stderr, "vcsim: requests still running after shutdown grace period; exiting anyway")
	}
}

// newServerCertificate generates a self-signed ECDSA P-256 certificate for
// 127.0.0.1, ::1 and localhost. It replaces the simulator's built-in
// certificate, whose 1024-bit RSA key OpenSSL rejects at Debian 12's default
// security level. The certificate is its own CA (basicConstraints CA:TRUE), so
// clients can trust it directly as a CA file.
func newServerCertificate() (tls.Certificate, *x509.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	now := time.Now()
	template := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: "tapedeck vcsim", Organization: []string{"tapedeck test peer"}},
		// The backdated start tolerates small clock differences between processes.
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(30 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		DNSNames:              []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, template, template, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: cert}, cert, nil
}

// writeFileAtomic writes data to a temporary file in the target's directory
// and renames it into place, so readers never see a partial file.
func writeFileAtomic(path string, data []byte) error {
	tmp, err := ioutil.TempFile(filepath.Dir(path), "."+filepath.Base(path)+".tmp-")
	if err != nil {
		return err
	}
	name := tmp.Name()
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		os.Remove(name)
		return err
	}
	if err := tmp.Close(); err != nil {
		os.Remove(name)
		return err
	}
	if err := os.Chmod(name, 0o644); err != nil {
		os.Remove(name)
		return err
	}
	if err := os.Rename(name, path); err != nil {
		os.Remove(name)
		return err
	}
	return nil
}
