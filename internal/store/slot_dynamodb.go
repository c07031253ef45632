package store

import (
	"context"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/nightshift-dev/nightshift/internal/job"
)

// Slot item: pk = "SLOT#<pool>", sk = the index in four digits, so one
// Query lists a pool's slots in order:
//
//	pool S, index N, job_id S, attempt N, instance_id S, taken_at S, bound_at S, version N
const slotPrefix = "SLOT#"

func slotItemKey(pool string, index int) item {
	return item{attrPK: str(slotPrefix + pool), attrSK: str(fmt.Sprintf("%04d", index))}
}

func marshalSlot(s Slot) item {
	it := slotItemKey(s.Pool, s.Index)
	putS(it, "pool", s.Pool)
	it["index"] = num(s.Index)
	putS(it, "job_id", s.JobID)
	it["attempt"] = num(s.Attempt)
	putS(it, "instance_id", s.InstanceID)
	putT(it, "taken_at", s.TakenAt)
	putT(it, "bound_at", s.BoundAt)
	it["version"] = num(s.Version)
	return it
}

func unmarshalSlot(it item) (Slot, error) {
	d := decoder{it: it}
	s := Slot{
		Pool: d.s("pool"), Index: d.int("index"), JobID: d.s("job_id"), Attempt: d.int("attempt"),
		InstanceID: d.s("instance_id"), TakenAt: d.t("taken_at"), BoundAt: d.t("bound_at"), Version: d.i64("version"),
	}
	if d.err != nil {
		return Slot{}, fmt.Errorf("decode slot %s/%d: %w", s.Pool, s.Index, d.err)
	}
	return s, nil
}

// slotWrite is the transaction item of one slot op for job j.
func (d *DynamoDB) slotWrite(j *job.Job, op SlotOp) types.TransactWriteItem {
	names := map[string]string{"#job": "job_id", "#attempt": "attempt"}
	values := item{":job": str(j.ID), ":attempt": num(op.holder(j.Attempt))}
	held := aws.String("#job = :job AND #attempt = :attempt")
	switch op.Kind {
	case TakeSlot:
		return types.TransactWriteItem{Put: &types.Put{
			TableName:                aws.String(d.table),
			Item:                     marshalSlot(Slot{Pool: op.Pool, Index: op.Index, JobID: j.ID, Attempt: j.Attempt, TakenAt: op.At, Version: 1}),
			ConditionExpression:      aws.String("attribute_not_exists(#pk)"),
			ExpressionAttributeNames: map[string]string{"#pk": attrPK},
		}}
	case BindSlot:
		names["#iid"], names["#bound"], names["#version"] = "instance_id", "bound_at", "version"
		values[":iid"], values[":at"], values[":one"] = str(op.InstanceID), timeValue(op.At), num(1)
		return types.TransactWriteItem{Update: &types.Update{
			TableName: aws.String(d.table), Key: slotItemKey(op.Pool, op.Index),
			UpdateExpression:         aws.String("SET #iid = :iid, #bound = :at, #version = #version + :one"),
			ConditionExpression:      held,
			ExpressionAttributeNames: names, ExpressionAttributeValues: values,
		}}
	default: // ReleaseSlot
		names["#iid"] = "instance_id"
		return types.TransactWriteItem{Delete: &types.Delete{
			TableName: aws.String(d.table), Key: slotItemKey(op.Pool, op.Index),
			ConditionExpression:      aws.String("#job = :job AND #attempt = :attempt AND attribute_not_exists(#iid)"),
			ExpressionAttributeNames: names, ExpressionAttributeValues: values,
		}}
	}
}

// sameTake is the condition that the slot item is the one read (see
// Slot.sameTake): its version, and the take's job, attempt and time.
const sameTake = "#version = :v AND #job = :job AND #attempt = :attempt AND #taken = :taken"

func sameTakeNames(names map[string]string) map[string]string {
	if names == nil {
		names = map[string]string{}
	}
	names["#version"], names["#job"], names["#attempt"], names["#taken"] = "version", "job_id", "attempt", "taken_at"
	return names
}

func sameTakeValues(s Slot, values item) item {
	if values == nil {
		values = item{}
	}
	values[":v"], values[":job"], values[":attempt"], values[":taken"] = num(s.Version), str(s.JobID), num(s.Attempt), timeValue(s.TakenAt)
	return values
}

// Slots lists a pool's taken slots, by index, with a consistent read.
func (d *DynamoDB) Slots(ctx context.Context, pool string) ([]Slot, error) {
	var slots []Slot
	err := d.query(ctx, &dynamodb.QueryInput{
		TableName:                 aws.String(d.table),
		KeyConditionExpression:    aws.String("#pk = :pk"),
		ExpressionAttributeNames:  map[string]string{"#pk": attrPK},
		ExpressionAttributeValues: item{":pk": str(slotPrefix + pool)},
		ConsistentRead:            aws.Bool(true),
	}, func(it item) error {
		s, err := unmarshalSlot(it)
		if err == nil {
			slots = append(slots, s)
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("list slots of %s: %w", pool, err)
	}
	return slots, nil
}

// FreeSlot deletes a slot at version s.Version.
func (d *DynamoDB) FreeSlot(ctx context.Context, s Slot) error {
	_, err := d.client.DeleteItem(ctx, &dynamodb.DeleteItemInput{
		TableName:                 aws.String(d.table),
		Key:                       slotItemKey(s.Pool, s.Index),
		ConditionExpression:       aws.String(sameTake),
		ExpressionAttributeNames:  sameTakeNames(nil),
		ExpressionAttributeValues: sameTakeValues(s, nil),
	})
	if conditionFailed(err) || transactionConflict(err) {
		return fmt.Errorf("free slot %s/%d: %w", s.Pool, s.Index, ErrConflict)
	}
	if err != nil {
		return fmt.Errorf("free slot %s/%d: %w", s.Pool, s.Index, err)
	}
	return nil
}

// AdoptSlot records the instance of a slot's launch, at version s.Version.
func (d *DynamoDB) AdoptSlot(ctx context.Context, s Slot, instanceID string, at time.Time) error {
	if instanceID == "" {
		return fmt.Errorf("adopt slot %s/%d: empty instance id", s.Pool, s.Index)
	}
	_, err := d.client.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                 aws.String(d.table),
		Key:                       slotItemKey(s.Pool, s.Index),
		UpdateExpression:          aws.String("SET #iid = :iid, #bound = :at, #version = #version + :one"),
		ConditionExpression:       aws.String(sameTake),
		ExpressionAttributeNames:  sameTakeNames(map[string]string{"#iid": "instance_id", "#bound": "bound_at"}),
		ExpressionAttributeValues: sameTakeValues(s, item{":iid": str(instanceID), ":at": timeValue(at), ":one": num(1)}),
	})
	if conditionFailed(err) || transactionConflict(err) {
		return fmt.Errorf("adopt slot %s/%d: %w", s.Pool, s.Index, ErrConflict)
	}
	if err != nil {
		return fmt.Errorf("adopt slot %s/%d: %w", s.Pool, s.Index, err)
	}
	return nil
}
