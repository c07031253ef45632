package waste

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"
)

// Row is one policy's line of a report.
type Row struct {
	Name string
	Result
}

// Report is one trace's comparison: nightshift, the baselines and the
// lower bound, on the same trace with the same parameters.
type Report struct {
	// Name names the trace (its file).
	Name    string
	Trace   *Trace
	Params  Params
	Rows    []Row
	Replay  Replayed
	Elapsed struct{ Replay, Models time.Duration }
}

// Baselines returns the policies people use instead of nightshift, with p's
// parameters, in the report's order.
func Baselines(tr *Trace, p Params) []Policy {
	l := looks{times: p.Looks, days: p.Workdays, loc: tr.Loc}
	return []Policy{
		byHand{looks: l},
		autostop{idle: autostopIdle, check: autostopCheck},
		sagemaker{idle: sagemakerIdle, cron: sagemakerCron},
		nightly{at: p.StopAt, run: schedulerRun, loc: tr.Loc, looks: l},
	}
}

// Model runs the trace through the baseline engine under policy pol.
func Model(tr *Trace, p Params, pol Policy) Result {
	r := simulate(tr, p, pol).res
	modelNotebooks(tr, p, pol, &r)
	r.USD = r.Billed.Hours() * p.Price
	return r
}

// Bound returns the lower bound for the trace (see bound).
func Bound(tr *Trace, p Params) Result { return bound(tr, p) }

// Compare replays the trace through nightshift, runs every baseline and
// the lower bound, and returns the report.
func Compare(ctx context.Context, name string, tr *Trace, p Params) (*Report, error) {
	if err := p.Check(); err != nil {
		return nil, err
	}
	rep := &Report{Name: name, Trace: tr, Params: p}
	t0 := time.Now()
	ns, err := Replay(ctx, tr, p)
	if err != nil {
		return nil, err
	}
	rep.Elapsed.Replay = time.Since(t0)
	rep.Replay = ns
	nb := fmt.Sprintf("notebook idle %s, %s connected", short(p.NotebookIdle), short(p.NotebookIdleConnected))
	if p.WatchedNotebooks {
		nb = fmt.Sprintf("notebooks started by hand and watched, idle %s", short(p.IdleTimeout))
	}
	rep.Rows = append(rep.Rows, Row{fmt.Sprintf("**nightshift** (real handlers on the simulated AWS; keep-warm %s; %s)", KeepWarmWords(p.KeepWarm), nb), ns.Result})
	t1 := time.Now()
	for _, pol := range Baselines(tr, p) {
		rep.Rows = append(rep.Rows, Row{pol.String(), Model(tr, p, pol)})
	}
	rep.Rows = append(rep.Rows, Row{immediate{}.String(), Bound(tr, p)})
	rep.Elapsed.Models = time.Since(t1)
	return rep, nil
}

