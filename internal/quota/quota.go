package quota

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/servicequotas"
	sqtypes "github.com/aws/aws-sdk-go-v2/service/servicequotas/types"

	"github.com/nightshift-dev/nightshift/internal/awserr"
	"github.com/nightshift-dev/nightshift/internal/catalog"
)

// ServiceQuotas is the part of the Service Quotas API nightshift uses.
type ServiceQuotas interface {
	GetServiceQuota(ctx context.Context, in *servicequotas.GetServiceQuotaInput, optFns ...func(*servicequotas.Options)) (*servicequotas.GetServiceQuotaOutput, error)
	RequestServiceQuotaIncrease(ctx context.Context, in *servicequotas.RequestServiceQuotaIncreaseInput, optFns ...func(*servicequotas.Options)) (*servicequotas.RequestServiceQuotaIncreaseOutput, error)
	GetRequestedServiceQuotaChange(ctx context.Context, in *servicequotas.GetRequestedServiceQuotaChangeInput, optFns ...func(*servicequotas.Options)) (*servicequotas.GetRequestedServiceQuotaChangeOutput, error)
	ListRequestedServiceQuotaChangeHistoryByQuota(ctx context.Context, in *servicequotas.ListRequestedServiceQuotaChangeHistoryByQuotaInput, optFns ...func(*servicequotas.Options)) (*servicequotas.ListRequestedServiceQuotaChangeHistoryByQuotaOutput, error)
}

// EC2 is the part of the EC2 API the usage count reads.
type EC2 interface {
	DescribeInstances(ctx context.Context, in *ec2.DescribeInstancesInput, optFns ...func(*ec2.Options)) (*ec2.DescribeInstancesOutput, error)
}

var (
	_ ServiceQuotas = (*servicequotas.Client)(nil)
	_ EC2           = (*ec2.Client)(nil)
)

// DefaultTTL is how long an applied value is reused: a quota changes only
// through an increase request, and the caller forgets the value (Forget)
// when it sees one approved.
const DefaultTTL = 10 * time.Minute

// describePageSize is the largest DescribeInstances page.
const describePageSize = 1000

// historyPageSize is the largest ListRequestedServiceQuotaChangeHistoryByQuota
// page (the API reference: 1 to 100).
const historyPageSize = 100

// ErrInvalid: Service Quotas refused the request as asked
// (IllegalArgumentException: a desired value not above the applied one, say;
// InvalidResourceStateException).
var ErrInvalid = errors.New("Service Quotas refused the request as asked")

// Config is the adapter's settings.
type Config struct {
	// TTL is how long an applied value is cached; zero means DefaultTTL,
	// negative means no cache.
	TTL time.Duration
}

// Quotas reads and asks for the EC2 vCPU quotas GPU instances count against.
type Quotas struct {
	sq  ServiceQuotas
	ec2 EC2
	ttl time.Duration
	now func() time.Time

	mu      sync.Mutex
	applied map[string]cached
}

type cached struct {
	value float64
	at    time.Time
}

// New returns a Quotas.
func New(sq ServiceQuotas, e EC2, cfg Config, now func() time.Time) *Quotas {
	ttl := cfg.TTL
	if ttl == 0 {
		ttl = DefaultTTL
	}
	return &Quotas{sq: sq, ec2: e, ttl: ttl, now: now, applied: map[string]cached{}}
}

// Applied returns the applied value of the EC2 quota code, in vCPUs: one
// GetServiceQuota call, then the cached value for TTL.
func (q *Quotas) Applied(ctx context.Context, code string) (float64, error) {
	now := q.now()
	q.mu.Lock()
	c, ok := q.applied[code]
	q.mu.Unlock()
	if ok && q.ttl > 0 && now.Sub(c.at) < q.ttl {
		return c.value, nil
	}
	out, err := q.sq.GetServiceQuota(ctx, &servicequotas.GetServiceQuotaInput{ServiceCode: aws.String(ServiceCode), QuotaCode: aws.String(code)})
	if err != nil {
		return 0, wrap("read quota "+code, err)
	}
	if out.Quota == nil || out.Quota.Value == nil {
		return 0, fmt.Errorf("quota: read quota %s: Service Quotas answered no value", code)
	}
	v := aws.ToFloat64(out.Quota.Value)
	q.mu.Lock()
	q.applied[code] = cached{value: v, at: now}
	q.mu.Unlock()
	return v, nil
}

