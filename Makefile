# nightshift — build, run, test.
#
#   make run    the local run: a job through the real handlers on the simulated cloud
#   make test   everything: unit, simulation, moto (DynamoDB/EC2/SSM/CloudWatch over
#               HTTP), the Lambda binaries under the Runtime Interface Emulator, and
#               the template (cfn-lint, IAM scope)
#   make build  one stripped bootstrap per function, provided.al2023 arm64
#   make check-reflect   no function's link graph reaches a method call by
#               name through reflection (it keeps every method: 4x the size)
#   make lint   gofmt, go vet, cfn-lint
#   make soak SEEDS=N [MODE=concurrent]   N randomized chaos histories, in parallel
#   make fuzz FUZZTIME=30s   every fuzz target in turn, for FUZZTIME each
#   make bench / bench-all   API calls per job and sweep; intake; binary size and start-up
#   make bench-waste         what nightshift saves, against the alternatives, on traces/

SHELL      := /bin/bash
GO         ?= go
FUNCTIONS  := intake dispatch watchdog
BIN        := $(CURDIR)/bin
TOOLS      := $(BIN)/tools
RIE        := $(TOOLS)/aws-lambda-rie
RIE_MODULE := github.com/aws/aws-lambda-runtime-interface-emulator/cmd/aws-lambda-rie@v0.0.0-20261030222936-bef5c4ba774d
PYTHON     ?= python3
# Lambda build: Linux arm64, no RPC shim (provided.al2023 does not use it), stripped.
LAMBDA_ENV   := CGO_ENABLED=0 GOOS=linux GOARCH=arm64
LAMBDA_FLAGS := -tags lambda.norpc -trimpath -ldflags "-s -w"

.PHONY: all build run test lint tools deps sizes check-reflect bench soak fuzz clean $(addprefix build-,$(FUNCTIONS))

all: lint test build

build: $(addprefix build-,$(FUNCTIONS))

$(addprefix build-,$(FUNCTIONS)): build-%:
	$(LAMBDA_ENV) $(GO) build $(LAMBDA_FLAGS) -o $(BIN)/$*/bootstrap ./functions/$*

# sam build (BuildMethod: makefile) calls build-<LogicalId> with ARTIFACTS_DIR set.
build-IntakeFunction: build-intake
	cp $(BIN)/intake/bootstrap $(ARTIFACTS_DIR)/bootstrap
build-DispatchFunction: build-dispatch
	cp $(BIN)/dispatch/bootstrap $(ARTIFACTS_DIR)/bootstrap
build-WatchdogFunction: build-watchdog
	cp $(BIN)/watchdog/bootstrap $(ARTIFACTS_DIR)/bootstrap

# Stripped size of each function's bootstrap, in bytes.
sizes: build
	@for f in $(FUNCTIONS); do printf '%-10s %10d bytes\n' $$f $$(stat -c %s $(BIN)/$$f/bootstrap); done

# Each function linked with -dumpdep; fails naming the chain of symbols to any
# reflective method call (text/template is one). Part of `make test` too.
check-reflect:
	$(GO) test ./internal/bench -run '^TestNoReflectMethod$$' -count=1 -v

run:
	$(GO) run ./cmd/nightshift local

# Randomized histories with fault injection, every invariant checked after
# every step, in parallel over the cores: make soak SEEDS=5000 [FIRST=1]
# [MODE=concurrent] — concurrent histories run Lambda invocations at once,
# interleaved call by call.
SEEDS ?= 1000
FIRST ?= 1
MODE  ?= serial
soak:
ifeq ($(MODE),concurrent)
	$(GO) test ./internal/chaos -run 'TestConcurrentSeeds$$' -count=1 -timeout 0 -v -cseeds $(SEEDS) -first $(FIRST)
else
	$(GO) test ./internal/chaos -run 'TestSeeds$$' -count=1 -timeout 0 -v -seeds $(SEEDS) -first $(FIRST)
endif

# Every Fuzz function, package by package, FUZZTIME each: go test runs one
# fuzz target at a time. A failing input is written to the package's
# testdata/fuzz/, where plain go test replays it. Minimizing each new
# input for go test's default 60 s would eat a short run, hence FUZZFLAGS.
FUZZTIME     ?= 30s
FUZZFLAGS    ?= -fuzzminimizetime 10s
FUZZ_TARGETS  = $(shell grep -rEo --include='*_test.go' '^func Fuzz[A-Za-z0-9_]*' internal | sed -E 's|/[^/]*:func |:|' | sort)
fuzz:
	@set -e; for t in $(FUZZ_TARGETS); do \
		echo "== $${t#*:} ./$${t%%:*}"; \
		$(GO) test ./$${t%%:*} -run '^$$' -fuzz "^$${t#*:}\$$" -fuzztime $(FUZZTIME) $(FUZZFLAGS); \
	done

# API calls per job (cold and warm) and per idle tick, counted by the simulated cloud.
bench:
	$(GO) test ./internal/sim -run '^$$' -bench . -benchmem

# deps checks what the tests need from the machine and installs what the
# project can install itself (the Lambda Runtime Interface Emulator).
deps: tools
	@$(PYTHON) -c 'import moto' 2>/dev/null || { echo "moto is missing: pip install 'moto[server]'" >&2; exit 1; }
	@command -v cfn-lint >/dev/null || { echo "cfn-lint is missing: pip install cfn-lint" >&2; exit 1; }
	@command -v bash >/dev/null || { echo "bash is missing" >&2; exit 1; }

tools: $(RIE)

$(RIE):
	GOBIN=$(TOOLS) $(GO) install $(RIE_MODULE)

test: deps
	$(GO) vet ./...
	NIGHTSHIFT_RIE=$(RIE) NIGHTSHIFT_PYTHON=$(PYTHON) $(GO) test -count=1 -timeout 30m ./...
	# A few concurrent histories under the race detector: the handlers, the
	# store and the harness share state across invocations.
	$(GO) test -count=1 -race -run 'TestConcurrentRace$$' ./internal/chaos

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	cfn-lint template.yaml

clean:
	rm -rf $(BIN)

# bench-intake, bench-startup, bench-all (bench.mk); bench-waste (waste.mk).
include bench.mk
include waste.mk
