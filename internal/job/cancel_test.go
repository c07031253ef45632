package job

import (
	"errors"
	"strings"
	"testing"
)

func TestParseCancel(t *testing.T) {
	tests := []struct {
		give     string
		want     Cancel
		wantKind error
	}{
		{give: `{"cancel": "train-1"}`, want: Cancel{ID: "train-1"}},
		{give: `{"cancel": "train-1", "reason": "wrong data"}`, want: Cancel{ID: "train-1", Reason: "wrong data"}},
		{give: `{"cancel": "bad id!"}`, wantKind: ErrBadID},
		{give: `{"cancel": ""}`, wantKind: ErrBadID},
		{give: `{"cancel": 5}`, wantKind: ErrMalformed},
		{give: `{"cancel": "a", "reson": "x"}`, wantKind: ErrUnknownField},
		{give: `{"cancel": "a", "command": "x"}`, wantKind: ErrUnknownField},
		{give: `{"cancel": "a"} trailing`, wantKind: ErrMalformed},
		{give: `{"cancel": "a", "reason": "` + strings.Repeat("r", MaxCancelReason+1) + `"}`, wantKind: ErrInvalid},
		{give: `{"cancel": "a", "reason": "x\u0000"}`, wantKind: ErrInvalid},
	}
	for _, tt := range tests {
		got, err := ParseCancel([]byte(tt.give))
		if tt.wantKind != nil {
			var e *Error
			if !errors.Is(err, tt.wantKind) || !errors.As(err, &e) || e.Msg == "" {
				t.Errorf("ParseCancel(%.60s) = %+v, %v; want a *Error of kind %v", tt.give, got, err, tt.wantKind)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ParseCancel(%s) = %+v, %v; want %+v", tt.give, got, err, tt.want)
		}
	}
}

func TestIsCancel(t *testing.T) {
	tests := []struct {
		give string
		want bool
	}{
		{`{"cancel": "a"}`, true},
		{`{"cancel": 5}`, true}, // meant as one: ParseCancel says what is wrong
		{`{"command": "python train.py"}`, false},
		{`not json`, false},
		{`["cancel"]`, false},
	}
	for _, tt := range tests {
		if got := IsCancel([]byte(tt.give)); got != tt.want {
			t.Errorf("IsCancel(%s) = %v; want %v", tt.give, got, tt.want)
		}
	}
}
