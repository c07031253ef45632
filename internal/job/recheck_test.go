package job

import (
	"errors"
	"testing"
)

func TestRecheckMessage(t *testing.T) {
	const id = "i-0123456789abcdef0"
	raw := []byte(RecheckMessage(id))
	if !IsRecheck(raw) || IsCancel(raw) {
		t.Fatalf("%s: IsRecheck %v, IsCancel %v; want a re-check only", raw, IsRecheck(raw), IsCancel(raw))
	}
	if r, err := ParseRecheck(raw); err != nil || r.InstanceID != id {
		t.Errorf("ParseRecheck(%s) = %+v, %v", raw, r, err)
	}
	for _, tt := range []struct {
		raw  string
		kind error
	}{
		{`{"recheck": "bogus"}`, ErrInvalid},
		{`{"recheck": ""}`, ErrInvalid},
		{`{"recheck": 7}`, ErrMalformed},
		{`{"recheck": "i-0123456789abcdef0", "extra": 1}`, ErrMalformed},
		{`{"recheck": "i-0123456789abcdef0;rm"}`, ErrInvalid},
	} {
		if !IsRecheck([]byte(tt.raw)) {
			t.Errorf("IsRecheck(%s) = false; want true", tt.raw)
		}
		if _, err := ParseRecheck([]byte(tt.raw)); !errors.Is(err, tt.kind) {
			t.Errorf("ParseRecheck(%s) = %v; want %v", tt.raw, err, tt.kind)
		}
	}
	if IsRecheck([]byte(`{"command": "python train.py"}`)) {
		t.Errorf("a job message reads as a re-check")
	}
}
