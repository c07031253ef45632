package chaos

import (
	"flag"
	"log/slog"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
)

var (
	seed  = flag.Uint64("seed", 0, "replay this one seed (TestReplay)")
	seeds = flag.Int("seeds", 200, "how many seeds TestSeeds runs")
	first = flag.Uint64("first", 1, "the first seed TestSeeds runs")
)

// TestSeeds runs many histories in parallel over the cores; a failure
// prints the seed and the command that replays it.
func TestSeeds(t *testing.T) {
	var next atomic.Uint64
	next.Store(*first)
	last := *first + uint64(*seeds)
	var mu sync.Mutex
	var failed []error
	var total Stats
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				s := next.Add(1) - 1
				if s >= last {
					return
				}
				st, err := Run(s)
				mu.Lock()
				total.add(st)
				if err != nil {
					failed = append(failed, err)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	t.Logf("%d seeds from %d: %+v", *seeds, *first, total)
	for _, err := range failed {
		t.Error(err)
	}
}

// TestReplay replays one seed: go test ./internal/chaos -run TestReplay -seed N -v
func TestReplay(t *testing.T) {
	if *seed == 0 {
		t.Skip("give -seed N to replay a history")
	}
	var log *slog.Logger
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	st, err := RunLogged(*seed, log)
	t.Logf("seed %d: %+v", *seed, st)
	if err != nil {
		t.Fatal(err)
	}
}

// TestDeterministic: the same seed gives the same history, twice.
func TestDeterministic(t *testing.T) {
	for _, s := range []uint64{3, 17} {
		a, errA := Run(s)
		b, errB := Run(s)
		if a != b || (errA == nil) != (errB == nil) || errA != nil && errA.Error() != errB.Error() {
			t.Errorf("Run(%d) twice: %+v, %v and %+v, %v; want identical", s, a, errA, b, errB)
		}
	}
}
