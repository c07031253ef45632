package runner_test

import (
	"context"
	"encoding/base64"
	"regexp"
	"testing"
	"time"

	"github.com/nightshift-dev/nightshift/internal/runner"
)

var launcherScript = regexp.MustCompile(`echo ([A-Za-z0-9+/=]+) \| base64 -d`)

// TestSendKeepWarm: each command carries the keep-warm window of the
// instance it goes to. Sends that differ only in it arm different idle
// timers, in the header and in the wrapper alike; the dead-man timer does
// not move.
func TestSendKeepWarm(t *testing.T) {
	tests := []struct {
		give time.Duration // the instance's keep-warm window
		want int           // idle timer, minutes: keep-warm rounded up (at least 1), plus one period
	}{
		{give: 3 * time.Minute, want: 4},
		{give: 25 * time.Minute, want: 26},
		{give: 90 * time.Second, want: 3},
		{give: 0, want: 2},
	}
	c := newTestCloud()
	iid := c.ready()
	r := runner.New(c, runner.Config{Script: runner.ScriptOptions{Region: "us-east-1"}})
	j := ssmJob()
	for i, tt := range tests {
		if _, err := r.Send(context.Background(), j, iid, tt.give); err != nil {
			t.Fatalf("Send(%s, keep-warm %v) = %v", j.ID, tt.give, err)
		}
		commands := c.sent[i].Parameters["commands"][0]
		h, err := runner.ParseHeader(commands)
		if err != nil {
			t.Fatalf("ParseHeader(Send with keep-warm %v) = %v", tt.give, err)
		}
		if h.IdleSeconds != 60*tt.want || h.DeadmanSeconds != 130*60 {
			t.Errorf("Send(keep-warm %v) header idle %d s, dead-man %d s; want %d s, %d s", tt.give, h.IdleSeconds, h.DeadmanSeconds, 60*tt.want, 130*60)
		}
		m := launcherScript.FindStringSubmatch(commands)
		if m == nil {
			t.Fatalf("Send(keep-warm %v): no wrapper in %q", tt.give, commands)
		}
		script, err := base64.StdEncoding.DecodeString(m[1])
		if err != nil {
			t.Fatal(err)
		}
		if got := armed(t, armIdle, string(script)); len(got) != 1 || got[0] != tt.want {
			t.Errorf("Send(keep-warm %v) wrapper arms idle timer %v min; want [%d]", tt.give, got, tt.want)
		}
	}
}
