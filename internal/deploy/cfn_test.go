package deploy

import (
	"fmt"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// templatePath is the SAM template, relative to this package.
const templatePath = "../../template.yaml"

// template is a decoded CloudFormation template: plain maps, slices and
// scalars, with every intrinsic function in its long form ({"Ref": x},
// {"Fn::Sub": s}, {"Fn::GetAtt": [r, a]}, ...), whichever form the YAML used.
type template map[string]any

// loadTemplate reads and decodes templatePath.
func loadTemplate(t *testing.T) template {
	t.Helper()
	raw, err := os.ReadFile(templatePath)
	if err != nil {
		t.Fatalf("read template: %v", err)
	}
	tpl, err := parseTemplate(raw)
	if err != nil {
		t.Fatalf("parse %s: %v", templatePath, err)
	}
	return tpl
}

// parseTemplate decodes CloudFormation YAML, short-form tags included.
func parseTemplate(raw []byte) (template, error) {
	v, err := parseYAML(raw)
	if err != nil {
		return nil, err
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("template is a %T, want a mapping", v)
	}
	return m, nil
}

// parseYAML decodes one YAML document into generic values.
func parseYAML(raw []byte) (any, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		return nil, err
	}
	return decodeNode(&doc)
}

// decodeNode turns a yaml.Node into generic values. A node with a
// CloudFormation short-form tag (!Ref, !Sub, !GetAtt, !If, ...) becomes the
// long form of that intrinsic, with the node's content as its argument.
func decodeNode(n *yaml.Node) (any, error) {
	switch n.Kind {
	case yaml.DocumentNode:
		if len(n.Content) == 0 {
			return nil, nil
		}
		return decodeNode(n.Content[0])
	case yaml.AliasNode:
		return decodeNode(n.Alias)
	}
	if strings.HasPrefix(n.Tag, "!") && !strings.HasPrefix(n.Tag, "!!") {
		return decodeIntrinsic(n)
	}
	switch n.Kind {
	case yaml.MappingNode:
		m := make(map[string]any, len(n.Content)/2)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			val, err := decodeNode(v)
			if err != nil {
				return nil, err
			}
			m[k.Value] = val
		}
		return m, nil
	case yaml.SequenceNode:
		s := make([]any, 0, len(n.Content))
		for _, c := range n.Content {
			val, err := decodeNode(c)
			if err != nil {
				return nil, err
			}
			s = append(s, val)
		}
		return s, nil
	case yaml.ScalarNode:
		return decodeScalar(n)
	}
	return nil, fmt.Errorf("line %d: unexpected YAML node kind %v", n.Line, n.Kind)
}

func decodeScalar(n *yaml.Node) (any, error) {
	switch n.ShortTag() {
	case "!!null":
		return nil, nil
	case "!!bool":
		return strconv.ParseBool(strings.ToLower(n.Value))
	case "!!int":
		return strconv.ParseInt(n.Value, 0, 64)
	case "!!float":
		return strconv.ParseFloat(n.Value, 64)
	}
	return n.Value, nil
}

// decodeIntrinsic decodes a short-form intrinsic: "!Sub s" becomes
// {"Fn::Sub": s}, "!Ref x" {"Ref": x}, "!GetAtt a.b" {"Fn::GetAtt": [a, b]}.
func decodeIntrinsic(n *yaml.Node) (any, error) {
	name := strings.TrimPrefix(n.Tag, "!")
	key := "Fn::" + name
	if name == "Ref" || name == "Condition" {
		key = name
	}
	var arg any
	if n.Kind == yaml.ScalarNode {
		arg = n.Value
	} else {
		plain := *n
		plain.Tag = ""
		var err error
		if arg, err = decodeNode(&plain); err != nil {
			return nil, err
		}
	}
	if s, ok := arg.(string); ok && name == "GetAtt" {
		res, attr, _ := strings.Cut(s, ".")
		arg = []any{res, attr}
	}
	return map[string]any{key: arg}, nil
}

// mapping returns v as a mapping, or nil.
func mapping(v any) map[string]any {
	switch m := v.(type) {
	case map[string]any:
		return m
	case template:
		return m
	}
	return nil
}

// get walks a path of mapping keys; nil when any step is missing.
func get(v any, path ...string) any {
	for _, p := range path {
		m := mapping(v)
		if m == nil {
			return nil
		}
		v = m[p]
	}
	return v
}

// str returns v as a string, or "".
func str(v any) string {
	s, _ := v.(string)
	return s
}

