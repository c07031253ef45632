package deploy

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/google/go-cmp/cmp"

	"github.com/nightshift-dev/nightshift/internal/config"
	"github.com/nightshift-dev/nightshift/internal/store"
)

// tableShape is what the template and store.TableInput must agree on, as
// sorted text: "name:type" attributes, "name:KEYTYPE" keys, and each index
// as "index keys projection".
type tableShape struct {
	Billing    string
	Attributes []string
	Keys       string
	Indexes    []string
	TTL        string // "attribute:enabled"
}

// TestTableMatchesStore checks that the jobs table of template.yaml is the
// one the store is written for, and tested on: store.TableInput (the
// CreateTable request the tests use) and store.TimeToLive.
func TestTableMatchesStore(t *testing.T) {
	tpl := loadTemplate(t)
	tables := tpl.resources("AWS::DynamoDB::Table")
	tbl, ok := tables["JobsTable"]
	if !ok {
		t.Fatalf("template has no JobsTable; tables %v", sortedKeys(tables))
	}
	p := mapping(tbl["Properties"])
	got := tableShape{Billing: str(p["BillingMode"]), Keys: keySchema(p["KeySchema"])}
	for _, a := range items(p["AttributeDefinitions"]) {
		got.Attributes = append(got.Attributes, str(get(a, "AttributeName"))+":"+str(get(a, "AttributeType")))
	}
	for _, gsi := range items(p["GlobalSecondaryIndexes"]) {
		got.Indexes = append(got.Indexes, fmt.Sprintf("%s %s %s", str(get(gsi, "IndexName")), keySchema(get(gsi, "KeySchema")), str(get(gsi, "Projection", "ProjectionType"))))
	}
	if ttl := get(p, "TimeToLiveSpecification"); ttl != nil {
		got.TTL = fmt.Sprintf("%s:%v", str(get(ttl, "AttributeName")), get(ttl, "Enabled"))
	}

	in := store.TableInput("jobs")
	want := tableShape{Billing: string(in.BillingMode), Keys: sdkKeySchema(in.KeySchema)}
	for _, a := range in.AttributeDefinitions {
		want.Attributes = append(want.Attributes, aws.ToString(a.AttributeName)+":"+string(a.AttributeType))
	}
	for _, gsi := range in.GlobalSecondaryIndexes {
		want.Indexes = append(want.Indexes, fmt.Sprintf("%s %s %s", aws.ToString(gsi.IndexName), sdkKeySchema(gsi.KeySchema), gsi.Projection.ProjectionType))
	}
	spec := store.TimeToLive("jobs").TimeToLiveSpecification
	want.TTL = fmt.Sprintf("%s:%v", aws.ToString(spec.AttributeName), aws.ToBool(spec.Enabled))

	for _, s := range []*tableShape{&got, &want} {
		slices.Sort(s.Attributes)
		slices.Sort(s.Indexes)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("JobsTable differs from store.TableInput and store.TimeToLive (-store +template):\n%s", diff)
	}
}

func sdkKeySchema(ks []types.KeySchemaElement) string {
	var parts []string
	for _, k := range ks {
		parts = append(parts, aws.ToString(k.AttributeName)+":"+string(k.KeyType))
	}
	return strings.Join(parts, " ")
}

// TestRetentionParameter checks RetentionDays end to end: the parameter's
// bounds are those the functions accept, it reaches every function as
// NIGHTSHIFT_RETENTION_DAYS, and its default reads as 90 days.
func TestRetentionParameter(t *testing.T) {
	tpl := loadTemplate(t)
	p := mapping(get(tpl, "Parameters", "RetentionDays"))
	if str(p["Type"]) != "Number" {
		t.Errorf("RetentionDays Type = %q; want Number", str(p["Type"]))
	}
	for name, want := range map[string]float64{"MinValue": 0, "MaxValue": config.MaxRetentionDays, "Default": 90} {
		if got, ok := num(p[name]); !ok || got != want {
			t.Errorf("RetentionDays %s = %v; want %v", name, p[name], want)
		}
	}
	if d := str(p["Description"]); !strings.Contains(d, "0 keeps records for ever") {
		t.Errorf("RetentionDays Description = %q; want it to say that 0 keeps records for ever", d)
	}
	funcs := tpl.functions()
	for _, id := range sortedKeys(funcs) {
		v := get(funcs[id], "Environment", "Variables", "NIGHTSHIFT_RETENTION_DAYS")
		if got := pattern(v); got != "${RetentionDays}" {
			t.Errorf("%s NIGHTSHIFT_RETENTION_DAYS = %q; want ${RetentionDays}", id, got)
		}
	}
	tests := []struct {
		give string
		want time.Duration
	}{
		{give: fillDefaults(t, tpl, "${RetentionDays}"), want: 90 * 24 * time.Hour},
		{give: "0", want: 0},
		{give: fmt.Sprint(config.MaxRetentionDays), want: config.MaxRetentionDays * 24 * time.Hour},
	}
	for _, tt := range tests {
		env := map[string]string{"NIGHTSHIFT_TABLE": "jobs", "NIGHTSHIFT_RETENTION_DAYS": tt.give}
		s, err := config.FromEnv(func(k string) string { return env[k] })
		if err != nil || s.Retention != tt.want {
			t.Errorf("FromEnv(NIGHTSHIFT_RETENTION_DAYS=%s).Retention = %v, %v; want %v, nil", tt.give, s.Retention, err, tt.want)
		}
	}
}
