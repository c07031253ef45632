package deploy

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
)

// evaluate returns what v is in a stack deployed with params, the way
// CloudFormation resolves it: each Fn::If takes the branch its condition
// picks (conditions read the parameters through Ref, Fn::Equals, Fn::Not,
// Fn::And, Fn::Or and Condition), a property or list element that resolves
// to AWS::NoValue is left out, a Ref to a parameter is the parameter's
// value, and an Fn::Sub's ${Param} references are filled in (in a string
// Sub, or in the string of a list Sub whose variable map does not name
// them). A parameter missing from params takes its Default. What is only
// known once the stack exists — resources, attributes, pseudo parameters —
// stays as it was written.
func (tpl template) evaluate(v any, params map[string]string) (any, error) {
	e := evaluator{tpl: tpl, params: params}
	out, _, err := e.value(v)
	return out, err
}

type evaluator struct {
	tpl    template
	params map[string]string
}

// param returns a parameter's value, or false for a name that is not a
// parameter (a resource or a pseudo parameter).
func (e evaluator) param(name string) (string, bool) {
	p := mapping(get(e.tpl, "Parameters", name))
	if p == nil {
		return "", false
	}
	if v, ok := e.params[name]; ok {
		return v, true
	}
	return pattern(p["Default"]), true
}

// value resolves v; the bool is false when v resolves to AWS::NoValue.
func (e evaluator) value(v any) (any, bool, error) {
	switch x := v.(type) {
	case []any:
		out := make([]any, 0, len(x))
		for _, el := range x {
			r, ok, err := e.value(el)
			if err != nil {
				return nil, false, err
			}
			if ok {
				out = append(out, r)
			}
		}
		return out, true, nil
	case map[string]any:
		if len(x) == 1 {
			for k, arg := range x {
				return e.intrinsic(k, arg, x)
			}
		}
		out := make(map[string]any, len(x))
		for k, el := range x {
			r, ok, err := e.value(el)
			if err != nil {
				return nil, false, err
			}
			if ok {
				out[k] = r
			}
		}
		return out, true, nil
	}
	return v, true, nil
}

// intrinsic resolves a one-key mapping, which may be an intrinsic function.
func (e evaluator) intrinsic(key string, arg any, whole map[string]any) (any, bool, error) {
	switch key {
	case "Ref":
		name := str(arg)
		if name == "AWS::NoValue" {
			return nil, false, nil
		}
		if val, ok := e.param(name); ok {
			if str(get(e.tpl, "Parameters", name, "Type")) == "CommaDelimitedList" {
				list := []any{}
				for _, el := range strings.Split(val, ",") {
					list = append(list, strings.TrimSpace(el))
				}
				return list, true, nil
			}
			return val, true, nil
		}
		return whole, true, nil
	case "Fn::If":
		args, ok := arg.([]any)
		if !ok || len(args) != 3 {
			return nil, false, fmt.Errorf("Fn::If %v: want [condition, then, else]", arg)
		}
		c, err := e.condition(str(args[0]))
		if err != nil {
			return nil, false, err
		}
		if c {
			return e.value(args[1])
		}
		return e.value(args[2])
	case "Fn::Sub":
		return e.sub(arg)
	case "Fn::Join", "Fn::Split":
		// Resolved when every part is known; otherwise left as written.
		r, ok, err := e.value(arg)
		if err != nil || !ok {
			return nil, ok, err
		}
		args, _ := r.([]any)
		if len(args) == 2 {
			if sep, ok := args[0].(string); ok {
				if key == "Fn::Split" {
					if s, ok := args[1].(string); ok {
						out := []any{}
						for _, el := range strings.Split(s, sep) {
							out = append(out, el)
						}
						return out, true, nil
					}
				} else if list, ok := args[1].([]any); ok {
					parts := make([]string, 0, len(list))
					for _, el := range list {
						s, ok := el.(string)
						if !ok {
							return map[string]any{key: r}, true, nil
						}
						parts = append(parts, s)
					}
					return strings.Join(parts, sep), true, nil
				}
			}
		}
		return map[string]any{key: r}, true, nil
	}
	r, ok, err := e.value(arg)
	if err != nil || !ok {
		return nil, ok, err
	}
	return map[string]any{key: r}, true, nil
}

// sub fills the parameters into an Fn::Sub; the result is a plain string
// when nothing unknown is left in it.
func (e evaluator) sub(arg any) (any, bool, error) {
	s, vars := str(arg), map[string]any{}
	if list, ok := arg.([]any); ok && len(list) == 2 {
		s, vars = str(list[0]), mapping(list[1])
	}
	resolved := map[string]any{}
	for k, v := range vars {
		r, _, err := e.value(v)
		if err != nil {
			return nil, false, err
		}
		resolved[k] = r
	}
	unknown := false
	out := placeholder.ReplaceAllStringFunc(s, func(ph string) string {
		name := strings.Trim(ph, "${}")
		if r, ok := resolved[name]; ok {
			if rs, ok := r.(string); ok {
				return rs
			}
			unknown = true
			return ph
		}
		if strings.HasPrefix(name, "!") {
			return "${" + name[1:] + "}" // ${!Literal} is written as ${Literal}
		}
		if val, ok := e.param(name); ok {
			return val
		}
		unknown = true
		return ph
	})
	if unknown {
		return map[string]any{"Fn::Sub": out}, true, nil
	}
	return out, true, nil
}

