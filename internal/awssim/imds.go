package awssim

import "time"

// SpotNotice is a spot interruption notice as the instance metadata shows
// it (spot/instance-action): {"action": "terminate", "time": "…"}.
type SpotNotice struct {
	Action string
	At     time.Time
}

// metadata is what an instance's metadata service shows of its spot
// market: the interruption notice and the rebalance recommendation.
type metadata struct {
	notice    *SpotNotice
	rebalance time.Time
}

// meta returns the metadata of instance id, made on first use.
func (c *Cloud) meta(id string) *metadata {
	if c.imds == nil {
		c.imds = map[string]*metadata{}
	}
	m, ok := c.imds[id]
	if !ok {
		m = &metadata{}
		c.imds[id] = m
	}
	return m
}

// forget clears what the metadata of instance id shows: it is gone, or
// stopped (a spot instance of a persistent request shows nothing of its
// last interruption when it runs again).
func (c *Cloud) forget(id string) { delete(c.imds, id) }

// Rebalance sends a rebalance recommendation for instance id, as EC2 does
// for a spot instance at elevated risk of interruption: the instance's
// metadata shows it (events/recommendations/rebalance, {"noticeTime": …})
// from now on, and EventBridge gets "EC2 Instance Rebalance
// Recommendation". Nothing else happens to the instance.
func (c *Cloud) Rebalance(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.byID[id]; !ok {
		return
	}
	if m := c.meta(id); m.rebalance.IsZero() {
		m.rebalance = c.clock.Now()
	}
	c.emit(Event{
		Source: "aws.ec2", DetailType: "EC2 Instance Rebalance Recommendation",
		Resources: []string{"arn:aws:ec2:" + Region + ":" + Account + ":instance/" + id},
		Detail:    map[string]string{"instance-id": id},
	})
}

// SpotNotice returns the spot interruption notice the instance's metadata
// shows, if any: what a process reads at spot/instance-action (404 when
// there is none).
func (h *Host) SpotNotice() (SpotNotice, bool) {
	h.c.mu.Lock()
	defer h.c.mu.Unlock()
	if m, ok := h.c.imds[h.i.ID]; ok && m.notice != nil {
		return *m.notice, true
	}
	return SpotNotice{}, false
}

// Rebalance returns when the instance's rebalance recommendation came, if
// one has: what a process reads at events/recommendations/rebalance.
func (h *Host) Rebalance() (time.Time, bool) {
	h.c.mu.Lock()
	defer h.c.mu.Unlock()
	if m, ok := h.c.imds[h.i.ID]; ok && !m.rebalance.IsZero() {
		return m.rebalance, true
	}
	return time.Time{}, false
}
