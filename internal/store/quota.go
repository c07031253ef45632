package store

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
)

// Quota request items: pk = "QUOTA", sk = the quota code:
//
//	code S, request_id S, case_id S, status S, desired N, asked_at S,
//	checked_at S, decided_at S, message S, next_try S, notified S, version N
const quotaPK = "QUOTA"

// Quota request states nightshift records besides Service Quotas' own
// (PENDING, CASE_OPENED, APPROVED, DENIED, NOT_APPROVED, CASE_CLOSED,
// INVALID_REQUEST).
const (
	// QuotaAsking: the intent is written and RequestServiceQuotaIncrease
	// is being called (or was, before a crash): the pass that wrote it
	// calls, every other one waits; a later pass adopts the request
	// Service Quotas lists, or asks again.
	QuotaAsking = "ASKING"
	// QuotaFailed: Service Quotas refused the call itself (access, too
	// many open requests, an invalid value): Message says why, NextTry
	// when nightshift may ask again.
	QuotaFailed = "FAILED"
)

// QuotaRequest is nightshift's record of the increase it asked for one
// EC2 vCPU quota: at most one open at a time, the call made by the one
// pass that wrote the intent (every write is at a version).
type QuotaRequest struct {
	Code string
	// ID and CaseID are Service Quotas' request id and the AWS Support
	// case it opened, when it did.
	ID, CaseID string
	// Status is Service Quotas' status of the request, or QuotaAsking or
	// QuotaFailed.
	Status string
	// Desired is the value asked for, in vCPUs.
	Desired int
	// AskedAt is when the intent was written; CheckedAt when the status
	// was last read from Service Quotas; DecidedAt when nightshift saw it
	// decided (approved, denied, closed); NextTry when a failed call may
	// be made again.
	AskedAt, CheckedAt, DecidedAt, NextTry time.Time
	// Message is Service Quotas' error, for QuotaFailed.
	Message string
	// Notified is the status last said in a notice: each change is said once.
	Notified string
	Version  int64
}

func quotaKey(code string) item { return item{attrPK: str(quotaPK), attrSK: str(code)} }

func marshalQuotaRequest(q QuotaRequest) item {
	it := quotaKey(q.Code)
	putS(it, "code", q.Code)
	putS(it, "request_id", q.ID)
	putS(it, "case_id", q.CaseID)
	putS(it, "status", q.Status)
	it["desired"] = num(q.Desired)
	putT(it, "asked_at", q.AskedAt)
	putT(it, "checked_at", q.CheckedAt)
	putT(it, "decided_at", q.DecidedAt)
	putT(it, "next_try", q.NextTry)
	putS(it, "message", q.Message)
	putS(it, "notified", q.Notified)
	it["version"] = num(q.Version)
	return it
}

func unmarshalQuotaRequest(it item) (QuotaRequest, error) {
	d := decoder{it: it}
	q := QuotaRequest{
		Code: d.s("code"), ID: d.s("request_id"), CaseID: d.s("case_id"), Status: d.s("status"), Desired: d.int("desired"),
		AskedAt: d.t("asked_at"), CheckedAt: d.t("checked_at"), DecidedAt: d.t("decided_at"), NextTry: d.t("next_try"),
		Message: d.s("message"), Notified: d.s("notified"), Version: d.i64("version"),
	}
	if d.err != nil {
		return QuotaRequest{}, fmt.Errorf("decode quota request %s: %w", q.Code, d.err)
	}
	return q, nil
}

// QuotaRequest reads the record of a quota's increase request; ErrNotFound
// if nightshift never asked for one.
func (d *DynamoDB) QuotaRequest(ctx context.Context, code string) (QuotaRequest, error) {
	it, err := d.getConsistent(ctx, quotaKey(code))
	if err != nil {
		return QuotaRequest{}, fmt.Errorf("read quota request %s: %w", code, err)
	}
	if it == nil {
		return QuotaRequest{}, fmt.Errorf("quota request %s: %w", code, ErrNotFound)
	}
	return unmarshalQuotaRequest(it)
}

// QuotaRequests lists every quota's request record, with a consistent
// read: one query, for the watchdog's tick to follow the open ones.
func (d *DynamoDB) QuotaRequests(ctx context.Context) ([]QuotaRequest, error) {
	var out []QuotaRequest
	err := d.query(ctx, &dynamodb.QueryInput{
		TableName:                 aws.String(d.table),
		KeyConditionExpression:    aws.String("#pk = :pk"),
		ExpressionAttributeNames:  map[string]string{"#pk": attrPK},
		ExpressionAttributeValues: item{":pk": str(quotaPK)},
		ConsistentRead:            aws.Bool(true),
	}, func(it item) error {
		q, err := unmarshalQuotaRequest(it)
		if err == nil {
			out = append(out, q)
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("list quota requests: %w", err)
	}
	return out, nil
}

// PutQuotaRequest writes q if the stored record is still at version
// q.Version (0: absent), then sets q.Version; ErrConflict otherwise.
func (d *DynamoDB) PutQuotaRequest(ctx context.Context, q *QuotaRequest) error {
	next := *q
	next.Version++
	if err := d.putAtVersion(ctx, marshalQuotaRequest(next), q.Version); err != nil {
		return fmt.Errorf("write quota request %s: %w", q.Code, err)
	}
	q.Version = next.Version
	return nil
}

// memoryQuotas holds the in-memory store's quota request records.
type memoryQuotas struct {
	mu    sync.Mutex
	items map[string]QuotaRequest
}

// QuotaRequest reads the record of a quota's increase request.
func (m *Memory) QuotaRequest(ctx context.Context, code string) (QuotaRequest, error) {
	if err := m.enter(ctx, "QuotaRequest"); err != nil {
		return QuotaRequest{}, err
	}
	m.quotas.mu.Lock()
	defer m.quotas.mu.Unlock()
	q, ok := m.quotas.items[code]
	if !ok {
		return QuotaRequest{}, fmt.Errorf("quota request %s: %w", code, ErrNotFound)
	}
	return q, nil
}

// QuotaRequests lists every quota's request record, by code.
func (m *Memory) QuotaRequests(ctx context.Context) ([]QuotaRequest, error) {
	if err := m.enter(ctx, "QuotaRequests"); err != nil {
		return nil, err
	}
	m.quotas.mu.Lock()
	defer m.quotas.mu.Unlock()
	var out []QuotaRequest
	for _, q := range m.quotas.items {
		out = append(out, q)
	}
	slices.SortFunc(out, func(a, b QuotaRequest) int { return strings.Compare(a.Code, b.Code) })
	return out, nil
}

// PutQuotaRequest writes q if the stored record is still at version q.Version.
func (m *Memory) PutQuotaRequest(ctx context.Context, q *QuotaRequest) error {
	if err := m.enter(ctx, "PutQuotaRequest"); err != nil {
		return err
	}
	m.quotas.mu.Lock()
	defer m.quotas.mu.Unlock()
	if m.quotas.items == nil {
		m.quotas.items = map[string]QuotaRequest{}
	}
	if cur := m.quotas.items[q.Code]; cur.Version != q.Version {
		return fmt.Errorf("write quota request %s: %w", q.Code, ErrConflict)
	}
	next := *q
	next.Version++
	// As DynamoDB stores them: UTC, no monotonic reading.
	for _, t := range []*time.Time{&next.AskedAt, &next.CheckedAt, &next.DecidedAt, &next.NextTry} {
		*t = t.UTC().Round(0)
	}
	m.quotas.items[q.Code] = next
	q.Version = next.Version
	return nil
}
