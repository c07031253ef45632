# waste.mk — the waste report: GPU hours billed, trained and idle, job waits
# and dollars, for nightshift and the stop policies people use instead, on
# every shipped workload trace (docs/waste.md). Included by the Makefile;
# also runs alone: make -f waste.mk bench-waste

GO           ?= go
WASTE_TRACES ?= $(sort $(wildcard traces/*.trace))

.PHONY: bench-waste waste-traces

# One markdown table per trace. Flags: WASTE_FLAGS='-keep-warm 2m -cap 4' …
bench-waste:
	$(GO) run ./cmd/nightshift-waste $(WASTE_FLAGS) $(WASTE_TRACES)

# Regenerates the generated month; internal/waste's golden test checks that
# the shipped file is what seed 1 makes.
waste-traces:
	$(GO) run ./cmd/nightshift-waste -gen month -seed 1 > traces/small-team-month.trace.tmp
	mv traces/small-team-month.trace.tmp traces/small-team-month.trace
