package waste

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nightshift-dev/nightshift/internal/runner"
	"github.com/nightshift-dev/nightshift/internal/scheduler"
)

// traces returns the shipped traces and, unless -short, generated months
// from other seeds.
func traces(t *testing.T) map[string]*Trace {
	t.Helper()
	out := map[string]*Trace{}
	paths, err := filepath.Glob("../../traces/*.trace")
	if err != nil || len(paths) < 3 {
		t.Fatalf("shipped traces: %v, %v; want at least 3", paths, err)
	}
	for _, path := range paths {
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		tr, err := Parse(f)
		f.Close()
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		out[filepath.Base(path)] = tr
	}
	if !testing.Short() {
		for _, seed := range []uint64{2} {
			var b bytes.Buffer
			if err := Generate(&b, "month", seed); err != nil {
				t.Fatal(err)
			}
			tr, err := Parse(&b)
			if err != nil {
				t.Fatalf("month seed %d: %v", seed, err)
			}
			out[fmt.Sprintf("month-seed-%d", seed)] = tr
		}
	}
	return out
}

// TestInvariants: on every trace, every policy trains exactly what the
// trace asks for, bills at least the lower bound, and reports one wait per
// job; nightshift's replay has no finding.
func TestInvariants(t *testing.T) {
	for name, tr := range traces(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			p := DefaultParams()
			var want time.Duration
			jobs := 0
			for _, ev := range tr.Events {
				want += ev.Duration
				if ev.Kind != Notebook {
					jobs++
				}
			}
			lb := Bound(tr, p)
			ns, err := Replay(context.Background(), tr, p)
			if err != nil {
				t.Fatalf("Replay: %v", err)
			}
			for _, f := range ns.Findings {
				t.Errorf("nightshift replay: %s", f)
			}
			// L1 and L5 of ../shared/DESIGN.md: a notebook ends itself within
			// one look of its wrapper after its timeout (the connected one at
			// most), and its instance stops at once.
			if most := keepWarmBound(p) + scheduler.Period; ns.PoolIdle.Max > most {
				t.Errorf("nightshift kept a free pool instance up %v after its last job; want at most %v", ns.PoolIdle.Max, most)
			}
			if most := p.NotebookIdleConnected + runner.NotebookLook + scheduler.Period; ns.NotebookIdle.Max > most {
				t.Errorf("nightshift kept a notebook up %v after its user left; want at most %v", ns.NotebookIdle.Max, most)
			}
			if ns.Interruptions != 0 {
				t.Errorf("nightshift interrupted %d notebook sessions; want none", ns.Interruptions)
			}
			// The goal figures, on the shipped traces: at most 1.05×
			// the bound (1.03× on the month), and no peer that interrupted
			// nobody bills less.
			goal := map[string]float64{"small-team-month.trace": 1.03, "notebook-only.trace": 1.05, "one-long-job.trace": 1.05}[name]
			if r := float64(ns.Billed) / float64(lb.Billed); goal > 0 && r > goal {
				t.Errorf("nightshift billed %.3f× the lower bound; want at most %.2f×", r, goal)
			}
			rows := []Row{{"nightshift", ns.Result}, {"bound", lb}}
			for _, pol := range Baselines(tr, p) {
				rows = append(rows, Row{pol.String(), Model(tr, p, pol)})
			}
			for _, r := range rows {
				if r.Training != want {
					t.Errorf("%s: training %v; want the trace's %v", r.Name, r.Training, want)
				}
				if r.Billed < lb.Billed {
					t.Errorf("%s: billed %v; below the lower bound %v", r.Name, r.Billed, lb.Billed)
				}
				if r.Billed < r.Training+r.Killed {
					t.Errorf("%s: billed %v; less than training %v plus killed %v", r.Name, r.Billed, r.Training, r.Killed)
				}
				if r.Interruptions == 0 && r.Billed < ns.Billed && r.Name != "bound" {
					t.Errorf("%s billed %v, less than nightshift's %v, and interrupted no one", r.Name, r.Billed, ns.Billed)
				}
				if len(r.Waits) != jobs {
					t.Errorf("%s: %d waits; want one per job, %d", r.Name, len(r.Waits), jobs)
				}
			}
		})
	}
}

// TestReplayOneJob checks nightshift's bill on one cold job against what
// ../shared/DESIGN.md promises (L1): billed no more than the billed boot,
// one watchdog period to dispatch, the job, the keep-warm window, one
// period to notice it, and the stop.
func TestReplayOneJob(t *testing.T) {
	p := DefaultParams()
	tr := handTrace(t, "d0 10:00,job,a,1h\n")
	got, err := Replay(context.Background(), tr, p)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Findings) > 0 {
		t.Errorf("findings: %q", got.Findings)
	}
	most := p.Agent + scheduler.Period + time.Hour + keepWarmBound(p) + scheduler.Period + p.StopDelay
	if got.Billed < time.Hour+p.Agent+p.StopDelay || got.Billed > most {
		t.Errorf("nightshift billed %v for one 1-hour job; want at most %v", got.Billed, most)
	}
	if w, most := got.Wait(50), p.Pending+p.Agent+scheduler.Period; w < p.Pending+p.Agent || w > most {
		t.Errorf("cold start wait %v; want between the boot %v and %v", w, p.Pending+p.Agent, most)
	}
	if got.Starts != 1 || got.Training != time.Hour {
		t.Errorf("starts %d, training %v; want 1 and 1h", got.Starts, got.Training)
	}
}

// TestReplayNotebook: a notebook whose person closed the laptop ends
// within its idle timeout plus one look of its wrapper, and its instance
// stops at once.
func TestReplayNotebook(t *testing.T) {
	p := DefaultParams()
	tr := handTrace(t, "d0 10:00,notebook,nb,2h\n")
	got, err := Replay(context.Background(), tr, p)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Findings) > 0 {
		t.Errorf("findings: %q", got.Findings)
	}
	least := p.Agent + 2*time.Hour + p.NotebookIdle + p.StopDelay
	most := least + runner.NotebookLook + scheduler.Period
	if got.Billed < least || got.Billed > most {
		t.Errorf("notebook billed %v; want between %v and %v", got.Billed, least, most)
	}
}

// keepWarmBound is the longest keep-warm window nightshift may use: the
// configured one, or with "auto" the measured start-to-ready time — the
// boot, the agent, and the tick that sees it online.
func keepWarmBound(p Params) time.Duration {
	if p.KeepWarm > 0 {
		return p.KeepWarm
	}
	return max(scheduler.MinAutoKeepWarm, p.Pending+p.Agent+scheduler.Period)
}
