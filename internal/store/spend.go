package store

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// Spend items: pk = "SPEND", sk = the period ("D2026-11-25" for a day,
// "M2026-11" for a month, "STATUS" for the budget status the scheduler
// reads), so the console shows the estimates next to the jobs:
//
//	period S, usd N, accounted_until S, warned BOOL, reached BOOL, reason S, version N
const spendPK = "SPEND"

// BudgetStatus is the spend record that says whether a budget is reached.
const BudgetStatus = "STATUS"

// Spend is an estimate of what one period cost, or (BudgetStatus) whether
// placement is paused by a budget.
type Spend struct {
	Period string
	USD    float64
	// AccountedUntil is the time up to which USD counts instance-seconds.
	AccountedUntil time.Time
	// Warned: the 80% notice went out. Reached: the budget is spent.
	Warned, Reached bool
	Reason          string
	Version         int64
}

func spendKey(period string) item { return item{attrPK: str(spendPK), attrSK: str(period)} }

func marshalSpend(s Spend) (item, error) {
	if math.IsNaN(s.USD) || math.IsInf(s.USD, 0) {
		return nil, fmt.Errorf("spend %s: %v is not a number DynamoDB can store", s.Period, s.USD)
	}
	it := spendKey(s.Period)
	it["period"] = str(s.Period)
	it["usd"] = &types.AttributeValueMemberN{Value: strconv.FormatFloat(s.USD, 'g', -1, 64)}
	putT(it, "accounted_until", s.AccountedUntil)
	it["warned"] = &types.AttributeValueMemberBOOL{Value: s.Warned}
	it["reached"] = &types.AttributeValueMemberBOOL{Value: s.Reached}
	putS(it, "reason", s.Reason)
	it["version"] = num(s.Version)
	return it, nil
}

func unmarshalSpend(it item) (Spend, error) {
	d := decoder{it: it}
	s := Spend{
		Period: d.s("period"), USD: d.f64("usd"), AccountedUntil: d.t("accounted_until"),
		Reason: d.s("reason"), Version: d.i64("version"),
	}
	if b, ok := it["warned"].(*types.AttributeValueMemberBOOL); ok {
		s.Warned = b.Value
	}
	if b, ok := it["reached"].(*types.AttributeValueMemberBOOL); ok {
		s.Reached = b.Value
	}
	if d.err != nil {
		return Spend{}, fmt.Errorf("decode spend %s: %w", s.Period, d.err)
	}
	return s, nil
}

// Spend reads the spend record of a period; ErrNotFound if there is none.
func (d *DynamoDB) Spend(ctx context.Context, period string) (Spend, error) {
	it, err := d.getConsistent(ctx, spendKey(period))
	if err != nil {
		return Spend{}, fmt.Errorf("read spend %s: %w", period, err)
	}
	if it == nil {
		return Spend{}, fmt.Errorf("spend %s: %w", period, ErrNotFound)
	}
	return unmarshalSpend(it)
}

// PutSpend writes s if the stored record is still at version s.Version (0:
// absent), then sets s.Version to the new version; ErrConflict otherwise.
func (d *DynamoDB) PutSpend(ctx context.Context, s *Spend) error {
	next := *s
	next.Version++
	it, err := marshalSpend(next)
	if err != nil {
		return err
	}
	if err := d.putAtVersion(ctx, it, s.Version); err != nil {
		return fmt.Errorf("write spend %s: %w", s.Period, err)
	}
	s.Version = next.Version
	return nil
}

// putAtVersion writes it if the stored item is still at version v (0:
// absent); ErrConflict otherwise.
func (d *DynamoDB) putAtVersion(ctx context.Context, it item, v int64) error {
	in := &dynamodb.PutItemInput{TableName: aws.String(d.table), Item: it}
	if v == 0 {
		in.ConditionExpression = aws.String("attribute_not_exists(pk)")
	} else {
		in.ConditionExpression = aws.String("#version = :v")
		in.ExpressionAttributeNames = map[string]string{"#version": "version"}
		in.ExpressionAttributeValues = item{":v": num(v)}
	}
	_, err := d.client.PutItem(ctx, in)
	if conditionFailed(err) {
		return ErrConflict
	}
	return err
}

// getConsistent reads one item with a consistent read; a nil item when
// there is none.
func (d *DynamoDB) getConsistent(ctx context.Context, key item) (item, error) {
	out, err := d.client.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(d.table), Key: key, ConsistentRead: aws.Bool(true)})
	if err != nil {
		return nil, err
	}
	return out.Item, nil
}

// memorySpend holds the in-memory store's spend records.
type memorySpend struct {
	mu    sync.Mutex
	items map[string]item
}

// Spend reads the spend record of a period; ErrNotFound if there is none.
func (m *Memory) Spend(ctx context.Context, period string) (Spend, error) {
	if err := m.enter(ctx, "Spend"); err != nil {
		return Spend{}, err
	}
	m.spend.mu.Lock()
	defer m.spend.mu.Unlock()
	it, ok := m.spend.items[period]
	if !ok {
		return Spend{}, fmt.Errorf("spend %s: %w", period, ErrNotFound)
	}
	return unmarshalSpend(it)
}

// PutSpend writes s if the stored record is still at version s.Version.
func (m *Memory) PutSpend(ctx context.Context, s *Spend) error {
	if err := m.enter(ctx, "PutSpend"); err != nil {
		return err
	}
	m.spend.mu.Lock()
	defer m.spend.mu.Unlock()
	if m.spend.items == nil {
		m.spend.items = map[string]item{}
	}
	var cur int64
	if it, ok := m.spend.items[s.Period]; ok {
		old, err := unmarshalSpend(it)
		if err != nil {
			return err
		}
		cur = old.Version
	}
	if cur != s.Version {
		return fmt.Errorf("write spend %s: %w", s.Period, ErrConflict)
	}
	next := *s
	next.Version++
	it, err := marshalSpend(next)
	if err != nil {
		return err
	}
	m.spend.items[s.Period] = it
	s.Version = next.Version
	return nil
}
