// Package catalog knows the GPU instance types nightshift runs: their size,
// their on-demand price, and the EC2 service quota that caps them.
package catalog

import (
	"maps"
	"slices"
	"strings"
)

// Type describes one instance type.
type Type struct {
	Name  string
	VCPUs int
	GPUs  int
	// Hourly is the on-demand price in USD per hour, us-east-1, Linux.
	Hourly float64
}

// Quota is an EC2 service quota that caps running instances, counted in vCPUs.
type Quota struct {
	Code string
	Name string
}

// The quotas GPU instances count against.
var (
	QuotaG     = Quota{Code: "L-DB2E81BA", Name: "Running On-Demand G and VT instances"}
	QuotaP     = Quota{Code: "L-417A185B", Name: "Running On-Demand P instances"}
	QuotaGSpot = Quota{Code: "L-3819A6DF", Name: "All G and VT Spot Instance Requests"}
	QuotaPSpot = Quota{Code: "L-7212CCBC", Name: "All P Spot Instance Requests"}
)

// Quotas are the GPU quotas, G before P, on-demand before spot.
var Quotas = []Quota{QuotaG, QuotaGSpot, QuotaP, QuotaPSpot}

// QuotaByCode returns the GPU quota of a code.
func QuotaByCode(code string) (Quota, bool) {
	for _, q := range Quotas {
		if q.Code == code {
			return q, true
		}
	}
	return Quota{}, false
}

// Spot reports whether the quota counts spot instances.
func (q Quota) Spot() bool { return q == QuotaGSpot || q == QuotaPSpot }

// Markets lists what a launch of a job's market tries, in order, as spot
// or not: spot alone, spot then on-demand (spot-then-on-demand), or
// on-demand (on-demand, or no market named).
func Markets(market string) []bool {
	switch market {
	case "spot":
		return []bool{true}
	case "spot-then-on-demand":
		return []bool{true, false}
	}
	return []bool{false}
}

// types is the built-in table: on-demand us-east-1 Linux prices (USD/hour),
// approximate, late 2026.
var types = index([]Type{
	{"g4dn.xlarge", 4, 1, 0.526}, {"g4dn.2xlarge", 8, 1, 0.752}, {"g4dn.4xlarge", 16, 1, 1.204},
	{"g4dn.8xlarge", 32, 1, 2.176}, {"g4dn.12xlarge", 48, 4, 3.912}, {"g4dn.16xlarge", 64, 1, 4.352},
	{"g4dn.metal", 96, 8, 7.824},
	{"g5.xlarge", 4, 1, 1.006}, {"g5.2xlarge", 8, 1, 1.212}, {"g5.4xlarge", 16, 1, 1.624},
	{"g5.8xlarge", 32, 1, 2.448}, {"g5.12xlarge", 48, 4, 5.672}, {"g5.16xlarge", 64, 1, 4.096},
	{"g5.24xlarge", 96, 4, 8.144}, {"g5.48xlarge", 192, 8, 16.288},
	{"g6.xlarge", 4, 1, 0.805}, {"g6.2xlarge", 8, 1, 0.978}, {"g6.4xlarge", 16, 1, 1.323},
	{"g6.8xlarge", 32, 1, 2.014}, {"g6.12xlarge", 48, 4, 4.602}, {"g6.16xlarge", 64, 1, 3.397},
	{"g6.24xlarge", 96, 4, 6.675}, {"g6.48xlarge", 192, 8, 13.35},
	{"g6e.xlarge", 4, 1, 1.861}, {"g6e.2xlarge", 8, 1, 2.242}, {"g6e.4xlarge", 16, 1, 3.004},
	{"g6e.8xlarge", 32, 1, 4.529}, {"g6e.12xlarge", 48, 4, 10.493}, {"g6e.16xlarge", 64, 1, 7.577},
	{"g6e.24xlarge", 96, 4, 15.066}, {"g6e.48xlarge", 192, 8, 30.131},
	{"p3.2xlarge", 8, 1, 3.06}, {"p3.8xlarge", 32, 4, 12.24}, {"p3.16xlarge", 64, 8, 24.48},
	{"p4d.24xlarge", 96, 8, 32.7726},
	{"p5.48xlarge", 192, 8, 98.32},
})

func index(list []Type) map[string]Type {
	m := make(map[string]Type, len(list))
	for _, t := range list {
		m[t.Name] = t
	}
	return m
}

// Lookup returns the type named name.
func Lookup(name string) (Type, bool) {
	t, ok := types[name]
	return t, ok
}

// All returns every type nightshift knows, by name.
func All() []Type {
	out := slices.Collect(maps.Values(types))
	slices.SortFunc(out, func(a, b Type) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// Known reports whether nightshift knows the instance type name.
func Known(name string) bool {
	_, ok := types[name]
	return ok
}

// Family returns the family of an instance type: "g5" for "g5.xlarge".
func Family(name string) string {
	f, _, _ := strings.Cut(name, ".")
	return f
}

// QuotaFor returns the vCPU quota that an instance type of the given market counts against.
func QuotaFor(name string, spot bool) Quota {
	p := strings.HasPrefix(Family(name), "p")
	switch {
	case p && spot:
		return QuotaPSpot
	case p:
		return QuotaP
	case spot:
		return QuotaGSpot
	}
	return QuotaG
}

// QuotaURL is the Service Quotas console page where a person asks for more.
func (q Quota) URL(region string) string {
	return "https://" + region + ".console.aws.amazon.com/servicequotas/home/services/ec2/quotas/" + q.Code
}
