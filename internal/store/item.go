package store

import (
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/nightshift-dev/nightshift/internal/job"
)

// Attribute names and key values of the table; the layout is described at
// the top of dynamodb.go.
const (
	attrPK          = "pk"
	attrSK          = "sk"
	attrLivePK      = "live_pk"
	attrLiveSK      = "live_sk"
	attrSubmittedPK = "submitted_pk"
	attrSubmittedSK = "submitted_sk"
	// attrExpiresAt is the table's TTL attribute: epoch seconds.
	attrExpiresAt = "expires_at"

	jobPrefix       = "JOB#"
	jobSK           = "JOB"
	leasePK         = "LEASE"
	livePrefix      = "LIVE#"
	submittedPrefix = "SUBMITTED#"

	// indexLive is the sparse GSI over live jobs.
	indexLive = "live"
	// indexSubmitted is the GSI over every job, by submission month and time.
	indexSubmitted = "submitted"
)

// sortTimeLayout is RFC 3339 with a fixed-width fraction, so that times sort
// as strings in live_sk and submitted_sk (time.RFC3339Nano drops trailing
// zeros and does not). Times are written in UTC, so it ends in "Z".
const sortTimeLayout = "2006-01-02T15:04:05.000000000Z07:00"

// monthLayout names a submission month in submitted_pk.
const monthLayout = "2006-01"

// item is a DynamoDB item as the SDK sees it.
type item = map[string]types.AttributeValue

func jobKey(id string) item {
	return item{attrPK: str(jobPrefix + id), attrSK: str(jobSK)}
}

func leaseKey(instanceID string) item {
	return item{attrPK: str(leasePK), attrSK: str(instanceID)}
}

func livePK(s job.State) string { return livePrefix + string(s) }

// liveSK orders live jobs: priority (highest first), then submission time
// (oldest first), then id. Priorities outside 0..999 are clamped.
func liveSK(j *job.Job) string {
	// live_sk stores MaxPriority-priority in three digits, so that higher
	// priorities sort first.
	p := job.MaxPriority - min(max(j.Priority, 0), job.MaxPriority)
	return fmt.Sprintf("%03d#%s#%s", p, j.SubmittedAt.UTC().Format(sortTimeLayout), j.ID)
}

// submittedPK is the partition of the submitted index that holds the jobs
// submitted in t's UTC month.
func submittedPK(t time.Time) string { return submittedPrefix + t.UTC().Format(monthLayout) }

// submittedSK orders a month's jobs by submission time, then id.
func submittedSK(j *job.Job) string {
	return j.SubmittedAt.UTC().Format(sortTimeLayout) + "#" + j.ID
}

func isLive(s job.State) bool {
	for _, l := range job.Live {
		if s == l {
			return true
		}
	}
	return false
}