// Forget drops the cached applied value of code: the next Applied reads it.
func (q *Quotas) Forget(code string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	delete(q.applied, code)
}

// gpuTypes are the instance-type filter values of the families whose
// instances count against the GPU vCPU quotas: G, VT and P. EC2's filter
// values take * (zero or more characters) and ? wildcards.
var gpuTypes = []string{"g*", "p*", "vt*"}

// TagManaged marks nightshift's own instances (fleet.TagManaged): Use
// tells their vCPUs from everyone else's.
const TagManaged = "nightshift:managed"

// Use is the vCPUs in use under one quota: nightshift's instances' and
// the account's others'.
type Use struct {
	Nightshift int `json:"nightshift"`
	Others     int `json:"others"`
}

// Total is every vCPU in use under the quota: what EC2 holds against it.
func (u Use) Total() int { return u.Nightshift + u.Others }

// Usage returns the vCPUs of every pending or running G, VT and P instance
// of the account — nightshift's and everyone else's — under each quota
// code they count against (catalog.QuotaFor). It reads DescribeInstances in
// pages of 1000 and caches nothing.
func (q *Quotas) Usage(ctx context.Context) (map[string]int, error) {
	uses, err := q.UsageByOwner(ctx)
	if err != nil {
		return nil, err
	}
	used := make(map[string]int, len(uses))
	for code, u := range uses {
		used[code] = u.Total()
	}
	return used, nil
}

// UsageByOwner is Usage with nightshift's instances (tagged
// nightshift:managed=true) told from the others.
func (q *Quotas) UsageByOwner(ctx context.Context) (map[string]Use, error) {
	in := &ec2.DescribeInstancesInput{
		Filters: []ec2types.Filter{
			{Name: aws.String("instance-state-name"), Values: []string{string(ec2types.InstanceStateNamePending), string(ec2types.InstanceStateNameRunning)}},
			{Name: aws.String("instance-type"), Values: gpuTypes},
		},
		MaxResults: aws.Int32(describePageSize),
	}
	used := map[string]Use{}
	p := ec2.NewDescribeInstancesPaginator(q.ec2, in)
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("quota: list instances: %w", err)
		}
		for _, r := range page.Reservations {
			for _, i := range r.Instances {
				typ := string(i.InstanceType)
				n, ok := vcpus(i)
				if !ok {
					return nil, fmt.Errorf("quota: instance %s: type %s has no CPU options and is not in the catalog", aws.ToString(i.InstanceId), typ)
				}
				code := catalog.QuotaFor(typ, i.InstanceLifecycle == ec2types.InstanceLifecycleTypeSpot).Code
				u := used[code]
				if managed(i) {
					u.Nightshift += n
				} else {
					u.Others += n
				}
				used[code] = u
			}
		}
	}
	return used, nil
}

func managed(i ec2types.Instance) bool {
	for _, t := range i.Tags {
		if aws.ToString(t.Key) == TagManaged && aws.ToString(t.Value) == "true" {
			return true
		}
	}
	return false
}

// vcpus is an instance's vCPU count: its CPU options (cores × threads per
// core, as EC2 counts them against the quota), else the catalog's.
func vcpus(i ec2types.Instance) (int, bool) {
	if o := i.CpuOptions; o != nil && o.CoreCount != nil && aws.ToInt32(o.CoreCount) > 0 {
		threads := max(aws.ToInt32(o.ThreadsPerCore), 1)
		return int(aws.ToInt32(o.CoreCount) * threads), true
	}
	t, ok := catalog.Lookup(string(i.InstanceType))
	return t.VCPUs, ok
}

