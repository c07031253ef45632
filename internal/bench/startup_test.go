package bench_test

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nightshift-dev/nightshift/internal/bench"
)

// binaries are the measured functions, the hello-world baseline first.
var binaries = []struct{ name, pkg string }{
	{"hello", "github.com/nightshift-dev/nightshift/testdata/hello"},
	{"intake", "github.com/nightshift-dev/nightshift/functions/intake"},
	{"dispatch", "github.com/nightshift-dev/nightshift/functions/dispatch"},
	{"watchdog", "github.com/nightshift-dev/nightshift/functions/watchdog"},
}

// build builds every binary for linux/goarch the way the Makefile's build
// target does (LAMBDA_ENV, LAMBDA_FLAGS; keep them in step) into dir/goarch,
// and returns their paths by name.
func build(tb testing.TB, dir, goarch string) map[string]string {
	tb.Helper()
	out := filepath.Join(dir, goarch)
	args := []string{"build", "-tags", "lambda.norpc", "-trimpath", "-ldflags", "-s -w", "-o", out + string(filepath.Separator)}
	for _, bin := range binaries {
		args = append(args, bin.pkg)
	}
	// go test puts its own go first on PATH.
	cmd := exec.Command("go", args...)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+goarch)
	if msg, err := cmd.CombinedOutput(); err != nil {
		tb.Fatalf("go %v: %v\n%s", args, err, msg)
	}
	paths := map[string]string{}
	for _, bin := range binaries {
		paths[bin.name] = filepath.Join(out, filepath.Base(bin.pkg))
	}
	return paths
}

// lambdaEnv is the environment Lambda gives a provided.al2023 function of
// template.yaml, with its parameters' defaults. The credentials are dummies:
// the SDK resolves credentials only when it first signs a request, and init
// makes none. proxy becomes HTTP(S)_PROXY, so any request to AWS made during
// init would reach it (the runtime API, on loopback, is never proxied); the
// shared config files point into dir, so the machine's own are never read.
func lambdaEnv(dir, fn, proxy string) []string {
	return []string{
		"PATH=/usr/local/bin:/usr/bin/:/bin:/opt/bin",
		"TZ=:UTC",
		"LANG=en_US.UTF-8",
		"LAMBDA_TASK_ROOT=/var/task",
		"_HANDLER=bootstrap",
		"AWS_REGION=us-east-1",
		"AWS_DEFAULT_REGION=us-east-1",
		"AWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE",
		"AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
		"AWS_SESSION_TOKEN=dummy",
		"AWS_LAMBDA_FUNCTION_NAME=nightshift-" + fn,
		"AWS_LAMBDA_FUNCTION_VERSION=$LATEST",
		"AWS_LAMBDA_FUNCTION_MEMORY_SIZE=128",
		"AWS_LAMBDA_LOG_GROUP_NAME=/aws/lambda/nightshift-" + fn,
		"AWS_LAMBDA_LOG_STREAM_NAME=2026/11/25/[$LATEST]0123456789abcdef0123456789abcdef",
		"AWS_LAMBDA_INITIALIZATION_TYPE=on-demand",
		"AWS_CONFIG_FILE=" + filepath.Join(dir, "aws-config"),
		"AWS_SHARED_CREDENTIALS_FILE=" + filepath.Join(dir, "aws-credentials"),
		"HTTP_PROXY=" + proxy,
		"HTTPS_PROXY=" + proxy,
		"NIGHTSHIFT_TABLE=nightshift-jobs",
		`NIGHTSHIFT_POOLS={"default":{"types":["g4dn.xlarge"],"max_instances":2,"market":"on-demand","keep_warm":"10m"}}`,
		"NIGHTSHIFT_LAUNCH_TEMPLATE_ID=lt-0123456789abcdef0",
		"NIGHTSHIFT_SUBNET_IDS=subnet-0123456789abcdef0,subnet-0fedcba9876543210",
		"NIGHTSHIFT_AMI_PARAMETER=/aws/service/deeplearning/ami/x86_64/oss-nvidia-driver-gpu-pytorch-2.7-ubuntu-22.04/latest/ami-id",
		"NIGHTSHIFT_LOG_GROUP=/nightshift/jobs",
		"NIGHTSHIFT_OUTPUT_BUCKET=",
		"NIGHTSHIFT_DEFAULT_MAX_RUNTIME=2h",
		"NIGHTSHIFT_DEFAULT_SETUP=. /opt/pytorch/bin/activate",
		"NIGHTSHIFT_TOPIC_ARN=arn:aws:sns:us-east-1:123456789012:nightshift",
		"NIGHTSHIFT_DAILY_BUDGET_USD=50",
		"NIGHTSHIFT_MONTHLY_BUDGET_USD=0",
		"NIGHTSHIFT_PRICES=",
		"NIGHTSHIFT_BUDGET_POLICY=finish",
		"NIGHTSHIFT_IDLE_TIMEOUT=60m",
		"NIGHTSHIFT_IDLE_GPU_PERCENT=5",
		"NIGHTSHIFT_IDLE_CPU_PERCENT=10",
		"NIGHTSHIFT_IDLE_NETWORK_BYTES=5000000",
		"NIGHTSHIFT_WATCH_GRACE=15m",
		"NIGHTSHIFT_STALL_TIMEOUT=30m",
		"NIGHTSHIFT_DRY_RUN=false",
		"NIGHTSHIFT_STACK=nightshift",
	}
}

