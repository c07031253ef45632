package deploy

import (
	"encoding/json"
	"os"
	"reflect"
	"slices"
	"testing"
)

// agentConfigPath is the CloudWatch agent configuration, relative to this
// package. The template inlines it in the CloudWatchAgentConfig parameter.
const agentConfigPath = "../../deploy/cloudwatch-agent.json"

// agentConfigID is the template's parameter holding the agent configuration.
const agentConfigID = "CloudWatchAgentConfig"

// agentConfig is the part of the CloudWatch agent configuration the
// watchdog relies on.
type agentConfig struct {
	Metrics struct {
		Namespace             string            `json:"namespace"`
		AppendDimensions      map[string]string `json:"append_dimensions"`
		AggregationDimensions [][]string        `json:"aggregation_dimensions"`
		MetricsCollected      map[string]struct {
			// Measurement items are names, or objects with a name.
			Measurement               []json.RawMessage `json:"measurement"`
			MetricsCollectionInterval int               `json:"metrics_collection_interval"`
		} `json:"metrics_collected"`
	} `json:"metrics"`
}

// measurements returns the measurement names of one plugin section.
func (c agentConfig) measurements(t *testing.T, plugin string) []string {
	t.Helper()
	var names []string
	for _, raw := range c.Metrics.MetricsCollected[plugin].Measurement {
		var name string
		if err := json.Unmarshal(raw, &name); err != nil {
			var obj struct{ Name string }
			if err := json.Unmarshal(raw, &obj); err != nil {
				t.Fatalf("%s measurement %s: %v", plugin, raw, err)
			}
			name = obj.Name
		}
		names = append(names, name)
	}
	return names
}

