# Benchmarks beyond `make bench` (API calls per job); included by the Makefile.
#
#   make bench-intake   10,000 job messages through the intake handler on the
#                       simulated cloud: time, allocations and store writes per job
#   make bench-startup  each function's stripped arm64 size, zip size and init
#                       time, next to a hello-world aws-lambda-go function
#   make bench-all      both, then `make bench`; each output also goes to bin/bench-*.txt
#
# The figures are one machine's: compare the ratios and counts, not the times.

GO  ?= go
BIN ?= $(CURDIR)/bin

# One op is all 10,000 messages (about a minute here): one is enough.
BENCH_INTAKE  := $(GO) test ./internal/bench -run '^$$' -bench '^BenchmarkIntake$$' -benchtime 1x -count 1 -timeout 15m
# Each iteration starts the function and hello-world once each: 20 start-ups of each.
BENCH_STARTUP := $(GO) test ./internal/bench -run '^$$' -bench '^BenchmarkStartup$$' -benchtime 20x -count 1 -timeout 15m

.PHONY: bench-intake bench-startup bench-all

bench-intake:
	@mkdir -p $(BIN)
	set -o pipefail; $(BENCH_INTAKE) | tee $(BIN)/bench-intake.txt

bench-startup:
	@mkdir -p $(BIN)
	set -o pipefail; $(BENCH_STARTUP) | tee $(BIN)/bench-startup.txt

# One after the other, even under make -j: concurrent benchmarks would skew each other.
bench-all:
	@mkdir -p $(BIN)
	set -o pipefail; $(BENCH_INTAKE) | tee $(BIN)/bench-intake.txt
	set -o pipefail; $(BENCH_STARTUP) | tee $(BIN)/bench-startup.txt
	set -o pipefail; $(MAKE) --no-print-directory bench | tee $(BIN)/bench-sim.txt