// num returns v as a number.
func num(v any) (float64, bool) {
	switch x := v.(type) {
	case int64:
		return float64(x), true
	case float64:
		return x, true
	case string:
		f, err := strconv.ParseFloat(x, 64)
		return f, err == nil
	}
	return 0, false
}

// isNoValue reports whether v is {"Ref": "AWS::NoValue"}.
func isNoValue(v any) bool {
	return str(get(v, "Ref")) == "AWS::NoValue"
}

// alternatives returns what v may be at deploy time: both branches of an
// Fn::If (recursively), without AWS::NoValue; otherwise v alone.
func alternatives(v any) []any {
	if args, ok := get(v, "Fn::If").([]any); ok && len(args) == 3 && len(mapping(v)) == 1 {
		return append(alternatives(args[1]), alternatives(args[2])...)
	}
	if v == nil || isNoValue(v) {
		return nil
	}
	return []any{v}
}

// items returns the elements of a list-valued property, with Fn::If
// branches of the list and of each element expanded. A single value counts
// as a list of one, as IAM allows.
func items(v any) []any {
	var out []any
	for _, alt := range alternatives(v) {
		if el, ok := splitJoined(alt); ok {
			// A list made from a list parameter: each element is alike.
			out = append(out, el)
			continue
		}
		if list, ok := alt.([]any); ok {
			for _, e := range list {
				out = append(out, alternatives(e)...)
			}
			continue
		}
		out = append(out, alt)
	}
	return out
}

// splitJoined reads the one idiom that makes a list of ARNs from a list
// parameter, each name between the same prefix and suffix:
//
//	!Split [SEP, !Sub [PRE${V}POST, {V: !Join [POST SEP PRE, !Ref LIST]}]]
//
// and returns what each element is, PRE${LIST}POST. PRE and POST must be
// literal (a "${" in the Join's delimiter would stay as it is: Join admits
// no function there, and Sub does not look into a variable's value), and
// SEP must not be in them. Anything else is not the idiom.
func splitJoined(v any) (string, bool) {
	split, ok := get(v, "Fn::Split").([]any)
	if !ok || len(split) != 2 || len(mapping(v)) != 1 {
		return "", false
	}
	sep := str(split[0])
	sub, ok := get(split[1], "Fn::Sub").([]any)
	if !ok || len(sub) != 2 || sep == "" {
		return "", false
	}
	vars := mapping(sub[1])
	if len(vars) != 1 {
		return "", false
	}
	for name, j := range vars {
		join, ok := get(j, "Fn::Join").([]any)
		if !ok || len(join) != 2 {
			return "", false
		}
		list := str(get(join[1], "Ref"))
		pre, post, found := strings.Cut(str(sub[0]), "${"+name+"}")
		if !found || list == "" || str(join[0]) != post+sep+pre ||
			strings.Contains(pre+post, "${") || strings.Contains(pre+post, sep) {
			return "", false
		}
		return pre + "${" + list + "}" + post, true
	}
	return "", false
}

// pattern renders a string-valued property as the text it will have, with
// each part unknown until deploy time (parameters, attributes, pseudo
// parameters) written as "${...}". An intrinsic it cannot read becomes "*",
// so a check errs on the side of seeing a wildcard.
func pattern(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case int64, float64, bool:
		return fmt.Sprint(x)
	}
	m := mapping(v)
	switch {
	case m["Ref"] != nil:
		return "${" + str(m["Ref"]) + "}"
	case m["Fn::GetAtt"] != nil:
		parts := make([]string, 0, 2)
		for _, p := range items(m["Fn::GetAtt"]) {
			parts = append(parts, str(p))
		}
		return "${" + strings.Join(parts, ".") + "}"
	case m["Fn::Sub"] != nil:
		if s, ok := m["Fn::Sub"].(string); ok {
			return s
		}
		if list, ok := m["Fn::Sub"].([]any); ok && len(list) > 0 {
			return str(list[0])
		}
	case m["Fn::Join"] != nil:
		if list, ok := m["Fn::Join"].([]any); ok && len(list) == 2 {
			var parts []string
			for _, p := range items(list[1]) {
				parts = append(parts, pattern(p))
			}
			return strings.Join(parts, str(list[0]))
		}
	}
	return "*"
}

var placeholder = regexp.MustCompile(`\$\{[^}]*\}`)