// condition evaluates a condition of the template by name.
func (e evaluator) condition(name string) (bool, error) {
	c := get(e.tpl, "Conditions", name)
	if c == nil {
		return false, fmt.Errorf("no condition %q", name)
	}
	return e.boolean(c)
}

// boolean evaluates a condition function.
func (e evaluator) boolean(v any) (bool, error) {
	m := mapping(v)
	if len(m) != 1 {
		return false, fmt.Errorf("condition %v: want one condition function", v)
	}
	for k, arg := range m {
		args, _ := arg.([]any)
		switch k {
		case "Condition":
			return e.condition(str(arg))
		case "Fn::Equals":
			if len(args) != 2 {
				return false, fmt.Errorf("Fn::Equals %v: want two values", arg)
			}
			a, _, err := e.value(args[0])
			if err != nil {
				return false, err
			}
			b, _, err := e.value(args[1])
			if err != nil {
				return false, err
			}
			return reflect.DeepEqual(a, b), nil
		case "Fn::Not":
			if len(args) != 1 {
				return false, fmt.Errorf("Fn::Not %v: want one condition", arg)
			}
			b, err := e.boolean(args[0])
			return !b, err
		case "Fn::And", "Fn::Or":
			and := k == "Fn::And"
			for _, a := range args {
				b, err := e.boolean(a)
				if err != nil {
					return false, err
				}
				if b != and {
					return b, nil
				}
			}
			return and, nil
		}
		return false, fmt.Errorf("condition function %s is not one the evaluator knows", k)
	}
	return false, nil
}

// TestEvaluate shows the evaluator on a hand-written template.
func TestEvaluate(t *testing.T) {
	tpl, err := parseTemplate([]byte(`
Parameters:
  Pools: {Type: String, Default: ""}
  Size: {Type: Number, Default: 2}
  Name: {Type: String, Default: a}
Conditions:
  HasPools: !Not [!Equals [!Ref Pools, ""]]
  Big: !Equals [!Ref Size, "9"]
  Both: !And [!Condition HasPools, !Condition Big]
  Either: !Or [!Condition HasPools, !Condition Big]
Resources:
  R:
    Properties:
      Pools: !If [HasPools, !Ref Pools, !Sub '{"default":{"max":${Size}}}']
      Both: !If [Both, yes, no]
      Either: !If [Either, yes, no]
      Gone: !If [Big, kept, !Ref AWS::NoValue]
      List: [one, !If [Big, two, !Ref AWS::NoValue], !Ref Name]
      Known: !Sub arn:${AWS::Partition}:x:${Name}
      Mapped: !Sub ['${A}-${Name}', {A: !Ref Size}]
      Literal: !Sub '${!Name}'
      Resource: !GetAtt Q.Arn
`))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		params map[string]string
		want   map[string]any
	}{
		{
			name: "defaults",
			want: map[string]any{
				"Pools": `{"default":{"max":2}}`, "Both": "no", "Either": "no",
				"List": []any{"one", "a"}, "Known": map[string]any{"Fn::Sub": "arn:${AWS::Partition}:x:a"},
				"Mapped": "2-a", "Literal": "${Name}", "Resource": map[string]any{"Fn::GetAtt": []any{"Q", "Arn"}},
			},
		},
		{
			name:   "pools given, big",
			params: map[string]string{"Pools": `{"gpu":{}}`, "Size": "9", "Name": "b"},
			want: map[string]any{
				"Pools": `{"gpu":{}}`, "Both": "yes", "Either": "yes", "Gone": "kept",
				"List": []any{"one", "two", "b"}, "Known": map[string]any{"Fn::Sub": "arn:${AWS::Partition}:x:b"},
				"Mapped": "9-b", "Literal": "${Name}", "Resource": map[string]any{"Fn::GetAtt": []any{"Q", "Arn"}},
			},
		},
		{
			name:   "one of two",
			params: map[string]string{"Size": "9"},
			want: map[string]any{
				"Pools": `{"default":{"max":9}}`, "Both": "no", "Either": "yes", "Gone": "kept",
				"List": []any{"one", "two", "a"}, "Known": map[string]any{"Fn::Sub": "arn:${AWS::Partition}:x:a"},
				"Mapped": "9-a", "Literal": "${Name}", "Resource": map[string]any{"Fn::GetAtt": []any{"Q", "Arn"}},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tpl.evaluate(get(tpl, "Resources", "R", "Properties"), tt.params)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("evaluate(%v) =\n%v\nwant\n%v", tt.params, got, tt.want)
			}
		})
	}
	if _, err := tpl.evaluate(map[string]any{"Fn::If": []any{"Nope", "a", "b"}}, nil); err == nil {
		t.Error("evaluate(Fn::If on an unknown condition) = nil error; want one")
	}
}
