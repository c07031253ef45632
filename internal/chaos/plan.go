package chaos

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/nightshift-dev/nightshift/internal/awssim"
	"github.com/nightshift-dev/nightshift/internal/catalog"
)

// action is one planned happening, at an offset into the history.
type action struct {
	at   time.Duration
	name string
	do   func(h *history)
}

// plan draws the history's happenings from the seed.
func (h *history) plan() []action {
	var plan []action
	add := func(at time.Duration, name string, do func(*history)) {
		plan = append(plan, action{at: at, name: name, do: do})
	}
	r := h.rng
	at := func() time.Duration { return time.Duration(r.Int64N(int64(Length))) }
	// max_wait for one job in five, from a source of its own (the other
	// draws stay as they were).
	mw := rand.New(rand.NewPCG(h.seed^0x082efa98ec4e6c89, h.seed))
	// A checkpoint for one spot job in two, and rebalance recommendations,
	// from a source of their own too.
	ck := rand.New(rand.NewPCG(h.seed^0x5b0c4e1d2a3f6789, h.seed))

	// Job submissions: bursts of a few jobs, single jobs, with priorities,
	// retries, spot, and sometimes a duplicate send.
	njobs := 5 + r.IntN(25)
	var submits []submitted
	for k := range njobs {
		t := at()
		burst := 1
		if r.IntN(4) == 0 {
			burst = 2 + r.IntN(5)
		}
		for b := range burst {
			id := fmt.Sprintf("job-%d-%d", k, b)
			runtime := time.Duration(30+r.IntN(240)) * time.Minute
			msg := fmt.Sprintf(`{"id": %q, "command": "python train.py", "max_runtime": %q, "priority": %d, "retries": %d`,
				id, runtime.String(), r.IntN(3)*10, r.IntN(4))
			if r.IntN(4) == 0 {
				msg += `, "instance": {"market": "spot-then-on-demand", "types": ["g5.xlarge", "g4dn.xlarge"]}`
				if ck.IntN(2) == 0 {
					msg += fmt.Sprintf(`, "checkpoint": {"s3": "s3://chaos-ckpt/%s", "every": "%dm"}`, id, 1+ck.IntN(20))
				}
			}
			if r.IntN(5) == 0 {
				msg += `, "on_stall": "cancel"`
			}
			if mw.IntN(5) == 0 {
				msg += fmt.Sprintf(`, "max_wait": "%dm"`, 20+mw.IntN(70))
			}
			msg += "}"
			h.jobs[id] = runtime
			submits = append(submits, submitted{id: id, at: t})
			add(t, "submit "+id, func(h *history) { h.send(msg) })
			if r.IntN(5) == 0 {
				add(t+time.Duration(r.IntN(600))*time.Second, "resend "+id, func(h *history) { h.send(msg) })
			}
		}
	}
	// A cron job delivered at least once by EventBridge Scheduler.
	for k := range r.IntN(3) {
		msg := fmt.Sprintf(`{"id": "nightly", "scheduled_at": "2026-11-2%dT02:00:00Z", "command": "python nightly.py", "max_runtime": "1h"}`, 5+k)
		h.jobs[fmt.Sprintf("nightly-2026-11-2%dT020000Z", 5+k)] = time.Hour
		t := at()
		add(t, "cron", func(h *history) { h.send(msg) })
		add(t+time.Duration(r.IntN(120))*time.Second, "cron again", func(h *history) { h.send(msg) })
	}
	// Bad messages: acknowledged, recorded, never run.
	bad := []string{`{"command": "python train.py"`, `{"comand": "python train.py"}`, `{"id": "bad id!", "command": "x"}`, `{"command": "x", "max_runtime": "forever"}`}
	for range r.IntN(4) {
		msg := bad[r.IntN(len(bad))]
		add(at(), "bad message", func(h *history) { h.send(msg) })
	}
	// SQS redelivers messages it already delivered.
	for range r.IntN(6) {
		add(at(), "sqs redelivery", func(h *history) { h.redeliver() })
	}
	// Capacity runs out, or the quota is too low, for a while.
	for range r.IntN(3) {
		d := time.Duration(10+r.IntN(60)) * time.Minute
		add(at(), "no capacity", func(h *history) {
			h.w.Cloud.Capacity = map[string]int{"g4dn.xlarge": 0, "g5.xlarge": 0}
			h.capacityUntil = h.w.Clock.Now().Add(d)
		})
	}
	// One type's capacity comes and goes within seconds to minutes, as it
	// does per type and zone: a launch falls back to the next type, and the
	// first type is back by the time a slower invocation tries it.
	for range r.IntN(6) {
		typ := []string{"g4dn.xlarge", "g5.xlarge"}[r.IntN(2)]
		d := time.Duration(5+r.IntN(300)) * time.Second
		add(at(), "capacity flaps for "+typ, func(h *history) {
			if !h.capacityUntil.IsZero() {
				return // a whole outage is on: nothing to flap
			}
			h.w.Cloud.Capacity[typ] = 0
			h.flaps[typ] = h.w.Clock.Now().Add(d)
		})
	}
	for range r.IntN(2) {
		d := time.Duration(10+r.IntN(60)) * time.Minute
		add(at(), "low quota", func(h *history) {
			if h.fresh {
				return // a fresh account's quota is 0 until AWS raises it
			}
			h.w.Cloud.Quota = map[string]int{catalog.QuotaG.Code: 4, catalog.QuotaGSpot.Code: 0}
			h.quotaUntil = h.w.Clock.Now().Add(d)
		})
	}
	// Spot interruptions and people stopping or terminating instances.
	for range r.IntN(4) {
		add(at(), "spot interruption", func(h *history) { h.interrupt() })
	}
	for range ck.IntN(3) {
		pick := ck.IntN(1 << 20)
		add(time.Duration(ck.Int64N(int64(Length))), "rebalance recommendation", func(h *history) { h.rebalance(pick) })
	}
	for range r.IntN(4) {
		action := []string{"stop", "terminate"}[r.IntN(2)]
		add(at(), "a person "+action+"s an instance", func(h *history) { h.byHand(action) })
	}
	// Watched notebooks: busy for a while, then forgotten.
	for k := range r.IntN(3) {
		busyFor := time.Duration(r.IntN(120)) * time.Minute
		add(at(), fmt.Sprintf("notebook %d", k), func(h *history) { h.notebook(busyFor) })
	}
	// A stranger's instance, which nothing may touch.
	add(at(), "stranger", func(h *history) { h.w.Launch("g5.xlarge", map[string]string{"Name": "not ours"}) })
	// The control plane goes away for a while (L4).
	if r.IntN(3) == 0 {
		d := time.Duration(60+r.IntN(180)) * time.Minute
		add(at(), "control plane down", func(h *history) {
			h.w.Down = true
			h.downUntil = h.w.Clock.Now().Add(d)
		})
	}
	plan = append(plan, h.planCancels(submits)...)
	plan = append(plan, h.planNotebooks()...)
	plan = append(plan, h.planZones()...)
	slices.SortStableFunc(plan, func(a, b action) int { return int(a.at - b.at) })
	return plan
}

