package runner

import "testing"

// TestExpand: value holes are filled in place, block holes replace their
// line, values are never scanned for holes; a hole without a value and a
// block inside a line are errors.
func TestExpand(t *testing.T) {
	holes := map[string]string{"a": "{{b}}", "b": "B"}
	blocks := map[string][]string{"lines": {"one", "two"}, "none": nil}
	tests := []struct {
		give    string
		want    string
		wantErr bool
	}{
		{give: "", want: ""},
		{give: "no holes { } }} {", want: "no holes { } }} {"},
		{give: "x={{b}} y={{a}}", want: "x=B y={{b}}"},
		{give: "start\n{{lines}}\nend", want: "start\none\ntwo\nend"},
		{give: "{{lines}}\n", want: "one\ntwo\n"},
		{give: "start\n{{none}}\nend", want: "start\nend"},
		{give: "x {{lines}}\n", wantErr: true},
		{give: "\n{{lines}} x\n", wantErr: true},
		{give: "\n{{lines}}", wantErr: true},
		{give: "{{c}}", wantErr: true},
		{give: "{{b", wantErr: true},
	}
	for _, tt := range tests {
		got, err := expand(tt.give, holes, blocks)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("expand(%q) = %q, %v; want %q (error: %v)", tt.give, got, err, tt.want, tt.wantErr)
		}
	}
}
