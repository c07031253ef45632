package bench_test

import (
	"context"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/nightshift-dev/nightshift/internal/job"
	"github.com/nightshift-dev/nightshift/internal/sim"
	"github.com/nightshift-dev/nightshift/internal/store"
)

// intakeMessages is how many job messages BenchmarkIntake sends.
const intakeMessages = 10_000

// sqsBatch is the SQS event source's default batch size.
const sqsBatch = 10

// phase is how many messages the first- and last-phase timings cover.
const phase = 1_000

// storeWrites and storeReads sort the store's operations, by the names
// sim.World.StoreCalls counts them under.
var (
	storeWrites = map[string]bool{"Create": true, "Update": true, "PutLease": true, "MarkStopping": true, "ClearStopping": true, "DeleteLease": true, "PutSpend": true}
	storeReads  = map[string]bool{"Job": true, "Lease": true, "Leases": true, "Live": true, "Head": true, "Spend": true}
)

// itemCounter counts the records the scheduler's reads return: a Live query
// is one store call but, on DynamoDB, pages through every live job of that
// state, and that is what it costs in time and read capacity.
type itemCounter struct {
	store.Jobs
	items *int
}

func (c itemCounter) Job(ctx context.Context, id string) (*job.Job, error) {
	j, err := c.Jobs.Job(ctx, id)
	if err == nil {
		*c.items++
	}
	return j, err
}

func (c itemCounter) Live(ctx context.Context, s job.State) ([]*job.Job, error) {
	js, err := c.Jobs.Live(ctx, s)
	*c.items += len(js)
	return js, err
}

func (c itemCounter) Leases(ctx context.Context) ([]store.Lease, error) {
	ls, err := c.Jobs.Leases(ctx)
	*c.items += len(ls)
	return ls, err
}

func (c itemCounter) Lease(ctx context.Context, id string) (store.Lease, error) {
	l, err := c.Jobs.Lease(ctx, id)
	if err == nil {
		*c.items++
	}
	return l, err
}

func (c itemCounter) Spend(ctx context.Context, period string) (store.Spend, error) {
	s, err := c.Jobs.Spend(ctx, period)
	if err == nil {
		*c.items++
	}
	return s, err
}

// intakeBatches returns n distinct job messages shaped like
// events/sqs-job.json, in SQS event batches of sqsBatch.
func intakeBatches(n int) []events.SQSEvent {
	var batches []events.SQSEvent
	for i := range n {
		if i%sqsBatch == 0 {
			batches = append(batches, events.SQSEvent{})
		}
		b := &batches[len(batches)-1]
		b.Records = append(b.Records, events.SQSMessage{
			MessageId:     fmt.Sprintf("2e1424d4-f796-459a-8184-%012d", i),
			ReceiptHandle: fmt.Sprintf("AQEB054ae0e53e18144aabe9883e4c0b3f7c4bbc482c7e2c8b61/%08d==", i),
			Body:          fmt.Sprintf(`{"id":"resnet-%05d","name":"resnet on cifar10","command":"python train.py --epochs 10","max_runtime":"2h","env":{"WANDB_MODE":"offline"}}`, i),
			Attributes: map[string]string{
				"ApproximateReceiveCount": "1", "SentTimestamp": "1795640400000",
				"SenderId": "AIDAIENQZJOLO23YVJ4VO", "ApproximateFirstReceiveTimestamp": "1795640400212",
			},
			MessageAttributes: map[string]events.SQSMessageAttribute{},
			EventSource:       "aws:sqs",
			EventSourceARN:    "arn:aws:sqs:us-east-1:123456789012:nightshift-jobs",
			AWSRegion:         "us-east-1",
		})
	}
	return batches
}

func sum(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

// BenchmarkIntake sends intakeMessages job messages through the real intake
// handler on the simulated cloud, in batches of ten as the SQS event source
// delivers them, one op being all of them into a fresh world. It reports per
// message the handler's time, allocations and AWS calls, and per job the
// store's writes and reads (calls) and the records those reads return.
//
// The handler reconciles after each batch, and the default pool's cap is two
// instances: two jobs launch and every other job stays QUEUED, waiting. That
// is realistic — a burst is queued far faster than GPUs free up — and it is
// the costly case, since each reconcile reads and considers the whole queue.
// ns/msg-first-1k and ns/msg-last-1k show how the cost per message grows
// with the queue's depth. Run with -benchtime=1x: one op is 10,000 messages.
func BenchmarkIntake(b *testing.B) {
	ctx := context.Background()
	batches := intakeBatches(intakeMessages)
	b.ReportAllocs()
	var (
		elapsed, first, last     time.Duration
		mallocs, bytes           uint64
		writes, reads, items     int
		creates, updates, awsOps int
		queued                   int
	)
	for b.Loop() {
		b.StopTimer()
		var n int
		w := sim.NewWorld(sim.Config{WrapStore: func(s store.Jobs) store.Jobs { return itemCounter{s, &n} }})
		var m0, m1 runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&m0)
		b.StartTimer()

		start := time.Now()
		for i, ev := range batches {
			resp, err := w.Svc.Intake.Handle(ctx, ev)
			if err != nil || len(resp.BatchItemFailures) > 0 {
				b.Fatalf("Intake.Handle(batch %d) = %v, %v; want no failures", i, resp.BatchItemFailures, err)
			}
			switch (i + 1) * sqsBatch {
			case phase:
				first = time.Since(start)
			case intakeMessages - phase:
				last = time.Since(start)
			}
		}
		elapsed = time.Since(start)
		last = elapsed - last

		b.StopTimer()
		runtime.ReadMemStats(&m1)
		mallocs, bytes = m1.Mallocs-m0.Mallocs, m1.TotalAlloc-m0.TotalAlloc
		writes, reads, creates, updates = 0, 0, w.StoreCalls["Create"], w.StoreCalls["Update"]
		for op, c := range w.StoreCalls {
			switch {
			case storeWrites[op]:
				writes += c
			case storeReads[op]:
				reads += c
			default:
				b.Fatalf("store operation %q is neither a read nor a write here", op)
			}
		}
		items, awsOps = n, sum(w.Cloud.Calls)
		if errs := w.Errors; len(errs) > 0 {
			b.Fatalf("handler errors: %v", errs)
		}
		js, err := w.Store.Live(ctx, job.Queued)
		if err != nil {
			b.Fatal(err)
		}
		queued = len(js)
		b.StartTimer()
	}
	const msgs = float64(intakeMessages)
	b.ReportMetric(float64(elapsed.Nanoseconds())/msgs, "ns/msg")
	b.ReportMetric(float64(first.Nanoseconds())/phase, "ns/msg-first-1k")
	b.ReportMetric(float64(last.Nanoseconds())/phase, "ns/msg-last-1k")
	b.ReportMetric(float64(mallocs)/msgs, "allocs/msg")
	b.ReportMetric(float64(bytes)/msgs, "B/msg")
	b.ReportMetric(float64(writes)/msgs, "writes/job")
	b.ReportMetric(float64(creates)/msgs, "creates/job")
	b.ReportMetric(float64(updates)/msgs, "updates/job")
	b.ReportMetric(float64(reads)/msgs, "reads/job")
	b.ReportMetric(float64(items)/msgs, "items-read/job")
	b.ReportMetric(float64(awsOps)/msgs, "aws-calls/msg")
	b.ReportMetric(float64(queued), "jobs-queued-after")
}
