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
	seed       = flag.Uint64("seed", 0, "replay this one seed (TestReplay)")
	concurrent = flag.Bool("concurrent", false, "TestReplay: replay the seed's concurrent history")
	nSeeds     = flag.Int("seeds", 200, "how many seeds TestSeeds runs")
	nCSeeds    = flag.Int("cseeds", 200, "how many seeds TestConcurrentSeeds runs")
	first      = flag.Uint64("first", 1, "the first seed TestSeeds and TestConcurrentSeeds run")
)

// TestSeeds runs many serial histories in parallel over the cores; a
// failure prints the seed and the command that replays it.
func TestSeeds(t *testing.T) { runSeeds(t, Serial, *first, *nSeeds) }

// TestConcurrentSeeds runs concurrent histories: Lambda invocations at
// once, interleaved call by call.
func TestConcurrentSeeds(t *testing.T) { runSeeds(t, Concurrent, *first, *nCSeeds) }

// TestConcurrentRace runs a few concurrent histories; under go test -race
// (make test does) it checks the handlers and the harness for data races.
func TestConcurrentRace(t *testing.T) { runSeeds(t, Concurrent, 100001, 4) }

// runSeeds plays n histories of mode from seed first on, over the cores.
func runSeeds(t *testing.T, mode Mode, first uint64, n int) {
	var next atomic.Uint64
	next.Store(first)
	last := first + uint64(n)
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
				st, err := RunLogged(s, mode, nil)
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
	t.Logf("%d %s seeds from %d: %+v", n, mode, first, total)
	for _, err := range failed {
		t.Error(err)
	}
}

// TestReplay replays one seed: go test ./internal/chaos -run TestReplay -seed N [-concurrent] -v
func TestReplay(t *testing.T) {
	if *seed == 0 {
		t.Skip("give -seed N to replay a history")
	}
	var log *slog.Logger
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	mode := Serial
	if *concurrent {
		mode = Concurrent
	}
	st, err := RunLogged(*seed, mode, log)
	t.Logf("seed %d (%s): %+v", *seed, mode, st)
	if err != nil {
		t.Fatal(err)
	}
}

// TestDeterministic: the same seed gives the same history, twice, in both
// modes (the concurrent one's interleaving included).
func TestDeterministic(t *testing.T) {
	for _, mode := range []Mode{Serial, Concurrent} {
		for _, s := range []uint64{3, 17} {
			a, errA := RunLogged(s, mode, nil)
			b, errB := RunLogged(s, mode, nil)
			if a != b || (errA == nil) != (errB == nil) || errA != nil && errA.Error() != errB.Error() {
				t.Errorf("RunLogged(%d, %s) twice: %+v, %v and %+v, %v; want identical", s, mode, a, errA, b, errB)
			}
		}
	}
}
