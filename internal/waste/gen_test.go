package waste

import (
	"bytes"
	"os"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// TestGenerateGolden: the shipped month is what the generator makes from
// seed 1 (regenerate with: make -f waste.mk waste-traces).
func TestGenerateGolden(t *testing.T) {
	var b bytes.Buffer
	if err := Generate(&b, "month", 1); err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile("../../traces/small-team-month.trace")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(string(want), b.String()); diff != "" {
		t.Errorf("traces/small-team-month.trace differs from Generate(month, 1) (-shipped +generated):\n%s", diff)
	}
}

func TestGenerateMonth(t *testing.T) {
	gen := func(seed uint64) string {
		var b bytes.Buffer
		if err := Generate(&b, "month", seed); err != nil {
			t.Fatal(err)
		}
		return b.String()
	}
	if gen(7) != gen(7) {
		t.Errorf("Generate(month, 7) differs between two calls")
	}
	if gen(7) == gen(8) {
		t.Errorf("Generate(month, 7) = Generate(month, 8)")
	}
	var b bytes.Buffer
	if err := Generate(&b, "year", 1); err == nil {
		t.Errorf("Generate(year) = nil error; want unknown generator")
	}
	tr, err := Parse(bytes.NewBufferString(gen(1)))
	if err != nil {
		t.Fatalf("Parse(Generate(month, 1)): %v", err)
	}
	var cron, long, failing, reads, busies int
	weekend := false
	for k, ev := range tr.Events {
		local := ev.At.In(tr.Loc)
		switch {
		case ev.Kind == Cron:
			cron++
		case ev.Kind == Job && ev.Duration >= 6*time.Hour:
			long++
		}
		if ev.Exit != 0 {
			failing++
		}
		if ev.Kind == Notebook {
			for _, ph := range ev.Session.Phases {
				switch ph.Activity {
				case Read:
					reads++
				case Busy:
					busies++
				}
			}
		}
		// A tab left open over a weekend: a Friday session ending open
		// after the last look (18:00), and no session of it until Monday.
		if ev.Kind == Notebook && local.Weekday() == time.Friday && ev.Session.End == Open && ev.At.Add(ev.Duration).In(tr.Loc).Hour() >= 18 {
			weekend = true
			for _, next := range tr.Events[k+1:] {
				if next.Kind == Notebook && next.Name == ev.Name && next.At.Sub(ev.At) < 60*time.Hour {
					weekend = false
				}
			}
		}
	}
	if s := tr.Summary(); s.Days != monthDays || cron != monthDays || long < 4 || failing == 0 || !weekend || reads == 0 || busies == 0 {
		t.Errorf("month: %d days, %d cron jobs, %d long jobs, %d failing, weekend notebook %v, %d read and %d busy phases; want %d, %d, ≥4, >0, true, >0, >0",
			s.Days, cron, long, failing, weekend, reads, busies, monthDays, monthDays)
	}
}
