package waste

import (
	"cmp"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"strings"
	"time"
)

// The month generator's shape, each with its reason.
const (
	// monthDays: four weeks and two days, so the month ends on workdays.
	monthDays = 30
	// monthZone: a team's local time; looks and the nightly stop follow it.
	monthZone = "Europe/Paris"
	// failRate: about one job in sixteen exits non-zero (a bad config, an
	// out-of-memory), a few minutes in.
	failRate = 1.0 / 16
)

// monthStart is day 0 of the generated month: a Monday.
var monthStart = time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC)

// Generators lists the trace generators Generate knows.
var Generators = []string{"month"}

// Generate writes a trace made by the named generator from seed. The same
// name and seed always give the same trace.
func Generate(w io.Writer, name string, seed uint64) error {
	if name != "month" {
		return fmt.Errorf("generator %q: want one of %s", name, strings.Join(Generators, ", "))
	}
	g := &gen{r: rand.New(rand.NewPCG(seed, 0x6e69676874736869))}
	g.month()
	slices.SortStableFunc(g.lines, func(a, b genLine) int { return cmp.Compare(a.at, b.at) })
	var b strings.Builder
	fmt.Fprintf(&b, "# A small team's month, generated: go run ./cmd/nightshift-waste -gen month -seed %d\n", seed)
	b.WriteString("# Workdays: bursts of jobs between 09:30 and 17:30; some jobs exit non-zero after a few minutes.\n")
	b.WriteString("# Every night at 02:00: the nightly evaluation (cron). Thursdays around 15:00: a long training run.\n")
	b.WriteString("# Notebooks: alice most mornings, bob some afternoons; now and then someone reads results for a while\n")
	b.WriteString("# (read:), or leaves a cell training with the laptop closed (busy:) and comes back to it; alice\n")
	b.WriteString("# leaves her tab open over the first weekend.\n")
	b.WriteString("# at,kind,name,duration[,priority[,exit]]; at,notebook,name,phases[,end] — see docs/waste.md\n")
	fmt.Fprintf(&b, "start,%s,%s\n", monthStart.Format("2006-01-02"), monthZone)
	for _, l := range g.lines {
		fmt.Fprintf(&b, "d%d %02d:%02d,%s,%s,", l.at/day, l.at%day/time.Hour, l.at%time.Hour/time.Minute, l.kind, l.name)
		if l.kind == Notebook {
			b.WriteString(phaseText(l.phases))
		} else {
			b.WriteString(durText(l.dur))
		}
		switch {
		case l.end != "" && l.end != Leave:
			fmt.Fprintf(&b, ",%s", l.end)
		case l.exit != 0:
			fmt.Fprintf(&b, ",%d,%d", l.prio, l.exit)
		case l.prio != 0:
			fmt.Fprintf(&b, ",%d", l.prio)
		}
		if l.note != "" {
			b.WriteString("  # " + l.note)
		}
		b.WriteString("\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

const day = 24 * time.Hour

type genLine struct {
	at         time.Duration // since day 0, 00:00 local
	kind       Kind
	name       string
	dur        time.Duration
	prio, exit int
	note       string
	// phases and end are a notebook session's.
	phases []Phase
	end    End
}

type gen struct {
	r     *rand.Rand
	lines []genLine
	seq   int
}

var models = []string{"resnet50", "vit-b16", "bert-base", "unet", "whisper-s", "llama-lora"}

// minutes returns a whole number of minutes in [lo, hi].
func (g *gen) minutes(lo, hi int) time.Duration {
	return time.Duration(lo+g.r.IntN(hi-lo+1)) * time.Minute
}

func (g *gen) add(l genLine) { g.lines = append(g.lines, l) }

func (g *gen) month() {
	for d := range monthDays {
		base := time.Duration(d) * day
		wd := monthStart.AddDate(0, 0, d).Weekday()
		workday := wd != time.Saturday && wd != time.Sunday
		// The nightly evaluation, every night; now and then its input is missing.
		cron := genLine{at: base + 2*time.Hour, kind: Cron, name: "nightly-eval", dur: g.minutes(35, 55)}
		if g.r.Float64() < failRate {
			cron.dur, cron.exit, cron.note = g.minutes(2, 6), 1, "input snapshot missing"
		}
		g.add(cron)
		if !workday {
			continue
		}
		bursts := make([]time.Duration, 1+g.r.IntN(3))
		for k := range bursts {
			bursts[k] = base + g.minutes(9*60+30, 17*60+30)
		}
		slices.Sort(bursts)
		for _, at := range bursts {
			g.burst(at)
		}
		if wd == time.Thursday {
			g.seq++
			g.add(genLine{at: base + g.minutes(14*60+30, 15*60+30), kind: Job, name: fmt.Sprintf("train-big-%03d", g.seq),
				dur: g.minutes(6*60, 9*60), prio: 5, note: "the weekly long run"})
		}
		g.notebooks(d, base, wd)
	}
}

// burst is someone submitting a few jobs within minutes: a sweep, or a
// model and its ablations.
func (g *gen) burst(at time.Duration) {
	model := models[g.r.IntN(len(models))]
	for range 1 + g.r.IntN(5) {
		g.seq++
		l := genLine{at: at, kind: Job, name: fmt.Sprintf("%s-%03d", model, g.seq)}
		switch x := g.r.Float64(); {
		case x < 0.6:
			l.dur = g.minutes(10, 40)
		case x < 0.9:
			l.dur = g.minutes(40, 120)
		default:
			l.dur = g.minutes(120, 240)
		}
		if g.r.Float64() < 0.1 {
			l.prio = 5
		}
		if g.r.Float64() < failRate {
			l.dur, l.exit = g.minutes(2, 12), 1
		}
		g.add(l)
		at += g.minutes(0, 4)
	}
}

// notebooks adds the day's notebook sessions: alice most mornings, bob
// some afternoons; on the first Friday alice stays until 18:30, after the
// last look of the day, and walks away leaving her tab open over the
// weekend.
func (g *gen) notebooks(d int, base time.Duration, wd time.Weekday) {
	if d == 4 {
		g.add(genLine{at: base + 16*time.Hour + 10*time.Minute, kind: Notebook, name: "alice-nb",
			phases: []Phase{{Work, 2*time.Hour + 20*time.Minute}}, end: Open,
			note: "walks away at 18:30 and leaves the tab open over the weekend"})
	} else if g.r.Float64() < 0.6 {
		g.add(genLine{at: base + g.minutes(9*60, 10*60+30), kind: Notebook, name: "alice-nb", phases: g.session(45, 150)})
	}
	if (wd == time.Tuesday || wd == time.Thursday) && g.r.Float64() < 0.8 {
		g.add(genLine{at: base + g.minutes(14*60, 16*60), kind: Notebook, name: "bob-nb", phases: g.session(30, 120)})
	}
}

// session draws a session's phases, lo to hi minutes of work: most are
// work alone; about one in four has 15-45 min of reading results in the
// middle; about one in seven leaves a training cell running 1-3 h with the
// laptop closed, and the person comes back to work on its results.
func (g *gen) session(lo, hi int) []Phase {
	w := g.minutes(lo, hi)
	switch x := g.r.Float64(); {
	case x < 0.25:
		first := (w / 2).Truncate(time.Minute)
		return []Phase{{Work, first}, {Read, g.minutes(15, 45)}, {Work, w - first}}
	case x < 0.4:
		return []Phase{{Work, g.minutes(20, 60)}, {Busy, g.minutes(60, 180)}, {Work, g.minutes(15, 45)}}
	}
	return []Phase{{Work, w}}
}

// phaseText renders phases as the generated trace writes them: 1h10m read:25m 50m.
func phaseText(ps []Phase) string {
	var out []string
	for _, p := range ps {
		if p.Activity == Work {
			out = append(out, durText(p.Duration))
		} else {
			out = append(out, string(p.Activity)+":"+durText(p.Duration))
		}
	}
	return strings.Join(out, " ")
}

// durText renders a duration as the trace writes it: 45m, 2h05m.
func durText(d time.Duration) string {
	if d < time.Hour {
		return fmt.Sprintf("%dm", d/time.Minute)
	}
	return fmt.Sprintf("%dh%02dm", d/time.Hour, d%time.Hour/time.Minute)
}
