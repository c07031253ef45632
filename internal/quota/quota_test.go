package quota_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/servicequotas"
	sqtypes "github.com/aws/aws-sdk-go-v2/service/servicequotas/types"
	"github.com/aws/smithy-go"
	"github.com/google/go-cmp/cmp"

	"github.com/nightshift-dev/nightshift/internal/awserr"
	"github.com/nightshift-dev/nightshift/internal/catalog"
	"github.com/nightshift-dev/nightshift/internal/quota"
)

var t0 = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

// fakeSQ answers from its tables; err, when set, answers every call.
type fakeSQ struct {
	mu       sync.Mutex
	values   map[string]float64
	requests []sqtypes.RequestedServiceQuotaChange
	pageSize int
	err      error
	calls    map[string]int
	asked    []*servicequotas.RequestServiceQuotaIncreaseInput
}

func (f *fakeSQ) count(op string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.calls == nil {
		f.calls = map[string]int{}
	}
	f.calls[op]++
}

func (f *fakeSQ) GetServiceQuota(_ context.Context, in *servicequotas.GetServiceQuotaInput, _ ...func(*servicequotas.Options)) (*servicequotas.GetServiceQuotaOutput, error) {
	f.count("GetServiceQuota")
	if f.err != nil {
		return nil, f.err
	}
	if aws.ToString(in.ServiceCode) != "ec2" {
		return nil, fmt.Errorf("service code %q", aws.ToString(in.ServiceCode))
	}
	f.mu.Lock()
	v, ok := f.values[aws.ToString(in.QuotaCode)]
	f.mu.Unlock()
	if !ok {
		return nil, &sqtypes.NoSuchResourceException{Message: aws.String("The request failed because the specified service does not exist.")}
	}
	return &servicequotas.GetServiceQuotaOutput{Quota: &sqtypes.ServiceQuota{QuotaCode: in.QuotaCode, Value: aws.Float64(v)}}, nil
}

func (f *fakeSQ) RequestServiceQuotaIncrease(_ context.Context, in *servicequotas.RequestServiceQuotaIncreaseInput, _ ...func(*servicequotas.Options)) (*servicequotas.RequestServiceQuotaIncreaseOutput, error) {
	f.count("RequestServiceQuotaIncrease")
	f.asked = append(f.asked, in)
	if f.err != nil {
		return nil, f.err
	}
	r := sqtypes.RequestedServiceQuotaChange{Id: aws.String("req-1"), QuotaCode: in.QuotaCode, DesiredValue: in.DesiredValue, Status: sqtypes.RequestStatusPending, Created: aws.Time(t0)}
	return &servicequotas.RequestServiceQuotaIncreaseOutput{RequestedQuota: &r}, nil
}

func (f *fakeSQ) GetRequestedServiceQuotaChange(_ context.Context, in *servicequotas.GetRequestedServiceQuotaChangeInput, _ ...func(*servicequotas.Options)) (*servicequotas.GetRequestedServiceQuotaChangeOutput, error) {
	f.count("GetRequestedServiceQuotaChange")
	if f.err != nil {
		return nil, f.err
	}
	for _, r := range f.requests {
		if aws.ToString(r.Id) == aws.ToString(in.RequestId) {
			return &servicequotas.GetRequestedServiceQuotaChangeOutput{RequestedQuota: &r}, nil
		}
	}
	return nil, &sqtypes.NoSuchResourceException{Message: aws.String("no such request")}
}

