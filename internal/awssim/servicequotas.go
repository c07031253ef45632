package awssim

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/servicequotas"
	sqtypes "github.com/aws/aws-sdk-go-v2/service/servicequotas/types"
)

// Service Quotas, over the cloud's Quota map: GetServiceQuota reads it,
// an approved increase request writes it, and RunInstances' vCPU check
// uses what is there. Only EC2's four GPU vCPU quotas are modelled (a
// request at the resource level, ContextId, is not).

// UncappedQuota is what GetServiceQuota answers for a GPU quota the Quota
// map leaves out, which RunInstances does not cap: a value no simulated
// fleet reaches (a million vCPUs), so a caller that reads it never holds
// back. AWS answers every account's own value; none is unlimited.
const UncappedQuota = 1_000_000

// DefaultQuotaCaseOpened and DefaultQuotaApproved are the default life of
// an increase request: a support case opened a minute after the request,
// approved half an hour after that. AWS says a request can take from
// minutes to a few days (GPU quotas, and large asks, go to a person); half
// an hour keeps tests short. QuotaDecision changes it.
const (
	DefaultQuotaCaseOpened = time.Minute
	DefaultQuotaApproved   = 30 * time.Minute
)

// QuotaStep is one step of an increase request's life: After the step
// before it (the first: after the request), the request's status becomes
// Status. CASE_OPENED gives it a support case id; APPROVED makes its
// desired value the applied one.
type QuotaStep struct {
	After  time.Duration
	Status string
}

// DefaultQuotaDecision is the life of a request when Cloud.QuotaDecision is
// nil: CASE_OPENED, then APPROVED.
func DefaultQuotaDecision(string, float64) []QuotaStep {
	return []QuotaStep{{DefaultQuotaCaseOpened, "CASE_OPENED"}, {DefaultQuotaApproved, "APPROVED"}}
}

// quotaNames are the modelled quotas' names, as Service Quotas lists them.
var quotaNames = map[string]string{
	QuotaOnDemandG: "Running On-Demand G and VT instances",
	QuotaOnDemandP: "Running On-Demand P instances",
	QuotaSpotG:     "All G and VT Spot Instance Requests",
	QuotaSpotP:     "All P Spot Instance Requests",
}

// quotaRequest is one increase request.
type quotaRequest struct {
	id, caseID, code, status string
	desired                  float64
	created, updated         time.Time
}

func (r *quotaRequest) open() bool { return r.status == "PENDING" || r.status == "CASE_OPENED" }

func (r *quotaRequest) sdk() sqtypes.RequestedServiceQuotaChange {
	out := sqtypes.RequestedServiceQuotaChange{
		Id: aws.String(r.id), QuotaCode: aws.String(r.code), QuotaName: aws.String(quotaNames[r.code]),
		QuotaArn: aws.String(quotaARN(r.code)), ServiceCode: aws.String("ec2"), ServiceName: aws.String("Amazon Elastic Compute Cloud (Amazon EC2)"),
		DesiredValue: aws.Float64(r.desired), Status: sqtypes.RequestStatus(r.status), Unit: aws.String("None"),
		Created: aws.Time(r.created), LastUpdated: aws.Time(r.updated), Requester: aws.String("arn:aws:iam::" + Account + ":role/nightshift"),
		QuotaRequestedAtLevel: sqtypes.AppliedLevelEnumAccount,
	}
	if r.caseID != "" {
		out.CaseId = aws.String(r.caseID)
	}
	return out
}

func num(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }

func quotaARN(code string) string {
	return "arn:aws:servicequotas:" + Region + ":" + Account + ":ec2/" + code
}

// QuotaRequests returns every increase request, in the order made, as
// Service Quotas reports them.
func (c *Cloud) QuotaRequests() []sqtypes.RequestedServiceQuotaChange {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]sqtypes.RequestedServiceQuotaChange, 0, len(c.quotaRequests))
	for _, r := range c.quotaRequests {
		out = append(out, r.sdk())
	}
	return out
}

// quota checks ServiceCode and QuotaCode and asks the policy; it returns
// the quota's applied value.
func (c *Cloud) quota(op, service, code string) (float64, error) {
	if service != "ec2" {
		return 0, notModelled("Service Quotas for service %q (only ec2)", service)
	}
	if _, ok := quotaNames[code]; !ok {
		return 0, apiError("NoSuchResourceException", "The request failed because the specified quota %s does not exist.", code)
	}
	if err := c.authorize(Request{Op: op, Quota: code}, "AccessDeniedException"); err != nil {
		return 0, err
	}
	return c.applied(code), nil
}

