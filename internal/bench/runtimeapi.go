package bench

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"sync"
	"time"
)

// InitTimeout bounds one start-up: Lambda cuts a function's init phase at
// 10 s, so a binary that has not asked for an invocation by then never would.
const InitTimeout = 10 * time.Second

// nextPath is the Runtime API request a function makes once its init is done.
const nextPath = "/2018-06-01/runtime/invocation/next"

// RuntimeAPI is just enough of the Lambda Runtime API to time a function's
// init the way Lambda does: from exec to the function's first request for an
// invocation. That request is never answered; the function is killed instead.
// It serves on a free loopback port and handles one start-up at a time.
type RuntimeAPI struct {
	srv  *httptest.Server
	next chan time.Time
	done chan struct{}
	once sync.Once
}

// NewRuntimeAPI starts a RuntimeAPI; Close stops it.
func NewRuntimeAPI() *RuntimeAPI {
	a := &RuntimeAPI{next: make(chan time.Time, 1), done: make(chan struct{})}
	a.srv = httptest.NewServer(http.HandlerFunc(a.serve))
	return a
}

func (a *RuntimeAPI) serve(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet || r.URL.Path != nextPath {
		// An init error report, say: the function exits next, which Init sees.
		http.NotFound(w, r)
		return
	}
	select {
	case a.next <- time.Now():
	default:
	}
	// Hold the request open, as Lambda does until an event arrives, so the
	// function neither gets an event nor retries.
	select {
	case <-r.Context().Done():
	case <-a.done:
	}
}

// Addr is the value of AWS_LAMBDA_RUNTIME_API: host:port, no scheme.
func (a *RuntimeAPI) Addr() string { return strings.TrimPrefix(a.srv.URL, "http://") }

// Close stops the server.
func (a *RuntimeAPI) Close() {
	a.once.Do(func() { close(a.done) })
	a.srv.Close()
}

// Init runs the binary at path with env (AWS_LAMBDA_RUNTIME_API is added) and
// returns the time from exec to its first request for an invocation: its
// init duration. The process is then killed and reaped.
func (a *RuntimeAPI) Init(path string, env []string) (time.Duration, error) {
	select {
	case <-a.next: // a request from an earlier process, killed since
	default:
	}
	cmd := exec.Command(path)
	cmd.Env = append(env[:len(env):len(env)], "AWS_LAMBDA_RUNTIME_API="+a.Addr())
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return 0, fmt.Errorf("start %s: %w", path, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	timeout := time.NewTimer(InitTimeout)
	defer timeout.Stop()
	var d time.Duration
	var err error
	select {
	case t := <-a.next:
		d = t.Sub(start)
	case werr := <-exited:
		if werr == nil {
			werr = errors.New("exit status 0")
		}
		return 0, fmt.Errorf("%s exited before asking for an invocation: %w\n%s", path, werr, out.Bytes())
	case <-timeout.C:
		err = fmt.Errorf("%s did not ask for an invocation within %v", path, InitTimeout)
	}
	if kerr := cmd.Process.Kill(); kerr != nil && err == nil {
		err = fmt.Errorf("kill %s: %w", path, kerr)
	}
	<-exited // killed: the exit status says so and is of no interest
	return d, err
}
