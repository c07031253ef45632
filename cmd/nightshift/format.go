package main

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/nightshift-dev/nightshift/internal/job"
)

// table writes aligned columns: the header, then each row.
type table struct {
	tw *tabwriter.Writer
}

func newTable(w io.Writer, header ...string) *table {
	t := &table{tw: tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)}
	t.row(header...)
	return t
}

func (t *table) row(cells ...string) { fmt.Fprintln(t.tw, strings.Join(cells, "\t")) }
func (t *table) flush() error        { return t.tw.Flush() }

// printJSON writes v as one indented JSON document.
func printJSON(w io.Writer, v any) error {
	e := json.NewEncoder(w)
	e.SetIndent("", "  ")
	return e.Encode(v)
}

// ANSI colours of the states, for a terminal that takes them.
const (
	ansiReset  = "\x1b[0m"
	ansiRed    = "\x1b[31m"
	ansiGreen  = "\x1b[32m"
	ansiYellow = "\x1b[33m"
	ansiCyan   = "\x1b[36m"
	ansiPlain  = "\x1b[39m" // the terminal's own colour
)

// stateText is a state coloured for a terminal. Every colour code here is
// five bytes and the reset four: a column of states, its header included
// (colored with ansiPlain), stays aligned under tabwriter, which counts
// the codes' bytes as width.
func (a *app) stateText(s job.State) string {
	c := ansiPlain
	switch s {
	case job.Succeeded:
		c = ansiGreen
	case job.Failed, job.TimedOut, job.Rejected:
		c = ansiRed
	case job.Cancelled:
		c = ansiYellow
	case job.Running:
		c = ansiCyan
	}
	return a.paint(c, string(s))
}

// paint colours text on a colour terminal.
func (a *app) paint(code, text string) string {
	if !a.color {
		return text
	}
	return code + text + ansiReset
}

// short formats a duration as people read one in a table: 45s, 12m, 3h5m,
// 2d4h. Zero or negative is "-".
func short(d time.Duration) string {
	switch {
	case d <= 0:
		return "-"
	case d < time.Minute:
		return strconv.Itoa(int(d.Seconds())) + "s"
	case d < time.Hour:
		return strconv.Itoa(int(d.Minutes())) + "m"
	case d < 48*time.Hour:
		h, m := int(d.Hours()), int(d.Minutes())%60
		if m == 0 {
			return strconv.Itoa(h) + "h"
		}
		return fmt.Sprintf("%dh%dm", h, m)
	}
	days, h := int(d.Hours())/24, int(d.Hours())%24
	if h == 0 {
		return strconv.Itoa(days) + "d"
	}
	return fmt.Sprintf("%dd%dh", days, h)
}

// usd formats an amount of dollars: cents for the sums people read, four
// places under a dime (a few minutes of a small GPU).
func usd(x float64) string {
	if x == 0 {
		return "-"
	}
	if x < 0.1 {
		return fmt.Sprintf("$%.4f", x)
	}
	return fmt.Sprintf("$%.2f", x)
}

// clip shortens s to at most n runes, with an ellipsis.
func clip(s string, n int) string {
	if n <= 0 || utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}

// stamp is a time in UTC as the tables and timelines show it.
func stamp(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format("2006-01-02 15:04:05")
}

// runTime is how long a job has run: from its start to its end, or now.
func runTime(j *job.Job, now time.Time) time.Duration {
	if j.StartedAt.IsZero() {
		return 0
	}
	end := j.EndedAt
	if end.IsZero() {
		end = now
	}
	return end.Sub(j.StartedAt)
}

// parseSince reads --since: a duration back from now (90m, 36h, 7d, 2w),
// or a date or time (2026-11-01, 2026-11-01T09:00:00Z).
func parseSince(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	for _, layout := range []string{time.RFC3339, "2006-01-02T15:04", "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), nil
		}
	}
	unit := map[byte]time.Duration{'d': 24 * time.Hour, 'w': 7 * 24 * time.Hour}
	if u, ok := unit[s[len(s)-1]]; ok {
		if n, err := strconv.Atoi(s[:len(s)-1]); err == nil && n > 0 {
			return now.Add(-time.Duration(n) * u), nil
		}
	} else if d, err := time.ParseDuration(s); err == nil && d > 0 {
		return now.Add(-d), nil
	}
	return time.Time{}, fmt.Errorf("--since %q: want a duration back from now (90m, 36h, 7d, 2w) or a date (2026-11-01)", s)
}

func containsString(ss []string, s string) bool { return slices.Contains(ss, s) }

func sortedStrings(ss []string) []string { return slices.Sorted(slices.Values(ss)) }

// shellJoin writes args as a shell command line: one with a space or a
// quote in single quotes.
func shellJoin(args []string) string {
	out := make([]string, len(args))
	for i, a := range args {
		out[i] = a
		if a == "" || strings.ContainsAny(a, " '\"$*?;|&<>()") {
			out[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
	}
	return strings.Join(out, " ")
}
