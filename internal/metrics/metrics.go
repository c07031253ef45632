// Package metrics writes nightshift's own CloudWatch metrics as log lines in
// the embedded metric format (EMF): a JSON document whose "_aws" member
// tells CloudWatch Logs which of its other members are metrics, in which
// namespace and under which dimensions. Lambda sends what a function logs
// to its log group, and CloudWatch Logs turns each such line into metrics:
// no PutMetricData call, no permission, no latency on the handler.
//
// Every document is in the namespace "nightshift" with the dimension Stack,
// so that two stacks in one account do not mix. The stack is an attribute
// of the logger (WithStack), which puts it on the line's root, where EMF
// reads dimension values. The package knows no AWS SDK: it writes JSON.
//
// The watchdog publishes its figures once per tick (Tick); each job that
// ends is counted where its end is written (JobEnded, from the store that
// internal/service wires). docs/metrics.md lists every metric.
package metrics

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strings"
	"time"

	"github.com/nightshift-dev/nightshift/internal/job"
)

// Namespace is the CloudWatch namespace of every nightshift metric.
const Namespace = "nightshift"

// The dimensions.
const (
	// Stack is on every metric: the CloudFormation stack's name.
	Stack = "Stack"
	// State is on JobsEnded: the state the job ended in.
	State = "State"
)

// Message is the log message of every line that carries a document.
const Message = "metrics"

// Limits of the EMF specification.
const (
	// MaxMetrics is the most MetricDefinition objects one directive (and
	// so one document here) may hold.
	MaxMetrics = 100
	// MaxDimensions is the most keys one DimensionSet may hold.
	MaxDimensions = 30
	// maxName bounds metric and dimension names (CloudWatch's 255).
	maxName = 255
	// maxDimensionValue bounds a dimension value (CloudWatch's 1024).
	maxDimensionValue = 1024
)

// Unit is a CloudWatch unit; EMF takes the names MetricDatum lists.
type Unit string

// The units nightshift's metrics use. USD is no CloudWatch unit: the spend
// metrics say it in their names and are unitless.
const (
	Count Unit = "Count"
	None  Unit = "None"
)

// Metric is one figure of a document.
type Metric struct {
	Name  string
	Unit  Unit
	Value float64
}

// Dimension is one dimension of a document besides Stack.
type Dimension struct {
	Name, Value string
}

// Document is one EMF document: metrics of one time under one dimension
// set, Stack (from the logger) and Dimensions.
type Document struct {
	Time       time.Time
	Dimensions []Dimension
	Metrics    []Metric
}

// reserved are root members a metric or dimension may not take: EMF's own,
// slog's and Lambda's record keys, and the stack (from the logger).
var reserved = map[string]bool{
	"_aws": true, Stack: true, slog.TimeKey: true, slog.LevelKey: true, slog.MessageKey: true,
	slog.SourceKey: true, "timestamp": true, "message": true, "requestId": true,
}

// Check holds d to the EMF specification and CloudWatch's limits: at most
// MaxMetrics metrics and MaxDimensions dimensions (Stack included), names
// of 1 to 255 characters, each root member once, dimension values of
// printable ASCII, finite values, a time.
func (d Document) Check() error {
	if d.Time.IsZero() {
		return errors.New("metrics: a document needs a time")
	}
	if len(d.Metrics) == 0 || len(d.Metrics) > MaxMetrics {
		return fmt.Errorf("metrics: %d metrics in one document; want 1 to %d", len(d.Metrics), MaxMetrics)
	}
	if len(d.Dimensions)+1 > MaxDimensions {
		return fmt.Errorf("metrics: %d dimensions with %s; want at most %d", len(d.Dimensions)+1, Stack, MaxDimensions)
	}
	seen := map[string]bool{}
	name := func(n string) error {
		switch {
		case n == "" || len(n) > maxName:
			return fmt.Errorf("metrics: name %q: want 1 to %d characters", n, maxName)
		case reserved[n] || seen[n]:
			return fmt.Errorf("metrics: name %q is taken on the line", n)
		}
		seen[n] = true
		return nil
	}
	for _, dim := range d.Dimensions {
		if err := name(dim.Name); err != nil {
			return err
		}
		if !printable(dim.Value) || strings.TrimSpace(dim.Value) == "" || len(dim.Value) > maxDimensionValue {
			return fmt.Errorf("metrics: dimension %s = %q: want 1 to %d printable ASCII characters", dim.Name, dim.Value, maxDimensionValue)
		}
	}
	for _, m := range d.Metrics {
		if err := name(m.Name); err != nil {
			return err
		}
		if math.IsNaN(m.Value) || math.IsInf(m.Value, 0) {
			return fmt.Errorf("metrics: %s = %v: want a finite number", m.Name, m.Value)
		}
		if m.Unit != Count && m.Unit != None {
			return fmt.Errorf("metrics: %s unit %q: want %s or %s", m.Name, m.Unit, Count, None)
		}
	}
	return nil
}

