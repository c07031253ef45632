package metrics

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"
)

// Parsed is a log line read as CloudWatch Logs reads an EMF document.
type Parsed struct {
	Time      time.Time
	Namespace string
	// Dimensions are the dimension sets, each a list of names.
	Dimensions [][]string
	// DimensionValues are the values of the names the sets use.
	DimensionValues map[string]string
	// Values and Units are the metrics, by name.
	Values map[string]float64
	Units  map[string]Unit
	// Names are the metrics' names in the document's order.
	Names []string
}

// units are the units a MetricDefinition may give (the specification's
// JSON schema: MetricDatum's units).
var units = []Unit{
	"Seconds", "Microseconds", "Milliseconds", "Bytes", "Kilobytes", "Megabytes", "Gigabytes", "Terabytes",
	"Bits", "Kilobits", "Megabits", "Gigabits", "Terabits", "Percent", "Count",
	"Bytes/Second", "Kilobytes/Second", "Megabytes/Second", "Gigabytes/Second", "Terabytes/Second",
	"Bits/Second", "Kilobits/Second", "Megabits/Second", "Gigabits/Second", "Terabits/Second", "Count/Second", "None",
}

// ErrNotEMF: the line is JSON but no EMF document (no "_aws" member).
var ErrNotEMF = errors.New("not an embedded metric format document")

// Parse reads one log line as an EMF document and holds it to the
// specification: a JSON object and nothing else, each member once; "_aws"
// with an integer Timestamp in milliseconds and at least one directive; a
// directive with a Namespace, at least one dimension set of at most
// MaxDimensions names and at most MaxMetrics metric definitions; every
// name a root member, a dimension's a string, a metric's a number (or at
// most 100 numbers); units from the specification's list. A directive's
// metrics are read under one namespace: nightshift writes one directive.
func Parse(line []byte) (Parsed, error) {
	var p Parsed
	root, err := members(line)
	if err != nil {
		return p, err
	}
	raw, ok := root["_aws"]
	if !ok {
		return p, ErrNotEMF
	}
	var meta struct {
		Timestamp         *json.Number `json:"Timestamp"`
		CloudWatchMetrics []struct {
			Namespace  string            `json:"Namespace"`
			Dimensions [][]string        `json:"Dimensions"`
			Metrics    []json.RawMessage `json:"Metrics"`
		} `json:"CloudWatchMetrics"`
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&meta); err != nil {
		return p, fmt.Errorf("_aws: %w", err)
	}
	if meta.Timestamp == nil {
		return p, errors.New("_aws.Timestamp: missing")
	}
	ms, err := meta.Timestamp.Int64()
	if err != nil {
		return p, fmt.Errorf("_aws.Timestamp %s: want integer milliseconds since 1970", *meta.Timestamp)
	}
	p.Time = time.UnixMilli(ms).UTC()
	if len(meta.CloudWatchMetrics) == 0 {
		return p, errors.New("_aws.CloudWatchMetrics: no directive")
	}
	p.DimensionValues, p.Values, p.Units = map[string]string{}, map[string]float64{}, map[string]Unit{}
	for k, d := range meta.CloudWatchMetrics {
		where := fmt.Sprintf("_aws.CloudWatchMetrics[%d]", k)
		if d.Namespace == "" || len(d.Namespace) > maxName {
			return p, fmt.Errorf("%s.Namespace %q: want 1 to %d characters", where, d.Namespace, maxName)
		}
		if p.Namespace != "" && p.Namespace != d.Namespace {
			return p, fmt.Errorf("%s.Namespace %q: a second namespace after %q", where, d.Namespace, p.Namespace)
		}
		p.Namespace = d.Namespace
		if len(d.Dimensions) == 0 {
			return p, fmt.Errorf("%s.Dimensions: no dimension set", where)
		}
		for _, set := range d.Dimensions {
			if len(set) > MaxDimensions {
				return p, fmt.Errorf("%s.Dimensions %v: %d names; the limit is %d", where, set, len(set), MaxDimensions)
			}
			for _, name := range set {
				var v string
				if err := json.Unmarshal(root[name], &v); err != nil || root[name] == nil {
					return p, fmt.Errorf("%s: dimension %q: want a string member on the root", where, name)
				}
				p.DimensionValues[name] = v
			}
			p.Dimensions = append(p.Dimensions, set)
		}
		if len(d.Metrics) == 0 || len(d.Metrics) > MaxMetrics {
			return p, fmt.Errorf("%s.Metrics: %d definitions; want 1 to %d", where, len(d.Metrics), MaxMetrics)
		}
		for _, rm := range d.Metrics {
			var def struct {
				Name string `json:"Name"`
				Unit *Unit  `json:"Unit"`
			}
			if err := json.Unmarshal(rm, &def); err != nil || def.Name == "" || len(def.Name) > maxName {
				return p, fmt.Errorf("%s.Metrics %s: want a Name of 1 to %d characters", where, rm, maxName)
			}
			unit := None
			if def.Unit != nil {
				unit = *def.Unit
			}
			if !slices.Contains(units, unit) {
				return p, fmt.Errorf("%s: metric %s: unit %q is not a CloudWatch unit", where, def.Name, unit)
			}
			v, err := value(root[def.Name])
			if err != nil {
				return p, fmt.Errorf("%s: metric %s: %w", where, def.Name, err)
			}
			if _, dup := p.Values[def.Name]; dup {
				return p, fmt.Errorf("%s: metric %s defined twice", where, def.Name)
			}
			p.Values[def.Name], p.Units[def.Name] = v, unit
			p.Names = append(p.Names, def.Name)
		}
	}
	return p, nil
}

// value reads a metric target: a number, or an array of at most 100
// numbers (their sum is returned: nightshift writes single values).
func value(raw json.RawMessage) (float64, error) {
	if raw == nil {
		return 0, errors.New("no such member on the root")
	}
	var v float64
	if err := json.Unmarshal(raw, &v); err == nil {
		return v, nil
	}
	var vs []float64
	if err := json.Unmarshal(raw, &vs); err != nil {
		return 0, fmt.Errorf("%s: want a number or an array of numbers", raw)
	}
	if len(vs) > 100 {
		return 0, fmt.Errorf("%d values; the limit is 100", len(vs))
	}
	sum := 0.0
	for _, x := range vs {
		sum += x
	}
	return sum, nil
}

// members returns a JSON object's members, refusing anything but one
// object, and a member that appears twice (the specification leaves which
// one counts to the reader).
func members(line []byte) (map[string]json.RawMessage, error) {
	dec := json.NewDecoder(bytes.NewReader(line))
	t, err := dec.Token()
	if err != nil || t != json.Delim('{') {
		return nil, fmt.Errorf("log line is not a JSON object: %.60q", line)
	}
	out := map[string]json.RawMessage{}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return nil, fmt.Errorf("log line: %w", err)
		}
		key := t.(string)
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, fmt.Errorf("log line member %q: %w", key, err)
		}
		if _, dup := out[key]; dup {
			return nil, fmt.Errorf("log line member %q appears twice", key)
		}
		out[key] = v
	}
	if _, err := dec.Token(); err != nil {
		return nil, fmt.Errorf("log line: %w", err)
	}
	if dec.More() || dec.InputOffset() != int64(len(bytes.TrimRight(line, " \t\r\n"))) {
		return nil, errors.New("log line: data after the JSON object")
	}
	return out, nil
}