// marshalJob returns the item of j: keys, the live index attributes while j
// is live, the submitted index attributes, and every field as its own
// attribute. Empty strings, zero times and nil pointers, maps and slices are
// left out; reading them back gives the zero value, so a job round-trips
// exactly (times come back in UTC). The TTL attribute is the store's to add
// (see expiresAt).
func marshalJob(j *job.Job) (item, error) {
	it := jobKey(j.ID)
	if isLive(j.State) {
		it[attrLivePK] = str(livePK(j.State))
		it[attrLiveSK] = str(liveSK(j))
	}
	it[attrSubmittedPK] = str(submittedPK(j.SubmittedAt))
	it[attrSubmittedSK] = str(submittedSK(j))
	it["id"] = str(j.ID)
	putS(it, "name", j.Name)
	it["spec"] = marshalSpec(&j.Spec)
	// state is written even when empty, so that the condition on it in
	// Update behaves as the memory store's comparison does.
	it["state"] = str(string(j.State))
	it["version"] = num(j.Version)
	putS(it, "reason", j.Reason)
	it["attempt"] = num(j.Attempt)
	if j.Resumes != 0 {
		it["resumes"] = num(j.Resumes)
	}
	putS(it, "pool", j.Pool)
	it["priority"] = num(j.Priority)
	putT(it, "submitted_at", j.SubmittedAt)
	putS(it, "instance_id", j.InstanceID)
	putS(it, "instance_type", j.InstanceType)
	putS(it, "market", j.Market)
	if j.LaunchTry != 0 {
		it["launch_try"] = num(j.LaunchTry)
	}
	putT(it, "dispatched_at", j.DispatchedAt)
	putS(it, "command_id", j.CommandID)
	putS(it, "log_stream", j.LogStream)
	putT(it, "stalled_at", j.StalledAt)
	putT(it, "cancel_requested_at", j.CancelRequestedAt)
	putS(it, "cancel_reason", j.CancelReason)
	putS(it, "stop_command_id", j.StopCommandID)
	putT(it, "stop_sent_at", j.StopSentAt)
	if j.ExitCode != nil {
		it["exit_code"] = num(*j.ExitCode)
	}
	putT(it, "placed_at", j.PlacedAt)
	putT(it, "started_at", j.StartedAt)
	putT(it, "ended_at", j.EndedAt)
	putT(it, "updated_at", j.UpdatedAt)
	if j.Cost != 0 {
		if math.IsNaN(j.Cost) || math.IsInf(j.Cost, 0) {
			return nil, fmt.Errorf("job %s: cost %v is not a number DynamoDB can store", j.ID, j.Cost)
		}
		it["cost"] = &types.AttributeValueMemberN{Value: strconv.FormatFloat(j.Cost, 'g', -1, 64)}
	}
	putS(it, "source", j.Source)
	if j.History != nil {
		it["history"] = historyList(j.History)
	}
	if j.HistoryDropped != 0 {
		it["history_dropped"] = num(j.HistoryDropped)
	}
	return it, nil
}

func historyList(h []job.Transition) *types.AttributeValueMemberL {
	l := make([]types.AttributeValue, len(h))
	for i, t := range h {
		m := item{}
		putT(m, "at", t.At)
		putS(m, "from", string(t.From))
		putS(m, "to", string(t.To))
		putS(m, "reason", t.Reason)
		if t.Attempt != 0 {
			m["attempt"] = num(t.Attempt)
		}
		putS(m, "instance_id", t.InstanceID)
		putS(m, "instance_type", t.InstanceType)
		putS(m, "command_id", t.CommandID)
		putS(m, "log_stream", t.LogStream)
		l[i] = &types.AttributeValueMemberM{Value: m}
	}
	return &types.AttributeValueMemberL{Value: l}
}

func marshalSpec(s *job.Spec) *types.AttributeValueMemberM {
	m := item{}
	putS(m, "id", s.ID)
	putS(m, "name", s.Name)
	putS(m, "command", s.Command)
	putS(m, "workdir", s.Workdir)
	putS(m, "setup", s.Setup)
	if s.Env != nil {
		env := make(item, len(s.Env))
		for k, v := range s.Env {
			if v.Secret() {
				// A reference to a parameter: its name, never a value.
				env[k] = &types.AttributeValueMemberM{Value: item{"ssm": str(v.SSM)}}
				continue
			}
			env[k] = str(v.Value)
		}
		m["env"] = &types.AttributeValueMemberM{Value: env}
	}
	in := item{}
	putS(in, "pool", s.Instance.Pool)
	if s.Instance.Types != nil {
		in["types"] = strList(s.Instance.Types)
	}
	putS(in, "market", s.Instance.Market)
	if s.Instance.VolumeGB != 0 {
		in["volume_gb"] = num(s.Instance.VolumeGB)
	}
	putS(in, "ami", s.Instance.AMI)
	m["instance"] = &types.AttributeValueMemberM{Value: in}
	// max_runtime is in nanoseconds: exact, unlike seconds or duration text.
	m["max_runtime"] = num(int64(s.MaxRuntime))
	if s.Inputs != nil {
		m["inputs"] = syncList(s.Inputs)
	}
	if s.Outputs != nil {
		m["outputs"] = syncList(s.Outputs)
	}
	if s.Retries != nil {
		m["retries"] = num(*s.Retries)
	}
	m["priority"] = num(s.Priority)
	putS(m, "notify", s.Notify)
	putS(m, "scheduled_at", s.ScheduledAt)
	putS(m, "on_stall", s.OnStall)
	if s.StallTimeout != 0 {
		m["stall_timeout"] = num(int64(s.StallTimeout))
	}
	if s.MaxWait != 0 {
		m["max_wait"] = num(int64(s.MaxWait))
	}
	if n := s.Notebook; n != nil {
		// The idle timeouts in nanoseconds, as max_runtime.
		m["notebook"] = &types.AttributeValueMemberM{Value: item{"name": str(n.Name), "idle": num(int64(n.Idle)), "idle_connected": num(int64(n.IdleConnected))}}
	}
	if c := s.Checkpoint; c != nil {
		ck := item{}
		putS(ck, "path", c.Path)
		putS(ck, "s3", c.S3)
		if c.Every != 0 {
			ck["every"] = num(int64(c.Every)) // nanoseconds, as max_runtime
		}
		m["checkpoint"] = &types.AttributeValueMemberM{Value: ck}
	}
	return &types.AttributeValueMemberM{Value: m}
}