func (c *Cloud) applied(code string) float64 {
	if v, ok := c.Quota[code]; ok {
		return float64(v)
	}
	return UncappedQuota
}

// GetServiceQuota answers the applied value of one of EC2's GPU vCPU
// quotas: Quota[code], or UncappedQuota when the map leaves it out.
func (c *Cloud) GetServiceQuota(_ context.Context, in *servicequotas.GetServiceQuotaInput, _ ...func(*servicequotas.Options)) (*servicequotas.GetServiceQuotaOutput, error) {
	return serve(c, "GetServiceQuota", in, func(in *servicequotas.GetServiceQuotaInput) (*servicequotas.GetServiceQuotaOutput, error) {
		if in.ContextId != nil {
			return nil, notModelled("GetServiceQuota with a ContextId")
		}
		code := aws.ToString(in.QuotaCode)
		v, err := c.quota("GetServiceQuota", aws.ToString(in.ServiceCode), code)
		if err != nil {
			return nil, err
		}
		return &servicequotas.GetServiceQuotaOutput{Quota: &sqtypes.ServiceQuota{
			QuotaCode: aws.String(code), QuotaName: aws.String(quotaNames[code]), QuotaArn: aws.String(quotaARN(code)),
			ServiceCode: aws.String("ec2"), ServiceName: aws.String("Amazon Elastic Compute Cloud (Amazon EC2)"),
			Value: aws.Float64(v), Unit: aws.String("None"), Adjustable: true, QuotaAppliedAtLevel: sqtypes.AppliedLevelEnumAccount,
		}}, nil
	})
}

// RequestServiceQuotaIncrease files an increase request: at most one open
// per quota (ResourceAlreadyExistsException), for more than the applied
// value (IllegalArgumentException). Its life is QuotaDecision's steps, on
// the cloud's clock. The account-wide cap on open requests
// (QuotaExceededException) is not modelled: four quotas, one open each.
func (c *Cloud) RequestServiceQuotaIncrease(_ context.Context, in *servicequotas.RequestServiceQuotaIncreaseInput, _ ...func(*servicequotas.Options)) (*servicequotas.RequestServiceQuotaIncreaseOutput, error) {
	return serve(c, "RequestServiceQuotaIncrease", in, c.requestQuotaIncrease)
}

func (c *Cloud) requestQuotaIncrease(in *servicequotas.RequestServiceQuotaIncreaseInput) (*servicequotas.RequestServiceQuotaIncreaseOutput, error) {
	if in.ContextId != nil || in.SupportCaseAllowed != nil {
		return nil, notModelled("RequestServiceQuotaIncrease with a ContextId or SupportCaseAllowed")
	}
	code := aws.ToString(in.QuotaCode)
	applied, err := c.quota("RequestServiceQuotaIncrease", aws.ToString(in.ServiceCode), code)
	if err != nil {
		return nil, err
	}
	if in.DesiredValue == nil {
		return nil, apiError("IllegalArgumentException", "DesiredValue is required.")
	}
	desired := *in.DesiredValue
	switch {
	case desired < 0 || desired > 1e10 || math.IsNaN(desired):
		return nil, apiError("IllegalArgumentException", "DesiredValue %s is outside the valid range 0 to 10000000000.", num(desired))
	case desired <= applied:
		return nil, apiError("IllegalArgumentException", "The requested value %s must be greater than the current quota value %s.", num(desired), num(applied))
	}
	if slices.ContainsFunc(c.quotaRequests, func(r *quotaRequest) bool { return r.code == code && r.open() }) {
		c.QuotaAskedWhileOpen++
		return nil, apiError("ResourceAlreadyExistsException", "Only one open service quota increase request is allowed per quota.")
	}
	c.seq++
	now := c.clock.Now()
	r := &quotaRequest{id: fmt.Sprintf("%032x", 0xa000+c.seq), code: code, status: "PENDING", desired: desired, created: now, updated: now}
	c.quotaRequests = append(c.quotaRequests, r)
	decide := c.QuotaDecision
	if decide == nil {
		decide = DefaultQuotaDecision
	}
	at := now
	for _, s := range decide(code, desired) {
		at = at.Add(s.After)
		c.clock.At(at, func() {
			c.mu.Lock()
			defer c.mu.Unlock()
			c.stepQuotaRequest(r, s.Status)
		})
	}
	return &servicequotas.RequestServiceQuotaIncreaseOutput{RequestedQuota: new(r.sdk())}, nil
}

