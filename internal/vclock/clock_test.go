package vclock

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestOrder(t *testing.T) {
	c := New()
	var got []string
	at := func(d time.Duration, name string) { c.At(Epoch.Add(d), func() { got = append(got, name) }) }
	at(2*time.Minute, "b")
	at(time.Minute, "a1")
	at(time.Minute, "a2") // same instant: scheduling order
	c.At(Epoch.Add(time.Minute), func() {
		got = append(got, "a3")
		at(90*time.Second, "scheduled by a3") // due before b: runs before it
	})
	c.AdvanceTo(Epoch.Add(2 * time.Minute))
	want := []string{"a1", "a2", "a3", "scheduled by a3", "b"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("actions ran (-want +got):\n%s", diff)
	}
	if now := c.Now(); !now.Equal(Epoch.Add(2 * time.Minute)) {
		t.Errorf("Now() = %v; want %v", now, Epoch.Add(2*time.Minute))
	}
}

func TestAdvanceStopsAtT(t *testing.T) {
	c := New()
	ran := false
	c.At(Epoch.Add(time.Hour), func() { ran = true })
	c.Advance(59 * time.Minute)
	if ran || c.Pending() != 1 {
		t.Errorf("after 59m: ran = %v, pending = %d; want false, 1", ran, c.Pending())
	}
	if next, ok := c.Next(); !ok || !next.Equal(Epoch.Add(time.Hour)) {
		t.Errorf("Next() = %v, %v; want %v, true", next, ok, Epoch.Add(time.Hour))
	}
	c.Advance(time.Minute)
	if !ran {
		t.Errorf("after 1h: the action due at 1h has not run")
	}
}

func TestDrain(t *testing.T) {
	c := New()
	var at []time.Duration
	var tick func()
	tick = func() {
		at = append(at, c.Now().Sub(Epoch))
		if len(at) < 3 {
			c.At(c.Now().Add(time.Hour), tick)
		}
	}
	c.At(Epoch.Add(time.Hour), tick)
	c.Drain()
	want := []time.Duration{time.Hour, 2 * time.Hour, 3 * time.Hour}
	if diff := cmp.Diff(want, at); diff != "" {
		t.Errorf("Drain ran at (-want +got):\n%s", diff)
	}
	if c.Pending() != 0 {
		t.Errorf("Pending() = %d after Drain; want 0", c.Pending())
	}
}