func (f *fakeSQ) ListRequestedServiceQuotaChangeHistoryByQuota(_ context.Context, in *servicequotas.ListRequestedServiceQuotaChangeHistoryByQuotaInput, _ ...func(*servicequotas.Options)) (*servicequotas.ListRequestedServiceQuotaChangeHistoryByQuotaOutput, error) {
	f.count("ListRequestedServiceQuotaChangeHistoryByQuota")
	if f.err != nil {
		return nil, f.err
	}
	if n := aws.ToInt32(in.MaxResults); n < 1 || n > 100 {
		return nil, &sqtypes.IllegalArgumentException{Message: aws.String("MaxResults out of range")}
	}
	var match []sqtypes.RequestedServiceQuotaChange
	for _, r := range f.requests {
		if aws.ToString(r.QuotaCode) == aws.ToString(in.QuotaCode) {
			match = append(match, r)
		}
	}
	start := 0
	if in.NextToken != nil {
		start, _ = strconv.Atoi(*in.NextToken)
	}
	size := f.pageSize
	if size == 0 {
		size = len(match)
	}
	end := min(start+size, len(match))
	out := &servicequotas.ListRequestedServiceQuotaChangeHistoryByQuotaOutput{RequestedQuotas: match[start:end]}
	if end < len(match) {
		out.NextToken = aws.String(strconv.Itoa(end))
	}
	return out, nil
}

// fakeEC2 pages its instances, pageSize at a time, and checks the filters
// Usage sends (a wildcard-aware model lives in awssim; this one only
// checks what is asked).
type fakeEC2 struct {
	instances []ec2types.Instance
	pageSize  int
	calls     int
	t         *testing.T
}

func (f *fakeEC2) DescribeInstances(_ context.Context, in *ec2.DescribeInstancesInput, _ ...func(*ec2.Options)) (*ec2.DescribeInstancesOutput, error) {
	f.calls++
	want := []ec2types.Filter{
		{Name: aws.String("instance-state-name"), Values: []string{"pending", "running"}},
		{Name: aws.String("instance-type"), Values: []string{"g*", "p*", "vt*"}},
	}
	if d := cmp.Diff(want, in.Filters, cmp.AllowUnexported(ec2types.Filter{})); d != "" {
		f.t.Errorf("DescribeInstances filters (-want +got):\n%s", d)
	}
	if aws.ToInt32(in.MaxResults) != 1000 {
		f.t.Errorf("MaxResults %d; want 1000", aws.ToInt32(in.MaxResults))
	}
	start := 0
	if in.NextToken != nil {
		start, _ = strconv.Atoi(*in.NextToken)
	}
	end := min(start+f.pageSize, len(f.instances))
	out := &ec2.DescribeInstancesOutput{}
	for _, i := range f.instances[start:end] {
		out.Reservations = append(out.Reservations, ec2types.Reservation{Instances: []ec2types.Instance{i}})
	}
	if end < len(f.instances) {
		out.NextToken = aws.String(strconv.Itoa(end))
	}
	return out, nil
}

type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func TestAppliedCache(t *testing.T) {
	sq := &fakeSQ{values: map[string]float64{catalog.QuotaG.Code: 64, catalog.QuotaP.Code: 0}}
	c := &clock{t0}
	q := quota.New(sq, &fakeEC2{t: t}, quota.Config{}, c.now)
	ctx := context.Background()
	get := func(code string, want float64) {
		t.Helper()
		v, err := q.Applied(ctx, code)
		if err != nil || v != want {
			t.Fatalf("Applied(%s) = %v, %v; want %v", code, v, err, want)
		}
	}
	get(catalog.QuotaG.Code, 64)
	sq.values[catalog.QuotaG.Code] = 128 // approved meanwhile
	get(catalog.QuotaG.Code, 64)         // a hit
	if n := sq.calls["GetServiceQuota"]; n != 1 {
		t.Errorf("GetServiceQuota calls %d; want 1 (the second read cached)", n)
	}
	get(catalog.QuotaP.Code, 0) // a zero quota is a value, cached per code
	c.t = t0.Add(quota.DefaultTTL - time.Second)
	get(catalog.QuotaG.Code, 64)
	c.t = t0.Add(quota.DefaultTTL)
	get(catalog.QuotaG.Code, 128) // expired
	sq.values[catalog.QuotaG.Code] = 192
	q.Forget(catalog.QuotaG.Code)
	get(catalog.QuotaG.Code, 192)
	if n := sq.calls["GetServiceQuota"]; n != 4 {
		t.Errorf("GetServiceQuota calls %d; want 4 (G: miss, TTL, Forget; P: miss)", n)
	}
	// No cache at all.
	q = quota.New(sq, &fakeEC2{t: t}, quota.Config{TTL: -1}, c.now)
	get(catalog.QuotaG.Code, 192)
	get(catalog.QuotaG.Code, 192)
	if n := sq.calls["GetServiceQuota"]; n != 6 {
		t.Errorf("GetServiceQuota calls %d; want 6 with TTL < 0", n)
	}
}