// Markdown writes the report: a heading, what the trace holds, what every
// policy shares, the table, and what went wrong in nightshift.
func (r *Report) Markdown(w io.Writer) error {
	var b strings.Builder
	s := r.Trace.Summary()
	p := r.Params
	fmt.Fprintf(&b, "### %s\n\n", r.Name)
	fmt.Fprintf(&b, "%s from %s (%s): %s and %s (%d exit non-zero), %s. ",
		plural(s.Days, "day"), r.Trace.Start.Format("Mon 2006-01-02"), r.Trace.Loc,
		plural(s.Jobs, "job"), plural(s.Cron, "cron job"), s.Failing, plural(s.Sessions, "notebook session"))
	fmt.Fprintf(&b, "Every policy: %s at $%.3f/h; at most %d pool instances, one job each (notebooks outside the cap); "+
		"boot %s pending (not billed) + %s to ready (billed); stop %s (billed, as the simulator bills it).\n\n",
		p.Type, p.Price, p.Cap, short(p.Pending), short(p.Agent), short(p.StopDelay))
	b.WriteString("| policy | billed h | training h | idle h | killed h | starts | interruptions | wait p50 | wait p95 | USD |\n")
	b.WriteString("|:--|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n")
	for _, row := range r.Rows {
		fmt.Fprintf(&b, "| %s | %.2f | %.2f | %.2f | %.2f | %d | %d | %s | %s | %.2f |\n",
			row.Name, row.Billed.Hours(), row.Training.Hours(), row.Idle().Hours(), row.Killed.Hours(),
			row.Starts, row.Interruptions, waitText(row.Wait(50)), waitText(row.Wait(95)), row.USD)
	}
	b.WriteString(r.verdict())
	fmt.Fprintf(&b, "nightshift replay: %d watchdog ticks, %d simulated AWS calls, %v wall time; baselines and bound: %v.\n",
		r.Replay.Ticks, r.Replay.APICalls, r.Elapsed.Replay.Round(time.Millisecond), r.Elapsed.Models.Round(time.Millisecond))
	if pi, ni := r.Replay.PoolIdle, r.Replay.NotebookIdle; pi.N+ni.N > 0 {
		b.WriteString("nightshift stopped")
		if pi.N > 0 {
			fmt.Fprintf(&b, " pool instances %s after their last job (%s; keep-warm %s)", spread(pi), plural(pi.N, "stop"), KeepWarmWords(p.KeepWarm))
		}
		if pi.N > 0 && ni.N > 0 {
			b.WriteString(" and")
		}
		if ni.N > 0 {
			fmt.Fprintf(&b, " notebooks %s after their last activity or connection (%s; notebook idle %s, %s connected)", spread(ni), plural(ni.N, "stop"), short(p.NotebookIdle), short(p.NotebookIdleConnected))
		}
		b.WriteString(".\n")
	}
	if len(r.Replay.Findings) == 0 {
		b.WriteString("Replay findings: none (every job ended as its line says, in one attempt; no handler error; every instance stopped).\n\n")
	} else {
		b.WriteString("Replay findings:\n\n")
		for _, f := range r.Replay.Findings {
			fmt.Fprintf(&b, "- %s\n", f)
		}
		b.WriteString("\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}

// spread renders a Spread in minutes and seconds: "63m30s", "10m00s–10m20s".
func spread(s Spread) string {
	ms := func(d time.Duration) string {
		d = d.Round(time.Second)
		return fmt.Sprintf("%dm%02ds", d/time.Minute, d/time.Second%60)
	}
	if s.Min.Round(time.Second) == s.Max.Round(time.Second) {
		return ms(s.Min)
	}
	return ms(s.Min) + "–" + ms(s.Max)
}

// waitText renders a wait compactly: 0s, 45s, 2m05s, 3h12m.
func waitText(d time.Duration) string {
	d = d.Round(time.Second)
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", d/time.Second)
	case d < time.Hour:
		return fmt.Sprintf("%dm%02ds", d/time.Minute, d/time.Second%60)
	}
	return fmt.Sprintf("%dh%02dm", d/time.Hour, d/time.Minute%60)
}

// verdict says, under the table, how nightshift compares with the bound
// and the peers: billed against the bound, and the cheapest policy that
// interrupted nobody — a policy that stops people's work cannot win by it.
func (r *Report) verdict() string {
	if len(r.Rows) < 2 {
		return "\n"
	}
	ns, bound := r.Rows[0], r.Rows[len(r.Rows)-1]
	best := -1
	for k, row := range r.Rows[:len(r.Rows)-1] {
		if row.Interruptions == 0 && (best < 0 || row.Billed < r.Rows[best].Billed) {
			best = k
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "\nnightshift bills %.3f× the lower bound", ratio(ns.Billed, bound.Billed))
	switch {
	case best < 0:
		b.WriteString("; every policy interrupted someone")
	case best == 0:
		b.WriteString(" and is the cheapest policy that interrupted no one")
	default:
		fmt.Fprintf(&b, "; the cheapest policy that interrupted no one is %s, at %.3f×", strings.SplitN(r.Rows[best].Name, " (", 2)[0], ratio(r.Rows[best].Billed, bound.Billed))
	}
	var cheaper []string
	for _, row := range r.Rows[1 : len(r.Rows)-1] {
		if row.Billed < ns.Billed && row.Interruptions > 0 {
			cheaper = append(cheaper, fmt.Sprintf("%s (%s)", strings.SplitN(row.Name, " (", 2)[0], plural(row.Interruptions, "interruption")))
		}
	}
	if len(cheaper) > 0 {
		b.WriteString("; billed less, by stopping people's work: " + strings.Join(cheaper, ", "))
	}
	b.WriteString(".\n")
	return b.String()
}

func ratio(a, b time.Duration) float64 {
	if b <= 0 {
		return 0
	}
	return float64(a) / float64(b)
}
