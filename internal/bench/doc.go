// Package bench measures what nightshift costs to run: intake throughput on
// the simulated cloud, and each Lambda function's binary size and init time
// next to a hello-world aws-lambda-go function built the same way. The
// measurements are benchmarks (go test -bench, see bench.mk); this package
// holds the helpers they share, and reads the linker's dependency dump for
// the test that keeps reflective method calls out of every function.
package bench