func TestAppliedConcurrent(t *testing.T) {
	sq := &fakeSQ{values: map[string]float64{catalog.QuotaG.Code: 64}}
	q := quota.New(sq, &fakeEC2{t: t}, quota.Config{}, time.Now)
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			if _, err := q.Applied(context.Background(), catalog.QuotaG.Code); err != nil {
				t.Error(err)
			}
			q.Forget(catalog.QuotaG.Code)
		})
	}
	wg.Wait()
}

func TestErrors(t *testing.T) {
	throttled := &sqtypes.TooManyRequestsException{Message: aws.String("Rate exceeded")}
	tests := []struct {
		give error
		want error
	}{
		{&sqtypes.AccessDeniedException{Message: aws.String("no")}, quota.ErrDenied},
		{&sqtypes.DependencyAccessDeniedException{Message: aws.String("no role")}, quota.ErrDenied},
		{&sqtypes.NoSuchResourceException{Message: aws.String("none here")}, quota.ErrDenied},
		{&sqtypes.ResourceAlreadyExistsException{Message: aws.String("open")}, quota.ErrOpen},
		{&sqtypes.QuotaExceededException{Message: aws.String("too many")}, quota.ErrTooMany},
		{&sqtypes.IllegalArgumentException{Message: aws.String("must be greater")}, quota.ErrInvalid},
		{&smithy.GenericAPIError{Code: "ResourceAlreadyExistsException", Message: "over the wire"}, quota.ErrOpen},
	}
	ctx := context.Background()
	for _, tt := range tests {
		sq := &fakeSQ{err: tt.give}
		q := quota.New(sq, &fakeEC2{t: t}, quota.Config{}, time.Now)
		_, err := q.Request(ctx, catalog.QuotaG.Code, 128)
		if !errors.Is(err, tt.want) {
			t.Errorf("Request answered %v: got %v; want %v", tt.give, err, tt.want)
		}
		if awserr.Code(err) == "" {
			t.Errorf("Request answered %v: %v lost AWS's error", tt.give, err)
		}
	}
	// Throttling and the rest come back as they are.
	q := quota.New(&fakeSQ{err: throttled}, &fakeEC2{t: t}, quota.Config{}, time.Now)
	for name, call := range map[string]func() error{
		"Applied": func() error { _, err := q.Applied(ctx, catalog.QuotaG.Code); return err },
		"Get":     func() error { _, err := q.Get(ctx, "req-1"); return err },
		"History": func() error { _, err := q.History(ctx, catalog.QuotaG.Code); return err },
	} {
		err := call()
		if !awserr.ServiceQuotasThrottle.Has(err) || errors.Is(err, quota.ErrDenied) || errors.Is(err, quota.ErrOpen) {
			t.Errorf("%s throttled: %v; want the throttling error as it is", name, err)
		}
	}
	// Applied maps access errors too, and caches no failure.
	sq := &fakeSQ{err: &sqtypes.AccessDeniedException{Message: aws.String("no")}}
	q = quota.New(sq, &fakeEC2{t: t}, quota.Config{}, time.Now)
	if _, err := q.Applied(ctx, catalog.QuotaG.Code); !errors.Is(err, quota.ErrDenied) {
		t.Errorf("Applied denied: %v; want ErrDenied", err)
	}
	sq.err, sq.values = nil, map[string]float64{catalog.QuotaG.Code: 8}
	if v, err := q.Applied(ctx, catalog.QuotaG.Code); err != nil || v != 8 {
		t.Errorf("Applied after a refusal = %v, %v; want 8 (no failure cached)", v, err)
	}
}

