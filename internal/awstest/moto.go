// Package awstest starts the moto AWS emulator for tests that talk to AWS
// over HTTP with the real SDK clients. Each test binary starts at most one
// moto server, on a free loopback port, and stops it when the tests end.
package awstest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
)

// Region is the region every test client uses.
const Region = "us-east-1"

// startTimeout bounds moto's start; it is ready in about a second, but a
// loaded CI machine may be slow to import its services.
const startTimeout = 60 * time.Second

var shared struct {
	sync.Mutex
	srv *Server
	err error
}

// Server is a running moto server.
type Server struct {
	URL string
	cmd *exec.Cmd
}

// Main runs the tests and stops the shared server afterwards. Use it from TestMain:
//
//	func TestMain(m *testing.M) { os.Exit(awstest.Main(m)) }
func Main(m *testing.M) int {
	code := m.Run()
	shared.Lock()
	defer shared.Unlock()
	if shared.srv != nil {
		shared.srv.stop()
	}
	return code
}

// Moto returns the shared moto server, started on first use and reset to an
// empty state for the calling test.
func Moto(t testing.TB) *Server {
	t.Helper()
	shared.Lock()
	defer shared.Unlock()
	if shared.srv == nil && shared.err == nil {
		shared.srv, shared.err = start()
	}
	if shared.err != nil {
		t.Fatalf("start moto: %v", shared.err)
	}
	if err := shared.srv.Reset(); err != nil {
		t.Fatalf("reset moto: %v", err)
	}
	return shared.srv
}

// Config returns an SDK config that sends every client to this server.
func (s *Server) Config() aws.Config {
	return aws.Config{
		Region:       Region,
		Credentials:  credentials.NewStaticCredentialsProvider("testing", "testing", ""),
		BaseEndpoint: aws.String(s.URL),
		HTTPClient:   &http.Client{Transport: eagerBody{http.DefaultTransport}, Timeout: 30 * time.Second},
	}
}

// eagerBody reads each response body whole as soon as its headers arrive.
// moto answers every request with "Connection: close"; now and then (about
// once in 20,000 requests) a body the SDK reads only later, such as the "{}"
// of a PutItem, can no longer be read ("use of closed network connection").
// The SDK then retries a write that moto has already done, and the retried
// conditional write fails its own condition. Reading the body at once has not
// failed in 100 runs of the store's suite.
type eagerBody struct{ next http.RoundTripper }

func (e eagerBody) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := e.next.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	resp.Body = io.NopCloser(bytes.NewReader(b))
	return resp, nil
}

// Reset clears every resource in the server.
func (s *Server) Reset() error {
	resp, err := http.Post(s.URL+"/moto-api/reset", "application/json", nil)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("reset: %s", resp.Status)
	}
	return nil
}

func start() (*Server, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	python := os.Getenv("NIGHTSHIFT_PYTHON")
	if python == "" {
		python = "python3"
	}
	cmd := exec.Command(python, "-m", "moto.server", "-H", "127.0.0.1", "-p", fmt.Sprint(port))
	cmd.Stdout, cmd.Stderr = nil, nil
	// Pdeathsig: if the test binary dies, moto dies with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("%s -m moto.server: %w", python, err)
	}
	s := &Server{URL: fmt.Sprintf("http://127.0.0.1:%d", port), cmd: cmd}
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.URL+"/moto-api/", nil)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
			return s, nil
		}
		select {
		case <-ctx.Done():
			s.stop()
			return nil, fmt.Errorf("moto on port %d not ready after %v", port, startTimeout)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (s *Server) stop() {
	if s.cmd.Process != nil {
		_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
		_ = s.cmd.Wait()
	}
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