// printable reports whether s is printable ASCII, as CloudWatch wants of
// dimension values.
func printable(s string) bool {
	for _, r := range s {
		if r < 0x20 || r > 0x7e {
			return false
		}
	}
	return true
}

// metadata is the "_aws" member.
type metadata struct {
	Timestamp         int64       `json:"Timestamp"`
	CloudWatchMetrics []directive `json:"CloudWatchMetrics"`
}

type directive struct {
	Namespace  string       `json:"Namespace"`
	Dimensions [][]string   `json:"Dimensions"`
	Metrics    []definition `json:"Metrics"`
}

type definition struct {
	Name string `json:"Name"`
	Unit Unit   `json:"Unit"`
}

// attrs returns d's root members as log attributes: "_aws", then the
// dimensions, then the metrics, in d's order.
func (d Document) attrs() ([]slog.Attr, error) {
	if err := d.Check(); err != nil {
		return nil, err
	}
	set := []string{Stack}
	for _, dim := range d.Dimensions {
		set = append(set, dim.Name)
	}
	dir := directive{Namespace: Namespace, Dimensions: [][]string{set}}
	for _, m := range d.Metrics {
		dir.Metrics = append(dir.Metrics, definition{Name: m.Name, Unit: m.Unit})
	}
	meta, err := json.Marshal(metadata{Timestamp: d.Time.UnixMilli(), CloudWatchMetrics: []directive{dir}})
	if err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	out := []slog.Attr{slog.Any("_aws", json.RawMessage(meta))}
	for _, dim := range d.Dimensions {
		out = append(out, slog.String(dim.Name, dim.Value))
	}
	for _, m := range d.Metrics {
		out = append(out, slog.Float64(m.Name, m.Value))
	}
	return out, nil
}

// WithStack returns log with the Stack dimension every document needs: a
// logger that Emit, JobEnded and the tick write their documents to must
// come from it. Lambda's JSON log format keeps the attribute at the root.
func WithStack(log *slog.Logger, stack string) *slog.Logger {
	return log.With(slog.String(Stack, stack))
}

// Emit writes each document as one log line at INFO, the level the
// template's functions log at (a line Lambda filters out makes no metric).
// The log must write JSON (Lambda's JSON log format) and carry the stack
// (WithStack). A document that breaks the specification is not written.
func Emit(ctx context.Context, log *slog.Logger, docs ...Document) error {
	for _, d := range docs {
		attrs, err := d.attrs()
		if err != nil {
			return err
		}
		log.LogAttrs(ctx, slog.LevelInfo, Message, attrs...)
	}
	return nil
}

// JobsEnded counts the jobs that ended, by the State they ended in.
const JobsEnded = "JobsEnded"

// JobEnded counts one job that ended in state s at at: SUCCEEDED, FAILED,
// TIMED_OUT, CANCELLED or REJECTED; any other state is no end and is not
// counted. It writes one document, JobsEnded = 1 with the dimensions Stack
// and State. log must carry the stack (WithStack).
func JobEnded(ctx context.Context, log *slog.Logger, s job.State, at time.Time) {
	if !s.Terminal() {
		return
	}
	// The document is fixed but for its state and time, both valid:
	// Emit cannot refuse it.
	_ = Emit(ctx, log, Document{
		Time:       at,
		Dimensions: []Dimension{{Name: State, Value: string(s)}},
		Metrics:    []Metric{{Name: JobsEnded, Unit: Count, Value: 1}},
	})
}