func readAgentConfig(t *testing.T) []byte {
	t.Helper()
	raw, err := os.ReadFile(agentConfigPath)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// TestAgentConfigPublishesGPUPerInstance checks that the agent publishes
// what the watchdog queries: namespace CWAgent, metric
// nvidia_smi_utilization_gpu, the single dimension InstanceId (stat
// Maximum, period 60 s, so the busiest GPU of the instance counts).
func TestAgentConfigPublishesGPUPerInstance(t *testing.T) {
	var c agentConfig
	if err := json.Unmarshal(readAgentConfig(t), &c); err != nil {
		t.Fatalf("decode %s: %v", agentConfigPath, err)
	}
	if ns := c.Metrics.Namespace; ns != "" && ns != "CWAgent" {
		t.Errorf("metrics.namespace = %q; want CWAgent (the agent's default), which the watchdog queries", ns)
	}
	if _, ok := c.Metrics.MetricsCollected["nvidia_gpu"]; !ok {
		t.Fatalf("metrics.metrics_collected has no nvidia_gpu section")
	}
	got := c.measurements(t, "nvidia_gpu")
	for _, want := range []string{"utilization_gpu", "utilization_memory", "memory_used", "memory_total", "temperature_gpu"} {
		if !slices.Contains(got, want) {
			t.Errorf("nvidia_gpu measurement = %q; want %s among them", got, want)
		}
	}
	// The metric is named nvidia_smi_<measurement>; a rename would hide it.
	for _, raw := range c.Metrics.MetricsCollected["nvidia_gpu"].Measurement {
		var obj struct {
			Rename string `json:"rename"`
		}
		if json.Unmarshal(raw, &obj) == nil && obj.Rename != "" {
			t.Errorf("nvidia_gpu measurement %s is renamed; the watchdog queries nvidia_smi_utilization_gpu", raw)
		}
	}
	if iv := c.Metrics.MetricsCollected["nvidia_gpu"].MetricsCollectionInterval; iv != 60 {
		t.Errorf("nvidia_gpu metrics_collection_interval = %d; want 60 (the watchdog reads 60 s periods)", iv)
	}
	if got := c.Metrics.AppendDimensions["InstanceId"]; got != "${aws:InstanceId}" {
		t.Errorf("append_dimensions.InstanceId = %q; want ${aws:InstanceId}", got)
	}
	if !slices.ContainsFunc(c.Metrics.AggregationDimensions, func(d []string) bool { return slices.Equal(d, []string{"InstanceId"}) }) {
		t.Errorf("aggregation_dimensions = %q; want [[InstanceId]] so one metric per instance carries InstanceId alone", c.Metrics.AggregationDimensions)
	}
}

// TestAgentConfigInlinedInTemplate keeps the template's copy of the agent
// configuration equal to deploy/cloudwatch-agent.json.
func TestAgentConfigInlinedInTemplate(t *testing.T) {
	tpl := loadTemplate(t)
	param := tpl.resource(agentConfigID)
	if str(param["Type"]) != "AWS::SSM::Parameter" {
		t.Fatalf("%s is a %q; want an AWS::SSM::Parameter", agentConfigID, str(param["Type"]))
	}
	if got := pattern(get(param, "Properties", "Name")); got != "/nightshift/${AWS::StackName}/cloudwatch-agent" {
		t.Errorf("%s Name = %q; want /nightshift/${AWS::StackName}/cloudwatch-agent", agentConfigID, got)
	}
	// A plain string: under Fn::Sub, ${aws:InstanceId} would be read as a
	// variable of the template.
	inline, ok := get(param, "Properties", "Value").(string)
	if !ok {
		t.Fatalf("%s Value = %v; want the configuration as a plain string", agentConfigID, get(param, "Properties", "Value"))
	}
	var want, got any
	if err := json.Unmarshal(readAgentConfig(t), &want); err != nil {
		t.Fatalf("decode %s: %v", agentConfigPath, err)
	}
	if err := json.Unmarshal([]byte(inline), &got); err != nil {
		t.Fatalf("decode %s Value: %v", agentConfigID, err)
	}
	if !reflect.DeepEqual(got, want) {
		g, _ := json.Marshal(got)
		w, _ := json.Marshal(want)
		t.Errorf("%s Value = %s; want the content of %s, %s", agentConfigID, g, agentConfigPath, w)
	}
}

// TestAgentAssociations checks that State Manager installs and configures
// the agent on managed and on watched instances, and on no other.
func TestAgentAssociations(t *testing.T) {
	tpl := loadTemplate(t)
	install := map[string]string{"action": "Install", "name": "AmazonCloudWatchAgent"}
	configure := map[string]string{
		"action":                        "configure",
		"mode":                          "ec2",
		"optionalConfigurationSource":   "ssm",
		"optionalConfigurationLocation": "${" + agentConfigID + "}",
		"optionalRestart":               "yes",
	}
	// found counts, per target tag, the associations of each document.
	found := map[string]map[string]int{}
	for _, id := range sortedKeys(tpl.resources("AWS::SSM::Association")) {
		p := mapping(get(tpl.resource(id), "Properties"))
		doc := str(p["Name"])
		var want map[string]string
		switch doc {
		case "AWS-ConfigureAWSPackage":
			want = install
		case "AmazonCloudWatch-ManageAgent":
			want = configure
		default:
			t.Errorf("%s runs document %q; want AWS-ConfigureAWSPackage or AmazonCloudWatch-ManageAgent", id, doc)
			continue
		}
		params := map[string]string{}
		for k, v := range mapping(p["Parameters"]) {
			vals := items(v)
			if len(vals) != 1 {
				t.Errorf("%s parameter %s = %v; want one value", id, k, v)
				continue
			}
			params[k] = pattern(vals[0])
		}
		if !reflect.DeepEqual(params, want) {
			t.Errorf("%s (%s) Parameters = %v; want %v", id, doc, params, want)
		}
		// One target, one tag, the value "true": never InstanceIds "*" or
		// an instance without one of nightshift's tags.
		targets := items(p["Targets"])
		tag := ""
		if len(targets) == 1 && slices.Equal(items(get(targets[0], "Values")), []any{"true"}) {
			switch key := str(get(targets[0], "Key")); key {
			case "tag:" + managedTag, "tag:" + watchTag:
				tag = key
			}
		}
		if tag == "" {
			t.Errorf("%s Targets = %v; want [{Key: tag:%s or tag:%s, Values: [\"true\"]}]", id, p["Targets"], managedTag, watchTag)
			continue
		}
		if p["InstanceId"] != nil {
			t.Errorf("%s names an InstanceId; want tag targets only", id)
		}
		// The schedule retries a configure that ran before its install
		// finished on a new instance, and restarts a dead agent.
		if str(p["ScheduleExpression"]) == "" {
			t.Errorf("%s has no ScheduleExpression; a failed first run would never be retried", id)
		}
		if found[tag] == nil {
			found[tag] = map[string]int{}
		}
		found[tag][doc]++
	}
	for _, tag := range []string{managedTag, watchTag} {
		for _, doc := range []string{"AWS-ConfigureAWSPackage", "AmazonCloudWatch-ManageAgent"} {
			if n := found["tag:"+tag][doc]; n != 1 {
				t.Errorf("%d associations run %s on instances tagged %s=true; want 1", n, doc, tag)
			}
		}
	}
}