// submitted is a job the plan sends, and when.
type submitted struct {
	id string
	at time.Duration
}

// planCancels draws the cancel messages of half the histories, from a
// source of their own (the other half replay as they did before cancels
// were drawn): some jobs cancelled within seconds of their submission
// (racing placement and launch), minutes after (racing boot and dispatch),
// or hours after (running, or racing completion); some cancelled twice;
// a cancel for an id no job has.
func (h *history) planCancels(submits []submitted) []action {
	r := rand.New(rand.NewPCG(h.seed^0x13198a2e03707344, h.seed))
	if r.IntN(2) == 0 {
		return nil
	}
	var plan []action
	for _, s := range submits {
		if r.IntN(4) != 0 {
			continue
		}
		var after time.Duration
		switch r.IntN(3) {
		case 0:
			after = time.Duration(r.IntN(10_000)) * time.Millisecond
		case 1:
			after = time.Duration(1+r.IntN(10)) * time.Minute
		default:
			after = time.Duration(r.Int64N(int64(4 * time.Hour)))
		}
		msg := fmt.Sprintf(`{"cancel": %q, "reason": "chaos"}`, s.id)
		id := s.id
		plan = append(plan, action{at: s.at + after, name: "cancel " + id, do: func(h *history) {
			h.check.cancels[id] = true
			h.send(msg)
		}})
		if r.IntN(4) == 0 {
			again := time.Duration(r.IntN(600)) * time.Second
			plan = append(plan, action{at: s.at + after + again, name: "cancel again " + id, do: func(h *history) { h.send(msg) }})
		}
	}
	if r.IntN(3) == 0 {
		plan = append(plan, action{at: time.Duration(r.Int64N(int64(Length))), name: "cancel an unknown id", do: func(h *history) {
			h.send(`{"cancel": "no-such-job"}`)
		}})
	}
	return plan
}

func (h *history) send(msg string) {
	h.stats.Messages++
	h.w.Send(msg)
}

// redeliver hands intake a message again, as SQS's at-least-once delivery does.
func (h *history) redeliver() {
	sent := h.w.Sent()
	if len(sent) == 0 {
		return
	}
	h.stats.Duplicated++
	h.w.Redeliver(sent[h.rng.IntN(len(sent))])
}

// managed returns the live instances nightshift launched.
func (h *history) managed(spotOnly bool) []awssim.Instance {
	var out []awssim.Instance
	for _, i := range h.w.Cloud.Instances() {
		if i.Token != "" && (i.State == "running" || i.State == "pending") && (!spotOnly || i.Spot) {
			out = append(out, i)
		}
	}
	return out
}

func (h *history) interrupt() {
	if is := h.managed(true); len(is) > 0 {
		h.w.Cloud.Interrupt(is[h.rng.IntN(len(is))].ID)
	}
}

// rebalance sends a rebalance recommendation for one of the live spot
// instances, by pick.
func (h *history) rebalance(pick int) {
	if is := h.managed(true); len(is) > 0 {
		h.w.Cloud.Rebalance(is[pick%len(is)].ID)
	}
}

func (h *history) byHand(action string) {
	if is := h.managed(false); len(is) > 0 {
		_ = h.w.Cloud.ByHand(is[h.rng.IntN(len(is))].ID, action) // a live instance: it can be stopped
	}
}

// notebook starts a watched instance whose user works for busyFor, then
// walks away leaving it running.
func (h *history) notebook(busyFor time.Duration) {
	id := h.w.Launch("g5.xlarge", map[string]string{"nightshift:watch": "true", "Name": "notebook"})
	until := h.w.Clock.Now().Add(busyFor)
	h.check.notebooks[id] = until
	prev := h.w.Cloud.Usage
	h.w.Cloud.Usage = func(iid string, t time.Time) (awssim.Usage, bool) {
		if iid == id {
			if t.Before(until) {
				return awssim.Usage{GPU: 70, CPU: 30, NetBytesPerSec: 1e5}, true
			}
			return awssim.Usage{GPU: 0, CPU: 1, NetBytesPerSec: 100}, true
		}
		if prev != nil {
			return prev(iid, t)
		}
		return awssim.Usage{}, false
	}
}
