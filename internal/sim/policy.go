package sim

import (
	"slices"

	"github.com/nightshift-dev/nightshift/internal/awssim"
	"github.com/nightshift-dev/nightshift/internal/fleet"
	"github.com/nightshift-dev/nightshift/internal/notice"
	"github.com/nightshift-dev/nightshift/internal/watchdog"
)

// stackPolicy is the functions' IAM policy in template.yaml, as it bears on
// instances (internal/deploy tests the template itself): everything on
// instances tagged nightshift:managed=true, and on watched ones
// (nightshift:watch=true) a stop and the last-action tag only; a launch
// only with the managed tag on the request. CancelCommand has no resource
// type to condition on, nor have GetSpotPlacementScores and DescribeSubnets
// (the DescribeFleet statement's "*"). Service Quotas: reading, and asking for more of,
// EC2's four GPU vCPU quotas only (ReadQuotas and AskForQuotas; the
// request history and a request by id take "*"). A call it refuses is a
// broken S4.
func stackPolicy(r awssim.Request) bool {
	managed := r.Tags[fleet.TagManaged] == "true"
	watched := r.Tags[watchdog.TagWatch] == "true"
	switch r.Op {
	case "RunInstances", "StartInstances", "TerminateInstances", "SendCommand":
		return managed
	case "StopInstances":
		return managed || watched
	case "CreateTags":
		return managed || watched && !slices.ContainsFunc(r.TagKeys, func(k string) bool { return k != notice.TagLastAction })
	case "CancelCommand", "GetRequestedServiceQuotaChange", "ListRequestedServiceQuotaChangeHistoryByQuota",
		"GetSpotPlacementScores", "DescribeSubnets":
		return true
	case "GetServiceQuota", "RequestServiceQuotaIncrease":
		return gpuQuotas[r.Quota]
	}
	return false
}

// gpuQuotas are the quotas the stack's policy names (template.yaml).
var gpuQuotas = map[string]bool{
	awssim.QuotaOnDemandG: true, awssim.QuotaOnDemandP: true, awssim.QuotaSpotG: true, awssim.QuotaSpotP: true,
}

// Violations lists the calls the stack's policy refused: nightshift acting
// on an instance it does not own (S4).
func (w *World) Violations() []string { return w.Cloud.Denied }