func syncList(ss []job.Sync) *types.AttributeValueMemberL {
	l := make([]types.AttributeValue, len(ss))
	for i, s := range ss {
		m := item{}
		putS(m, "s3", s.S3)
		putS(m, "path", s.Path)
		l[i] = &types.AttributeValueMemberM{Value: m}
	}
	return &types.AttributeValueMemberL{Value: l}
}

func strList(ss []string) *types.AttributeValueMemberL {
	l := make([]types.AttributeValue, len(ss))
	for i, s := range ss {
		l[i] = str(s)
	}
	return &types.AttributeValueMemberL{Value: l}
}

// unmarshalJob is the inverse of marshalJob. Attributes it does not know
// (keys, index attributes, anything added later) are ignored.
func unmarshalJob(it item) (*job.Job, error) {
	d := decoder{it: it}
	j := &job.Job{
		ID:             d.s("id"),
		Name:           d.s("name"),
		State:          job.State(d.s("state")),
		Version:        d.i64("version"),
		Reason:         d.s("reason"),
		Attempt:        d.int("attempt"),
		Resumes:        d.int("resumes"),
		Pool:           d.s("pool"),
		Priority:       d.int("priority"),
		SubmittedAt:    d.t("submitted_at"),
		InstanceID:     d.s("instance_id"),
		InstanceType:   d.s("instance_type"),
		Market:         d.s("market"),
		LaunchTry:      d.int("launch_try"),
		DispatchedAt:   d.t("dispatched_at"),
		CommandID:      d.s("command_id"),
		LogStream:      d.s("log_stream"),
		StalledAt:      d.t("stalled_at"),
		ExitCode:       d.intPtr("exit_code"),
		PlacedAt:       d.t("placed_at"),
		StartedAt:      d.t("started_at"),
		EndedAt:        d.t("ended_at"),
		UpdatedAt:      d.t("updated_at"),
		Cost:           d.f64("cost"),
		Source:         d.s("source"),
		History:        d.history("history"),
		HistoryDropped: d.int("history_dropped"),

		CancelRequestedAt: d.t("cancel_requested_at"),
		CancelReason:      d.s("cancel_reason"),
		StopCommandID:     d.s("stop_command_id"),
		StopSentAt:        d.t("stop_sent_at"),
	}
	if sm, ok := d.m("spec"); ok {
		sd := decoder{it: sm, path: "spec."}
		j.Spec = sd.spec()
		d.setErr(sd.err)
	}
	if d.err != nil {
		return nil, fmt.Errorf("decode job %s: %w", j.ID, d.err)
	}
	return j, nil
}

