package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nightshift-dev/nightshift/internal/awstest"
)

// rieModule is what the Makefile installs into bin/tools; keep them in step.
const rieModule = "github.com/aws/aws-lambda-runtime-interface-emulator/cmd/aws-lambda-rie@v0.0.0-20261030222936-bef5c4ba774d"

// functionTimeout is each invocation's Lambda timeout under the emulator:
// every invocation here takes well under a second, and a hung one should
// fail the test long before go test's own timeout.
const functionTimeout = 30 * time.Second

// rieStartTimeout bounds how long the emulator may take to accept connections.
const rieStartTimeout = 10 * time.Second

// functions are the Lambda functions, by their directory under functions/.
var functions = []string{"intake", "dispatch", "watchdog"}

// binaries holds the functions' bootstrap binaries, built once per test
// binary into a directory that TestMain creates and removes.
var binaries struct {
	once sync.Once
	dir  string
	err  error
}

func TestMain(m *testing.M) { os.Exit(runTests(m)) }

func runTests(m *testing.M) int {
	dir, err := os.MkdirTemp("", "nightshift-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	binaries.dir = dir
	return awstest.Main(m)
}

// bootstrap returns the path of the function's bootstrap binary, built for
// this machine (the deployed ones are linux/arm64) with the same tags as
// the Lambda build.
func bootstrap(t testing.TB, function string) string {
	t.Helper()
	binaries.once.Do(func() {
		root, err := repoRoot()
		if err != nil {
			binaries.err = err
			return
		}
		out := filepath.Join(binaries.dir, "out")
		args := []string{"build", "-tags", "lambda.norpc", "-o", out + string(filepath.Separator)}
		for _, f := range functions {
			args = append(args, "./functions/"+f)
		}
		cmd := exec.Command("go", args...)
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS="+runtime.GOOS, "GOARCH="+runtime.GOARCH)
		if b, err := cmd.CombinedOutput(); err != nil {
			binaries.err = fmt.Errorf("go %s: %v\n%s", strings.Join(args, " "), err, b)
			return
		}
		for _, f := range functions {
			if err := os.MkdirAll(filepath.Join(binaries.dir, f), 0o755); err != nil {
				binaries.err = err
				return
			}
			if err := os.Rename(filepath.Join(out, f), filepath.Join(binaries.dir, f, "bootstrap")); err != nil {
				binaries.err = err
				return
			}
		}
	})
	if binaries.err != nil {
		t.Fatalf("build functions: %v", binaries.err)
	}
	return filepath.Join(binaries.dir, function, "bootstrap")
}

// repoRoot is the directory of go.mod, found upwards from the test's directory.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("go.mod not found above the test directory")
		}
		dir = parent
	}
}

// riePath finds the Runtime Interface Emulator: $NIGHTSHIFT_RIE (set by the
// Makefile), else aws-lambda-rie on PATH, else bin/tools/aws-lambda-rie. It
// never skips: a machine without it gets the command that installs it.
func riePath(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("NIGHTSHIFT_RIE"); p != "" {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("NIGHTSHIFT_RIE=%s: %v", p, err)
		}
		return p
	}
	if p, err := exec.LookPath("aws-lambda-rie"); err == nil {
		return p
	}
	root, err := repoRoot()
	if err != nil {
		t.Fatal(err)
	}
	tools := filepath.Join(root, "bin", "tools")
	p := filepath.Join(tools, "aws-lambda-rie")
	if _, err := os.Stat(p); err == nil {
		return p
	}
	t.Fatalf("the Lambda Runtime Interface Emulator is not installed (looked at $NIGHTSHIFT_RIE, PATH and %s); install it with:\n\tGOBIN=%s go install %s\nor run the tests with make test", p, tools, rieModule)
	return ""
}

// lambdaFunc is one function running under its own emulator process, which
// takes one invocation at a time, like one Lambda execution environment.
type lambdaFunc struct {
	name string
	url  string
	logs *logBuffer
}

// startFunction runs the function's bootstrap under the emulator, with env
// as its whole environment, and stops it when the test ends.
func startFunction(t testing.TB, name string, env []string) *lambdaFunc {
	t.Helper()
	rie := riePath(t) // before the build, which takes a while
	bin := bootstrap(t, name)
	addr, apiAddr := freeAddr(t), freeAddr(t)
	logs := &logBuffer{}
	cmd := exec.Command(rie,
		"--runtime-interface-emulator-address", addr,
		"--runtime-api-address", apiAddr,
		bin)
	cmd.Dir = filepath.Dir(bin)
	cmd.Env = append(slices.Clip(env), fmt.Sprintf("AWS_LAMBDA_FUNCTION_TIMEOUT=%d", int(functionTimeout/time.Second)), "AWS_LAMBDA_FUNCTION_NAME=nightshift-"+name)
	cmd.Stdout, cmd.Stderr = logs, logs
	// Its own process group, so that the cleanup kills the emulator and the
	// bootstrap it started; Pdeathsig, so that it dies with a killed test.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s under the emulator: %v", name, err)
	}
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("%s (emulator and function output):\n%s", name, logs.String())
		}
	})
	deadline := time.Now().Add(rieStartTimeout)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: emulator not listening on %s after %v:\n%s", name, addr, rieStartTimeout, logs.String())
		}
		time.Sleep(20 * time.Millisecond) // polling a process we started, not waiting on logic
	}
	return &lambdaFunc{name: name, url: "http://" + addr + "/2015-03-31/functions/function/invocations", logs: logs}
}

// functionError is the body the emulator returns when the handler fails.
type functionError struct {
	Message string `json:"errorMessage"`
	Type    string `json:"errorType"`
}

// invoke sends one event and returns the function's response body, or its
// error when the handler returned one.
func (f *lambdaFunc) invoke(t testing.TB, event []byte) ([]byte, *functionError) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), functionTimeout+10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, f.url, bytes.NewReader(event))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("invoke %s: %v", f.name, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("invoke %s: read response: %v", f.name, err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("invoke %s: %s: %s", f.name, resp.Status, body)
	}
	var fe functionError
	if json.Unmarshal(body, &fe) == nil && fe.Type != "" {
		return body, &fe
	}
	return body, nil
}

// freeAddr returns a loopback address with a port that was free just now.
func freeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// logBuffer collects a process's output; the process writes from its own goroutines.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
