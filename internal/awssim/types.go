package awssim

import "strings"

// InstanceType is what EC2 and its price list say of one instance type.
type InstanceType struct {
	Name  string
	VCPUs int
	GPUs  int
	// Hourly is the on-demand price in USD per hour, us-east-1, Linux.
	Hourly float64
}

// offering is the simulated region's GPU instance types: what
// DescribeInstanceTypes and the price list would say (on-demand us-east-1
// Linux prices, approximate, late 2026). It is the simulation's own copy of
// these facts, so that a wrong entry in the product's catalog shows up as a
// disagreement instead of being taken for AWS's word.
var offering = indexTypes([]InstanceType{
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

func indexTypes(list []InstanceType) map[string]InstanceType {
	m := make(map[string]InstanceType, len(list))
	for _, t := range list {
		m[t.Name] = t
	}
	return m
}

// LookupType returns what the simulated region offers of an instance type.
func LookupType(name string) (InstanceType, bool) {
	t, ok := offering[name]
	return t, ok
}

// The EC2 vCPU quotas GPU instances count against, by Service Quotas code.
const (
	QuotaOnDemandG = "L-DB2E81BA" // Running On-Demand G and VT instances
	QuotaOnDemandP = "L-417A185B" // Running On-Demand P instances
	QuotaSpotG     = "L-3819A6DF" // All G and VT Spot Instance Requests
	QuotaSpotP     = "L-7212CCBC" // All P Spot Instance Requests
)

// QuotaFor returns the code of the vCPU quota an instance of a type and
// market counts against.
func QuotaFor(typ string, spot bool) string {
	family, _, _ := strings.Cut(typ, ".")
	p := strings.HasPrefix(family, "p")
	switch {
	case p && spot:
		return QuotaSpotP
	case p:
		return QuotaOnDemandP
	case spot:
		return QuotaSpotG
	}
	return QuotaOnDemandG
}
