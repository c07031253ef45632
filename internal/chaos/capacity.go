package chaos

import (
	"math/rand/v2"
	"time"

	"github.com/nightshift-dev/nightshift/internal/awssim"
	"github.com/nightshift-dev/nightshift/internal/fleet"
	"github.com/nightshift-dev/nightshift/internal/job"
	"github.com/nightshift-dev/nightshift/internal/sim"
)

// zoneSeed keys the source of the capacity-per-zone draws: histories that
// draw none replay as they did before these faults existed.
const zoneSeed = 0x452821e638d01377

// chaosSubnets are the two zones of the histories with zone faults.
var chaosSubnets = []sim.Subnet{{ID: "subnet-a", Zone: "us-east-1a"}, {ID: "subnet-b", Zone: "us-east-1b"}}

// drawZones decides, from the history's zone source, whether it has two
// subnets and capacity faults per zone and market; the rest keep the one
// default zone (and the draws they had).
func (h *history) drawZones() []sim.Subnet {
	h.zr = rand.New(rand.NewPCG(h.seed^zoneSeed, h.seed))
	h.zoneOut = map[awssim.Offering]time.Time{}
	if h.zr.IntN(2) != 0 {
		return nil
	}
	h.zones = true
	return chaosSubnets
}

// planZones draws the zone faults: an offering (type, zone, market) with
// no capacity for a while, and a stopped instance's own offering gone, so
// that StartInstances refuses it. At most one zone of a type and market is
// out at once: a job can always be placed somewhere (L3 stays sound).
func (h *history) planZones() []action {
	if !h.zones {
		return nil
	}
	r := h.zr
	var plan []action
	at := func() time.Duration { return time.Duration(r.Int64N(int64(Length))) }
	types := []string{"g4dn.xlarge", "g5.xlarge"}
	for range r.IntN(6) {
		o := awssim.Offering{Type: types[r.IntN(2)], Zone: chaosSubnets[r.IntN(2)].Zone, Spot: r.IntN(2) == 0}
		d := time.Duration(1+r.IntN(20)) * time.Minute
		plan = append(plan, action{at: at(), name: "no capacity for " + o.String(), do: func(h *history) { h.zoneOutFor(o, d) }})
	}
	for range r.IntN(4) {
		d := time.Duration(5+r.IntN(35)) * time.Minute
		k := r.IntN(8)
		plan = append(plan, action{at: at(), name: "a stopped instance cannot start", do: func(h *history) {
			var stopped []awssim.Instance
			for _, i := range h.w.Cloud.Instances() {
				if i.Token != "" && i.State == "stopped" {
					stopped = append(stopped, i)
				}
			}
			if len(stopped) == 0 {
				return
			}
			i := stopped[k%len(stopped)]
			h.zoneOutFor(awssim.Offering{Type: i.Type, Zone: i.Zone, Spot: i.Spot}, d)
		}})
	}
	return plan
}

// zoneOutFor takes o's capacity away for d, unless the type's other zone
// on the same market is out already.
func (h *history) zoneOutFor(o awssim.Offering, d time.Duration) {
	for _, sn := range chaosSubnets {
		other := awssim.Offering{Type: o.Type, Zone: sn.Zone, Spot: o.Spot}
		if _, out := h.zoneOut[other]; out && other != o {
			return
		}
	}
	h.w.Cloud.ZoneCapacity[o] = 0
	h.zoneOut[o] = h.w.Clock.Now().Add(d)
	h.stats.ZoneFaults++
}

// zonesBack gives back the capacity of the offerings whose outage is over.
func (h *history) zonesBack() {
	for o, until := range h.zoneOut {
		if !h.w.Clock.Now().Before(until) {
			delete(h.w.Cloud.ZoneCapacity, o)
			delete(h.zoneOut, o)
		}
	}
}

// u1: the fleet's memory of offerings refused for capacity never blocks
// one longer than UnavailableTTL: every rung it skips was refused for
// capacity, by the cloud's own log, less than UnavailableTTL before.
func (c *checker) u1() {
	h := c.h
	for ; c.skipsSeen < len(h.skips); c.skipsSeen++ {
		s := h.skips[c.skipsSeen]
		var last time.Time
		for _, l := range h.w.Cloud.Launches {
			if l.Type == s.Type && l.Subnet == s.Subnet && l.Spot == s.Spot && l.Code == "InsufficientInstanceCapacity" && !l.At.After(s.At) {
				last = l.At
			}
		}
		switch {
		case last.IsZero():
			c.fail("U1", "the fleet skipped %s (spot %v) in %q at %s, never refused for capacity", s.Type, s.Spot, s.Subnet, s.At.Format(time.RFC3339))
		case s.At.Sub(last) >= fleet.UnavailableTTL:
			c.fail("U1", "the fleet skipped %s (spot %v) in %q at %s, last refused for capacity %v before: past UnavailableTTL %v", s.Type, s.Spot, s.Subnet, s.At.Format(time.RFC3339), s.At.Sub(last), fleet.UnavailableTTL)
		}
	}
}

// l6StartTicks is how many clean reconciles a job may stay placed on a
// stopped instance whose zone has no capacity for it, with room in the
// pool to launch elsewhere: the bound (three minutes: three or four
// passes) and two more.
const l6StartTicks = 6

// l6: a job placed on a stopped instance that cannot start (its type, zone
// and market have no capacity) leaves it within the bound, when the pool
// has room to launch it elsewhere; a notebook keeps its own instance.
func (c *checker) l6(v *view) {
	h := c.h
	stuck := map[string]bool{}
	if v.up && h.capacityUntil.IsZero() && h.quotaKnown(v.now) && v.pool < Cap && !v.budgetReached {
		byID := map[string]awssim.Instance{}
		for _, i := range v.insts {
			byID[i.ID] = i
		}
		for _, j := range v.live[job.Placed] {
			i, ok := byID[j.InstanceID]
			if _, nb := job.NotebookOf(j.Pool); nb || !ok || i.State != "stopped" {
				continue
			}
			if left, out := h.w.Cloud.ZoneCapacity[awssim.Offering{Type: i.Type, Zone: i.Zone, Spot: i.Spot}]; !out || left > 0 {
				continue
			}
			key := j.ID + "/" + i.ID
			stuck[key] = true
			since, ok := c.startStuck[key]
			if !ok {
				c.startStuck[key] = h.cleanTicks
				continue
			}
			if h.cleanTicks-since > l6StartTicks {
				c.fail("L6", "job %s still placed on %s, stopped with no %s capacity in %s, after %d clean reconciles with room in the pool (%d of %d): %s", j.ID, i.ID, i.Type, i.Zone, h.cleanTicks-since, v.pool, Cap, j.Reason)
			}
		}
	}
	for k := range c.startStuck {
		if !stuck[k] {
			delete(c.startStuck, k)
		}
	}
}