func (d *decoder) spec() job.Spec {
	s := job.Spec{
		ID:           d.s("id"),
		Name:         d.s("name"),
		Command:      d.s("command"),
		Workdir:      d.s("workdir"),
		Setup:        d.s("setup"),
		Env:          d.env("env"),
		MaxRuntime:   job.Duration(d.i64("max_runtime")),
		Inputs:       d.syncs("inputs"),
		Outputs:      d.syncs("outputs"),
		Retries:      d.intPtr("retries"),
		Priority:     d.int("priority"),
		Notify:       d.s("notify"),
		ScheduledAt:  d.s("scheduled_at"),
		OnStall:      d.s("on_stall"),
		StallTimeout: job.Duration(d.i64("stall_timeout")),
		MaxWait:      job.Duration(d.i64("max_wait")),
	}
	if im, ok := d.m("instance"); ok {
		in := decoder{it: im, path: d.path + "instance."}
		s.Instance = job.Instance{
			Pool:     in.s("pool"),
			Types:    in.strs("types"),
			Market:   in.s("market"),
			VolumeGB: in.int("volume_gb"),
			AMI:      in.s("ami"),
		}
		d.setErr(in.err)
	}
	if nm, ok := d.m("notebook"); ok {
		nd := decoder{it: nm, path: d.path + "notebook."}
		s.Notebook = &job.Notebook{Name: nd.s("name"), Idle: job.Duration(nd.i64("idle")), IdleConnected: job.Duration(nd.i64("idle_connected"))}
		d.setErr(nd.err)
	}
	if cm, ok := d.m("checkpoint"); ok {
		cd := decoder{it: cm, path: d.path + "checkpoint."}
		s.Checkpoint = &job.Checkpoint{Path: cd.s("path"), S3: cd.s("s3"), Every: job.Duration(cd.i64("every"))}
		d.setErr(cd.err)
	}
	return s
}

// marshalLease returns the item of a lease.
func marshalLease(l Lease) item {
	it := leaseKey(l.InstanceID)
	putS(it, "instance_id", l.InstanceID)
	putS(it, "pool", l.Pool)
	putS(it, "job_id", l.JobID)
	if l.Attempt != 0 {
		it["attempt"] = num(l.Attempt)
	}
	putT(it, "idle_since", l.IdleSince)
	putT(it, "stopping_at", l.StoppingAt)
	it["version"] = num(l.Version)
	return it
}

func unmarshalLease(it item) (Lease, error) {
	d := decoder{it: it}
	l := Lease{
		InstanceID: d.s("instance_id"),
		Pool:       d.s("pool"),
		JobID:      d.s("job_id"),
		Attempt:    d.int("attempt"),
		IdleSince:  d.t("idle_since"),
		StoppingAt: d.t("stopping_at"),
		Version:    d.i64("version"),
	}
	if d.err != nil {
		return Lease{}, fmt.Errorf("decode lease %s: %w", l.InstanceID, d.err)
	}
	return l, nil
}

func str(s string) *types.AttributeValueMemberS { return &types.AttributeValueMemberS{Value: s} }

func num[T int | int64](n T) *types.AttributeValueMemberN {
	return &types.AttributeValueMemberN{Value: strconv.FormatInt(int64(n), 10)}
}

func timeValue(t time.Time) *types.AttributeValueMemberS {
	return str(t.UTC().Format(time.RFC3339Nano))
}

func putS(it item, name, s string) {
	if s != "" {
		it[name] = str(s)
	}
}

func putT(it item, name string, t time.Time) {
	if !t.IsZero() {
		it[name] = timeValue(t)
	}
}

// decoder reads attributes of one map, keeping the first error, so that a
// whole record decodes in one expression.
type decoder struct {
	it   item
	path string
	err  error
}

func (d *decoder) setErr(err error) {
	if d.err == nil {
		d.err = err
	}
}

func (d *decoder) fail(name, want string) {
	d.setErr(fmt.Errorf("attribute %s%s: want %s, got %T", d.path, name, want, d.it[name]))
}

func (d *decoder) s(name string) string {
	switch v := d.it[name].(type) {
	case nil:
	case *types.AttributeValueMemberS:
		return v.Value
	default:
		d.fail(name, "S")
	}
	return ""
}

func (d *decoder) n(name string) (string, bool) {
	switch v := d.it[name].(type) {
	case nil:
	case *types.AttributeValueMemberN:
		return v.Value, true
	default:
		d.fail(name, "N")
	}
	return "", false
}

