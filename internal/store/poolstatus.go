package store

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// Pool status items: pk = "POOL", sk = the pool's name:
//
//	pool S, code S, message S, since S, next_try S, tries N, notified BOOL, version N
const poolPK = "POOL"

// PoolStatus says why a pool's launches are paused, when EC2 refused the
// deployment's own launch settings (a subnet or launch template gone, a
// permission missing): every job of the pool would hit the same refusal,
// so launches wait for NextTry, backing off, and a person is told once.
// A zero Code is a healthy pool.
type PoolStatus struct {
	Pool string
	// Code and Message are AWS's error.
	Code, Message string
	// Since is when the refusal began; NextTry when a launch may try again.
	Since, NextTry time.Time
	// Tries counts the launches refused in a row.
	Tries int
	// Notified: the notice went out for this refusal.
	Notified bool
	Version  int64
}

func poolStatusKey(pool string) item { return item{attrPK: str(poolPK), attrSK: str(pool)} }

func marshalPoolStatus(s PoolStatus) item {
	it := poolStatusKey(s.Pool)
	putS(it, "pool", s.Pool)
	putS(it, "code", s.Code)
	putS(it, "message", s.Message)
	putT(it, "since", s.Since)
	putT(it, "next_try", s.NextTry)
	it["tries"] = num(s.Tries)
	it["notified"] = &types.AttributeValueMemberBOOL{Value: s.Notified}
	it["version"] = num(s.Version)
	return it
}

func unmarshalPoolStatus(it item) (PoolStatus, error) {
	d := decoder{it: it}
	s := PoolStatus{
		Pool: d.s("pool"), Code: d.s("code"), Message: d.s("message"), Since: d.t("since"), NextTry: d.t("next_try"),
		Tries: d.int("tries"), Version: d.i64("version"),
	}
	if b, ok := it["notified"].(*types.AttributeValueMemberBOOL); ok {
		s.Notified = b.Value
	}
	if d.err != nil {
		return PoolStatus{}, fmt.Errorf("decode pool status %s: %w", s.Pool, d.err)
	}
	return s, nil
}

// PoolStatus reads a pool's status; ErrNotFound if it has none.
func (d *DynamoDB) PoolStatus(ctx context.Context, pool string) (PoolStatus, error) {
	it, err := d.getConsistent(ctx, poolStatusKey(pool))
	if err != nil {
		return PoolStatus{}, fmt.Errorf("read pool status %s: %w", pool, err)
	}
	if it == nil {
		return PoolStatus{}, fmt.Errorf("pool status %s: %w", pool, ErrNotFound)
	}
	return unmarshalPoolStatus(it)
}

// PutPoolStatus writes s if the stored record is still at version s.Version
// (0: absent), then sets s.Version; ErrConflict otherwise.
func (d *DynamoDB) PutPoolStatus(ctx context.Context, s *PoolStatus) error {
	next := *s
	next.Version++
	if err := d.putAtVersion(ctx, marshalPoolStatus(next), s.Version); err != nil {
		return fmt.Errorf("write pool status %s: %w", s.Pool, err)
	}
	s.Version = next.Version
	return nil
}

// memoryPools holds the in-memory store's pool status records.
type memoryPools struct {
	mu    sync.Mutex
	items map[string]PoolStatus
}

// PoolStatus reads a pool's status; ErrNotFound if it has none.
func (m *Memory) PoolStatus(ctx context.Context, pool string) (PoolStatus, error) {
	if err := m.enter(ctx, "PoolStatus"); err != nil {
		return PoolStatus{}, err
	}
	m.pools.mu.Lock()
	defer m.pools.mu.Unlock()
	s, ok := m.pools.items[pool]
	if !ok {
		return PoolStatus{}, fmt.Errorf("pool status %s: %w", pool, ErrNotFound)
	}
	return s, nil
}

// PutPoolStatus writes s if the stored record is still at version s.Version.
func (m *Memory) PutPoolStatus(ctx context.Context, s *PoolStatus) error {
	if err := m.enter(ctx, "PutPoolStatus"); err != nil {
		return err
	}
	m.pools.mu.Lock()
	defer m.pools.mu.Unlock()
	if m.pools.items == nil {
		m.pools.items = map[string]PoolStatus{}
	}
	if cur := m.pools.items[s.Pool]; cur.Version != s.Version {
		return fmt.Errorf("write pool status %s: %w", s.Pool, ErrConflict)
	}
	next := *s
	next.Version++
	// As DynamoDB stores them: UTC, no monotonic reading.
	next.Since, next.NextTry = next.Since.UTC().Round(0), next.NextTry.UTC().Round(0)
	m.pools.items[s.Pool] = next
	s.Version = next.Version
	return nil
}