// egress is an HTTP proxy that counts and refuses every request.
func egress(tb testing.TB) (url string, requests *atomic.Int64) {
	requests = new(atomic.Int64)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		http.Error(w, "no network during init", http.StatusForbidden)
	}))
	tb.Cleanup(srv.Close)
	return srv.URL, requests
}

func fileSize(tb testing.TB, path string) int64 {
	tb.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		tb.Fatal(err)
	}
	return fi.Size()
}

func zipSize(tb testing.TB, path string) int64 {
	tb.Helper()
	n, err := bench.ZipSize(path)
	if err != nil {
		tb.Fatal(err)
	}
	return n
}

// BenchmarkStartup builds each function and the hello-world baseline in the
// same run with the same flags, then reports per binary:
//
//   - bytes-arm64: the stripped linux/arm64 bootstrap, the shipped artifact;
//     bytes-zip: its deployment zip (deflate at the best level), the upload;
//   - ns-init-median, ns-init-p90 (ns/op is the median too): init time, from
//     exec to the first GET .../invocation/next, of the same build for this
//     machine's architecture (an arm64 binary cannot run here), with the
//     environment Lambda gives it;
//   - *-ratio-to-hello: the same over hello-world's.
//
// Each iteration starts the function and hello-world once each, in
// alternating order, so the init ratio compares runs made under the same
// load (the hello sub-benchmark thus reports the ratio between two sets of
// hello runs: the noise floor). The first start of each is a discarded
// warm-up. Absolute times are this machine's; the ratios carry over better.
// egress-requests counts requests the binaries made anywhere but the
// Runtime API; it must be 0. Run with -benchtime=20x for 20 starts each.
func BenchmarkStartup(b *testing.B) {
	dir := b.TempDir()
	arm := build(b, dir, "arm64")
	host := build(b, dir, runtime.GOARCH)
	api := bench.NewRuntimeAPI()
	defer api.Close()
	proxy, requests := egress(b)
	helloSize, helloZip := fileSize(b, arm["hello"]), zipSize(b, arm["hello"])

	for _, bin := range binaries {
		b.Run(bin.name, func(b *testing.B) {
			env := lambdaEnv(dir, bin.name, proxy)
			start := func(name string) time.Duration {
				d, err := api.Init(host[name], env)
				if err != nil {
					b.Fatal(err)
				}
				return d
			}
			requests0 := requests.Load()
			start(bin.name) // warm-up: page cache, first exec
			start("hello")
			var fn, hello []time.Duration
			i := 0
			for b.Loop() {
				if i%2 == 0 {
					fn = append(fn, start(bin.name))
					hello = append(hello, start("hello"))
				} else {
					hello = append(hello, start("hello"))
					fn = append(fn, start(bin.name))
				}
				i++
			}
			egressRequests := requests.Load() - requests0
			if egressRequests != 0 {
				b.Errorf("%s made %d requests to the network during init; want 0", bin.name, egressRequests)
			}
			med := bench.Quantile(fn, 0.5)
			size, zip := fileSize(b, arm[bin.name]), zipSize(b, arm[bin.name])
			b.ReportMetric(float64(med), "ns/op")
			b.ReportMetric(float64(med), "ns-init-median")
			b.ReportMetric(float64(bench.Quantile(fn, 0.9)), "ns-init-p90")
			b.ReportMetric(float64(med)/float64(bench.Quantile(hello, 0.5)), "init-ratio-to-hello")
			b.ReportMetric(float64(size), "bytes-arm64")
			b.ReportMetric(float64(size)/float64(helloSize), "size-ratio-to-hello")
			b.ReportMetric(float64(zip), "bytes-zip")
			b.ReportMetric(float64(zip)/float64(helloZip), "zip-ratio-to-hello")
			b.ReportMetric(float64(egressRequests), "egress-requests")
		})
	}
}

// TestInit: the Runtime API times a function that reaches its invocation
// loop, and reports one that exits during init.
func TestInit(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the hello-world function")
	}
	dir := t.TempDir()
	host := build(t, dir, runtime.GOARCH)
	api := bench.NewRuntimeAPI()
	defer api.Close()
	proxy, requests := egress(t)

	if d, err := api.Init(host["hello"], lambdaEnv(dir, "hello", proxy)); err != nil || d <= 0 {
		t.Errorf("Init(hello) = %v, %v; want a positive duration, nil", d, err)
	}
	// intake without NIGHTSHIFT_TABLE logs the error and exits 1.
	var exit *exec.ExitError
	if _, err := api.Init(host["intake"], []string{"AWS_REGION=us-east-1"}); !errors.As(err, &exit) || exit.ExitCode() != 1 {
		t.Errorf("Init(intake without NIGHTSHIFT_TABLE) = _, %v; want exit status 1", err)
	}
	// Every function passes its configuration with lambdaEnv.
	for _, bin := range binaries[1:] {
		if _, err := api.Init(host[bin.name], lambdaEnv(dir, bin.name, proxy)); err != nil {
			t.Errorf("Init(%s) = _, %v; want nil", bin.name, err)
		}
	}
	if n := requests.Load(); n != 0 {
		t.Errorf("requests to the network during init = %d; want 0", n)
	}
}