func (d *decoder) i64(name string) int64 {
	s, ok := d.n(name)
	if !ok {
		return 0
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		d.setErr(fmt.Errorf("attribute %s%s: %w", d.path, name, err))
	}
	return n
}

func (d *decoder) int(name string) int {
	s, ok := d.n(name)
	if !ok {
		return 0
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		d.setErr(fmt.Errorf("attribute %s%s: %w", d.path, name, err))
	}
	return n
}

func (d *decoder) intPtr(name string) *int {
	if d.it[name] == nil {
		return nil
	}
	n := d.int(name)
	return &n
}

func (d *decoder) f64(name string) float64 {
	s, ok := d.n(name)
	if !ok {
		return 0
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		d.setErr(fmt.Errorf("attribute %s%s: %w", d.path, name, err))
	}
	return f
}

func (d *decoder) t(name string) time.Time {
	s := d.s(name)
	if s == "" {
		return time.Time{}
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		d.setErr(fmt.Errorf("attribute %s%s: %w", d.path, name, err))
	}
	return t
}

func (d *decoder) m(name string) (item, bool) {
	switch v := d.it[name].(type) {
	case nil:
	case *types.AttributeValueMemberM:
		return v.Value, true
	default:
		d.fail(name, "M")
	}
	return nil, false
}

func (d *decoder) l(name string) ([]types.AttributeValue, bool) {
	switch v := d.it[name].(type) {
	case nil:
	case *types.AttributeValueMemberL:
		return v.Value, true
	default:
		d.fail(name, "L")
	}
	return nil, false
}

// env reads a job's env: each value a string, or a map {"ssm": NAME} for
// a reference to a parameter.
func (d *decoder) env(name string) job.Env {
	m, ok := d.m(name)
	if !ok {
		return nil
	}
	out := make(job.Env, len(m))
	sub := decoder{it: m, path: d.path + name + "."}
	for k, v := range m {
		if ref, ok := v.(*types.AttributeValueMemberM); ok {
			rd := decoder{it: ref.Value, path: sub.path + k + "."}
			out[k] = job.EnvValue{SSM: rd.s("ssm")}
			sub.setErr(rd.err)
			continue
		}
		out[k] = job.EnvValue{Value: sub.s(k)}
	}
	d.setErr(sub.err)
	return out
}

func (d *decoder) strs(name string) []string {
	l, ok := d.l(name)
	if !ok {
		return nil
	}
	out := make([]string, len(l))
	for i, v := range l {
		s, ok := v.(*types.AttributeValueMemberS)
		if !ok {
			d.setErr(fmt.Errorf("attribute %s%s[%d]: want S, got %T", d.path, name, i, v))
			continue
		}
		out[i] = s.Value
	}
	return out
}

// maps decodes the list attribute name, each element a map, with each.
func maps[T any](d *decoder, name string, each func(sub *decoder) T) []T {
	l, ok := d.l(name)
	if !ok {
		return nil
	}
	out := make([]T, len(l))
	for i, v := range l {
		m, ok := v.(*types.AttributeValueMemberM)
		if !ok {
			d.setErr(fmt.Errorf("attribute %s%s[%d]: want M, got %T", d.path, name, i, v))
			continue
		}
		sub := decoder{it: m.Value, path: fmt.Sprintf("%s%s[%d].", d.path, name, i)}
		out[i] = each(&sub)
		d.setErr(sub.err)
	}
	return out
}

func (d *decoder) history(name string) []job.Transition {
	return maps(d, name, func(sub *decoder) job.Transition {
		return job.Transition{
			At:           sub.t("at"),
			From:         job.State(sub.s("from")),
			To:           job.State(sub.s("to")),
			Reason:       sub.s("reason"),
			Attempt:      sub.int("attempt"),
			InstanceID:   sub.s("instance_id"),
			InstanceType: sub.s("instance_type"),
			CommandID:    sub.s("command_id"),
			LogStream:    sub.s("log_stream"),
		}
	})
}

func (d *decoder) syncs(name string) []job.Sync {
	return maps(d, name, func(sub *decoder) job.Sync { return job.Sync{S3: sub.s("s3"), Path: sub.s("path")} })
}