// Request asks Service Quotas to raise the EC2 quota code to desired vCPUs.
// A quota with an open request already is ErrOpen; an account with too many
// open requests is ErrTooMany; a desired value Service Quotas does not take
// (not above the applied value) is ErrInvalid.
func (q *Quotas) Request(ctx context.Context, code string, desired float64) (Request, error) {
	out, err := q.sq.RequestServiceQuotaIncrease(ctx, &servicequotas.RequestServiceQuotaIncreaseInput{
		ServiceCode: aws.String(ServiceCode), QuotaCode: aws.String(code), DesiredValue: aws.Float64(desired),
	})
	if err != nil {
		return Request{}, wrap(fmt.Sprintf("ask for %g vCPUs of %s", desired, code), err)
	}
	if out.RequestedQuota == nil {
		return Request{}, fmt.Errorf("quota: ask for %g vCPUs of %s: Service Quotas answered no request", desired, code)
	}
	return request(*out.RequestedQuota), nil
}

// Get returns the increase request id.
func (q *Quotas) Get(ctx context.Context, id string) (Request, error) {
	out, err := q.sq.GetRequestedServiceQuotaChange(ctx, &servicequotas.GetRequestedServiceQuotaChangeInput{RequestId: aws.String(id)})
	if err != nil {
		return Request{}, wrap("read request "+id, err)
	}
	if out.RequestedQuota == nil {
		return Request{}, fmt.Errorf("quota: read request %s: Service Quotas answered no request", id)
	}
	return request(*out.RequestedQuota), nil
}

// History returns the increase requests of the EC2 quota code Service
// Quotas still lists (it keeps them for 90 days), every page, newest first.
func (q *Quotas) History(ctx context.Context, code string) ([]Request, error) {
	in := &servicequotas.ListRequestedServiceQuotaChangeHistoryByQuotaInput{
		ServiceCode: aws.String(ServiceCode), QuotaCode: aws.String(code), MaxResults: aws.Int32(historyPageSize),
	}
	var out []Request
	p := servicequotas.NewListRequestedServiceQuotaChangeHistoryByQuotaPaginator(q.sq, in)
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, wrap("list the requests of "+code, err)
		}
		for _, r := range page.RequestedQuotas {
			out = append(out, request(r))
		}
	}
	slices.SortStableFunc(out, func(a, b Request) int { return b.Created.Compare(a.Created) })
	return out, nil
}

// Open returns the open request among rs (History's), if any: Service
// Quotas takes one at a time per quota.
func Open(rs []Request) (Request, bool) {
	for _, r := range rs {
		if r.Open() {
			return r, true
		}
	}
	return Request{}, false
}

func request(r sqtypes.RequestedServiceQuotaChange) Request {
	return Request{
		ID: aws.ToString(r.Id), CaseID: aws.ToString(r.CaseId), Code: aws.ToString(r.QuotaCode),
		Desired: aws.ToFloat64(r.DesiredValue), Status: string(r.Status),
		Created: aws.ToTime(r.Created), Updated: aws.ToTime(r.LastUpdated),
	}
}

// wrap turns Service Quotas' answers into the package's errors; other
// errors (throttling, a timeout) are wrapped as they are.
func wrap(what string, err error) error {
	var kind error
	switch {
	case awserr.ServiceQuotasOpen.Has(err):
		kind = ErrOpen
	case awserr.ServiceQuotasTooMany.Has(err):
		kind = ErrTooMany
	case awserr.ServiceQuotasDenied.Has(err):
		kind = ErrDenied
	case awserr.ServiceQuotasInvalid.Has(err):
		kind = ErrInvalid
	default:
		return fmt.Errorf("quota: %s: %w", what, err)
	}
	// Both in the chain: the kind to branch on, AWS's error for its code
	// and message.
	return fmt.Errorf("quota: %s: %w: %w", what, kind, err)
}
