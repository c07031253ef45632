package awssim

import (
	"testing"
	"time"

	"github.com/nightshift-dev/nightshift/internal/vclock"
)

// TestMetadataShowsSpotSignals: an interruption shows its notice in the
// instance's metadata from the warning until the instance is gone; a
// rebalance recommendation shows from its event on, and goes to
// EventBridge too; S3 keeps what a process puts.
func TestMetadataShowsSpotSignals(t *testing.T) {
	clock := vclock.New()
	c := New(clock)
	id := c.Launch("g5.xlarge", map[string]string{"nightshift:managed": "true"}, false)
	clock.AdvanceTo(clock.Now().Add(time.Minute)) // running
	h := &Host{c: c, i: c.byID[id]}
	if _, ok := h.SpotNotice(); ok {
		t.Fatal("a notice before any interruption")
	}
	if _, ok := h.Rebalance(); ok {
		t.Fatal("a recommendation before any")
	}
	c.Events()

	c.Rebalance(id)
	at, ok := h.Rebalance()
	if ev := c.Events(); !ok || !at.Equal(clock.Now()) || len(ev) != 1 || ev[0].DetailType != "EC2 Instance Rebalance Recommendation" || ev[0].Detail["instance-id"] != id {
		t.Errorf("after Rebalance: metadata %v %v, events %+v; want it shown now and one event", at, ok, ev)
	}
	c.Rebalance("i-nope") // no such instance: nothing
	if ev := c.Events(); len(ev) != 0 {
		t.Errorf("Rebalance of no instance emitted %+v", ev)
	}

	warned := clock.Now()
	c.Interrupt(id)
	n, ok := h.SpotNotice()
	if !ok || n.Action != "terminate" || !n.At.Equal(warned.Add(spotNotice)) {
		t.Errorf("notice %+v, %v; want terminate at the warning plus two minutes", n, ok)
	}
	clock.AdvanceTo(warned.Add(spotNotice + time.Second))
	if _, ok := h.SpotNotice(); ok || c.byID[id].State == "running" {
		t.Errorf("after the interruption: notice shown %v, instance %s; want gone", ok, c.byID[id].State)
	}

	h.PutObject("s3://ckpt/run/a", "1")
	h.PutObject("s3://other/b", "2")
	if b, ok := h.GetObject("s3://ckpt/run/a"); !ok || b != "1" {
		t.Errorf("GetObject = %q, %v; want 1", b, ok)
	}
	if got := c.Objects("s3://ckpt/"); len(got) != 1 || got["s3://ckpt/run/a"] != "1" {
		t.Errorf("Objects(s3://ckpt/) = %v", got)
	}
}