// glob turns a pattern into an IAM-style glob: every "${...}" may be anything.
func glob(p string) string { return placeholder.ReplaceAllString(p, "*") }

// globMatch reports whether IAM glob g ('*' any run, '?' one character)
// matches s.
func globMatch(g, s string) bool {
	if g == "" {
		return s == ""
	}
	switch g[0] {
	case '*':
		for i := 0; i <= len(s); i++ {
			if globMatch(g[1:], s[i:]) {
				return true
			}
		}
		return false
	case '?':
		return s != "" && globMatch(g[1:], s[1:])
	}
	return s != "" && g[0] == s[0] && globMatch(g[1:], s[1:])
}

// resources returns the template's resources of type typ, by logical id.
func (tpl template) resources(typ string) map[string]map[string]any {
	out := map[string]map[string]any{}
	for id, r := range mapping(tpl["Resources"]) {
		if str(get(r, "Type")) == typ {
			out[id] = mapping(r)
		}
	}
	return out
}

// resource returns one resource by logical id, or nil.
func (tpl template) resource(id string) map[string]any {
	return mapping(get(tpl, "Resources", id))
}

// functions returns the SAM functions with their properties merged over
// Globals.Function, as SAM merges them.
func (tpl template) functions() map[string]map[string]any {
	global := mapping(get(tpl, "Globals", "Function"))
	out := map[string]map[string]any{}
	for id, r := range tpl.resources("AWS::Serverless::Function") {
		props := map[string]any{}
		for k, v := range global {
			props[k] = v
		}
		for k, v := range mapping(r["Properties"]) {
			if k == "Environment" {
				v = mergeEnvironment(props[k], v)
			}
			props[k] = v
		}
		out[id] = props
	}
	return out
}

func mergeEnvironment(global, local any) any {
	vars := map[string]any{}
	for k, v := range mapping(get(global, "Variables")) {
		vars[k] = v
	}
	for k, v := range mapping(get(local, "Variables")) {
		vars[k] = v
	}
	return map[string]any{"Variables": vars}
}

// refTarget returns the logical id v points at through Ref or Fn::GetAtt.
func refTarget(v any) string {
	if r := str(get(v, "Ref")); r != "" {
		return r
	}
	if parts, ok := get(v, "Fn::GetAtt").([]any); ok && len(parts) > 0 {
		return str(parts[0])
	}
	return ""
}

// sortedKeys returns m's keys in order, for stable test output.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func TestParseShortForms(t *testing.T) {
	tests := []struct {
		name string
		give string
		want string
	}{
		{"ref", "!Ref Queue", "${Queue}"},
		{"getatt scalar", "!GetAtt Queue.Arn", "${Queue.Arn}"},
		{"getatt list", "!GetAtt [Queue, Arn]", "${Queue.Arn}"},
		{"sub", "!Sub arn:${AWS::Partition}:sqs:::x", "arn:${AWS::Partition}:sqs:::x"},
		{"sub list", "!Sub ['a-${X}', {X: !Ref Y}]", "a-${X}"},
		{"join", "!Join [',', [a, !Ref B]]", "a,${B}"},
		{"long form", "{Fn::Sub: 'x-${Y}'}", "x-${Y}"},
		{"unknown intrinsic", "!Select [0, !Ref L]", "*"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := parseYAML([]byte(tt.give))
			if err != nil {
				t.Fatalf("parseYAML(%q): %v", tt.give, err)
			}
			if got := pattern(v); got != tt.want {
				t.Errorf("pattern(%q) = %q; want %q", tt.give, got, tt.want)
			}
		})
	}
}

func TestGlobMatch(t *testing.T) {
	tests := []struct {
		glob, s string
		want    bool
	}{
		{"*", instanceARN, true},
		{"arn:aws:ec2:*:*:instance/*", instanceARN, true},
		{"arn:aws:ec2:*:*:volume/*", instanceARN, false},
		{"arn:aws:ec2:*:*:*", instanceARN, true},
		{"arn:aws:ssm:*::document/AWS-RunShellScript", instanceARN, false},
		{"ec2:Stop*", "ec2:StopInstances", true},
		{"ec2:Describe*", "ec2:StopInstances", false},
		{"ec2:?topInstances", "ec2:StopInstances", true},
	}
	for _, tt := range tests {
		if got := globMatch(tt.glob, tt.s); got != tt.want {
			t.Errorf("globMatch(%q, %q) = %v; want %v", tt.glob, tt.s, got, tt.want)
		}
	}
}