func TestRequest(t *testing.T) {
	sq := &fakeSQ{}
	q := quota.New(sq, &fakeEC2{t: t}, quota.Config{}, time.Now)
	r, err := q.Request(context.Background(), catalog.QuotaP.Code, 192)
	if err != nil {
		t.Fatal(err)
	}
	want := quota.Request{ID: "req-1", Code: catalog.QuotaP.Code, Desired: 192, Status: quota.StatusPending, Created: t0}
	if d := cmp.Diff(want, r); d != "" {
		t.Errorf("Request (-want +got):\n%s", d)
	}
	in := sq.asked[0]
	if aws.ToString(in.ServiceCode) != "ec2" || aws.ToString(in.QuotaCode) != catalog.QuotaP.Code || aws.ToFloat64(in.DesiredValue) != 192 {
		t.Errorf("asked %s/%s for %v", aws.ToString(in.ServiceCode), aws.ToString(in.QuotaCode), aws.ToFloat64(in.DesiredValue))
	}
}

func change(id, code, status string, desired float64, created time.Time, caseID string) sqtypes.RequestedServiceQuotaChange {
	r := sqtypes.RequestedServiceQuotaChange{
		Id: aws.String(id), QuotaCode: aws.String(code), Status: sqtypes.RequestStatus(status),
		DesiredValue: aws.Float64(desired), Created: aws.Time(created), LastUpdated: aws.Time(created.Add(time.Minute)),
	}
	if caseID != "" {
		r.CaseId = aws.String(caseID)
	}
	return r
}

func TestHistoryAndGet(t *testing.T) {
	g := catalog.QuotaG.Code
	sq := &fakeSQ{pageSize: 2, requests: []sqtypes.RequestedServiceQuotaChange{
		change("r1", g, quota.StatusApproved, 32, t0.Add(-72*time.Hour), "1700000001"),
		change("r2", g, quota.StatusDenied, 512, t0.Add(-48*time.Hour), "1700000002"),
		change("p1", catalog.QuotaP.Code, quota.StatusPending, 8, t0.Add(-time.Hour), ""),
		change("r3", g, quota.StatusCaseOpened, 96, t0.Add(-time.Hour), "1700000003"),
		change("r0", g, quota.StatusCaseClosed, 16, t0.Add(-96*time.Hour), ""),
	}}
	q := quota.New(sq, &fakeEC2{t: t}, quota.Config{}, time.Now)
	ctx := context.Background()
	rs, err := q.History(ctx, g)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, r := range rs {
		ids = append(ids, r.ID)
	}
	if want := []string{"r3", "r2", "r1", "r0"}; !slices.Equal(ids, want) {
		t.Errorf("History ids %q; want %q (every page, newest first, this quota's only)", ids, want)
	}
	if n := sq.calls["ListRequestedServiceQuotaChangeHistoryByQuota"]; n != 2 {
		t.Errorf("List calls %d; want 2 pages", n)
	}
	open, ok := quota.Open(rs)
	if !ok || open.ID != "r3" || open.CaseID != "1700000003" || !open.Open() {
		t.Errorf("Open = %+v, %v; want r3 with its case", open, ok)
	}
	if rs[1].Refused() != true || rs[2].Granted() != true {
		t.Errorf("r2 refused %v, r1 granted %v; want both", rs[1].Refused(), rs[2].Granted())
	}
	r, err := q.Get(ctx, "r1")
	if err != nil || r.Status != quota.StatusApproved || r.Desired != 32 || !r.Updated.Equal(t0.Add(-72*time.Hour+time.Minute)) {
		t.Errorf("Get(r1) = %+v, %v", r, err)
	}
	if _, err := q.Get(ctx, "nope"); !errors.Is(err, quota.ErrDenied) {
		t.Errorf("Get(nope) = %v; want ErrDenied (NoSuchResourceException)", err)
	}
}

