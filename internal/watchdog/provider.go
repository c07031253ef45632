package watchdog

import (
	"context"
	"time"
)

// Provider is everything a sweep reads from the cloud and does to it, in
// the watchdog's own types. AWS implements it over the SDK clients; the
// sweep's tests use a fake.
type Provider interface {
	// Instances returns the instances tagged nightshift:managed or
	// nightshift:watch that are pending, running, stopping or stopped (the
	// rules look at the running ones; the tick's figures count them all).
	Instances(ctx context.Context) ([]Instance, error)
	// Sessions returns the ids of the instances with an open Session Manager session.
	Sessions(ctx context.Context) (map[string]bool, error)
	// Series reads each request's datapoints over [from, to], each series
	// oldest first; a request with no data has no entry.
	Series(ctx context.Context, reqs []Request, from, to time.Time) (map[Request]Series, error)
	// SpotPrices returns the newest spot price (USD/hour) of each of the
	// instance types, in each zone that has one.
	SpotPrices(ctx context.Context, instanceTypes []string) (map[SpotKey]float64, error)
	// Stop stops a watched instance; it refuses one nightshift does not own.
	Stop(ctx context.Context, i Instance) error
}

// Instance is the watchdog's view of one instance.
type Instance struct {
	ID   string
	Type string
	// State is the EC2 state: pending, running, stopping or stopped.
	State string
	Zone  string
	Spot  bool
	// Managed is the nightshift:managed=true tag: nightshift launched it.
	Managed bool
	// Watched is the nightshift:watch=true tag: a person launched it and
	// wants it stopped when idle.
	Watched    bool
	LaunchTime time.Time
	// Tags are all its tags; the watchdog reads nightshift:idle-timeout.
	Tags map[string]string
	// Detailed is EC2 detailed monitoring: its CPU and network come every
	// minute (see Resolution).
	Detailed bool
}

// Request is one metric of one instance, wanted over a window.
type Request struct {
	Instance string
	Metric   Metric
}

// SpotKey names one spot price: an instance type in one availability zone.
type SpotKey struct {
	Type, Zone string
}