// stepQuotaRequest moves r to status; a decided request moves no further.
func (c *Cloud) stepQuotaRequest(r *quotaRequest, status string) {
	if !r.open() {
		return
	}
	r.status, r.updated = status, c.clock.Now()
	if status == "CASE_OPENED" && r.caseID == "" {
		c.seq++
		r.caseID = strconv.Itoa(17000000000 + c.seq)
	}
	if status == "APPROVED" {
		c.Quota[r.code] = int(math.Floor(r.desired))
	}
}

// GetRequestedServiceQuotaChange answers one increase request.
func (c *Cloud) GetRequestedServiceQuotaChange(_ context.Context, in *servicequotas.GetRequestedServiceQuotaChangeInput, _ ...func(*servicequotas.Options)) (*servicequotas.GetRequestedServiceQuotaChangeOutput, error) {
	return serve(c, "GetRequestedServiceQuotaChange", in, func(in *servicequotas.GetRequestedServiceQuotaChangeInput) (*servicequotas.GetRequestedServiceQuotaChangeOutput, error) {
		id := aws.ToString(in.RequestId)
		if err := c.authorize(Request{Op: "GetRequestedServiceQuotaChange"}, "AccessDeniedException"); err != nil {
			return nil, err
		}
		for _, r := range c.quotaRequests {
			if r.id == id {
				return &servicequotas.GetRequestedServiceQuotaChangeOutput{RequestedQuota: new(r.sdk())}, nil
			}
		}
		return nil, apiError("NoSuchResourceException", "The request failed because the specified request %s does not exist.", id)
	})
}

// ListRequestedServiceQuotaChangeHistoryByQuota lists a quota's increase
// requests, newest first, MaxResults (1 to 100) a page. Its Status and
// QuotaRequestedAtLevel filters are not modelled.
func (c *Cloud) ListRequestedServiceQuotaChangeHistoryByQuota(_ context.Context, in *servicequotas.ListRequestedServiceQuotaChangeHistoryByQuotaInput, _ ...func(*servicequotas.Options)) (*servicequotas.ListRequestedServiceQuotaChangeHistoryByQuotaOutput, error) {
	return serve(c, "ListRequestedServiceQuotaChangeHistoryByQuota", in, c.listQuotaRequests)
}

func (c *Cloud) listQuotaRequests(in *servicequotas.ListRequestedServiceQuotaChangeHistoryByQuotaInput) (*servicequotas.ListRequestedServiceQuotaChangeHistoryByQuotaOutput, error) {
	if in.Status != "" || in.QuotaRequestedAtLevel != "" {
		return nil, notModelled("ListRequestedServiceQuotaChangeHistoryByQuota with Status or QuotaRequestedAtLevel")
	}
	code := aws.ToString(in.QuotaCode)
	if _, err := c.quota("ListRequestedServiceQuotaChangeHistoryByQuota", aws.ToString(in.ServiceCode), code); err != nil {
		return nil, err
	}
	size := 100
	if in.MaxResults != nil {
		size = int(*in.MaxResults)
		if size < 1 || size > 100 {
			return nil, apiError("IllegalArgumentException", "MaxResults %d is outside the valid range 1 to 100.", size)
		}
	}
	var match []*quotaRequest
	for _, r := range slices.Backward(c.quotaRequests) {
		if r.code == code {
			match = append(match, r)
		}
	}
	start := 0
	if in.NextToken != nil {
		var err error
		if start, err = strconv.Atoi(*in.NextToken); err != nil || start < 0 || start > len(match) {
			return nil, apiError("InvalidPaginationTokenException", "Invalid pagination token %q.", *in.NextToken)
		}
	}
	end := min(start+size, len(match))
	out := &servicequotas.ListRequestedServiceQuotaChangeHistoryByQuotaOutput{RequestedQuotas: []sqtypes.RequestedServiceQuotaChange{}}
	for _, r := range match[start:end] {
		out.RequestedQuotas = append(out.RequestedQuotas, r.sdk())
	}
	if end < len(match) {
		out.NextToken = aws.String(strconv.Itoa(end))
	}
	return out, nil
}