func inst(id, typ string, spot bool, cores, threads int32) ec2types.Instance {
	i := ec2types.Instance{InstanceId: aws.String(id), InstanceType: ec2types.InstanceType(typ), State: &ec2types.InstanceState{Name: ec2types.InstanceStateNameRunning}}
	if spot {
		i.InstanceLifecycle = ec2types.InstanceLifecycleTypeSpot
	}
	if cores > 0 {
		i.CpuOptions = &ec2types.CpuOptions{CoreCount: aws.Int32(cores), ThreadsPerCore: aws.Int32(threads)}
	}
	return i
}

func TestUsage(t *testing.T) {
	e := &fakeEC2{t: t, pageSize: 2, instances: []ec2types.Instance{
		inst("i-1", "g5.xlarge", false, 2, 2),    // nightshift's, 4 vCPUs
		inst("i-2", "g5.12xlarge", false, 0, 0),  // someone else's: 48 from the catalog
		inst("i-3", "g4dn.xlarge", true, 2, 2),   // spot G
		inst("i-4", "p3.2xlarge", false, 4, 1),   // threads off: 4 vCPUs, as EC2 counts
		inst("i-5", "p4d.24xlarge", true, 48, 2), // spot P
		inst("i-6", "g6.2xlarge", false, 4, 0),   // no ThreadsPerCore: one each
	}}
	q := quota.New(&fakeSQ{}, e, quota.Config{}, time.Now)
	got, err := q.Usage(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int{catalog.QuotaG.Code: 4 + 48 + 4, catalog.QuotaGSpot.Code: 4, catalog.QuotaP.Code: 4, catalog.QuotaPSpot.Code: 96}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("Usage (-want +got):\n%s", d)
	}
	if e.calls != 3 {
		t.Errorf("DescribeInstances calls %d; want 3 pages", e.calls)
	}
	e.calls = 0
	e.instances[0].Tags = []ec2types.Tag{{Key: aws.String(quota.TagManaged), Value: aws.String("true")}}
	e.instances[4].Tags = []ec2types.Tag{{Key: aws.String(quota.TagManaged), Value: aws.String("true")}}
	e.instances[1].Tags = []ec2types.Tag{{Key: aws.String(quota.TagManaged), Value: aws.String("false")}}
	by, err := q.UsageByOwner(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	wantBy := map[string]quota.Use{
		catalog.QuotaG.Code: {Nightshift: 4, Others: 52}, catalog.QuotaGSpot.Code: {Others: 4},
		catalog.QuotaP.Code: {Others: 4}, catalog.QuotaPSpot.Code: {Nightshift: 96},
	}
	if d := cmp.Diff(wantBy, by); d != "" {
		t.Errorf("UsageByOwner (-want +got):\n%s", d)
	}
	// Nothing running: an empty map, not an error.
	q = quota.New(&fakeSQ{}, &fakeEC2{t: t, pageSize: 2}, quota.Config{}, time.Now)
	if got, err := q.Usage(context.Background()); err != nil || len(got) != 0 {
		t.Errorf("Usage of nothing = %v, %v", got, err)
	}
	// A type neither described nor known is an error, not a silent zero.
	q = quota.New(&fakeSQ{}, &fakeEC2{t: t, pageSize: 2, instances: []ec2types.Instance{inst("i-7", "g99.huge", false, 0, 0)}}, quota.Config{}, time.Now)
	if _, err := q.Usage(context.Background()); err == nil {
		t.Error("Usage with an unknown type and no CPU options: no error")
	}
}
