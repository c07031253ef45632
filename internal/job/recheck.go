package job

import (
	"encoding/json"
	"fmt"
	"regexp"
)

// Recheck is a re-check message: {"recheck": "i-0abc…"}. nightshift sends
// it to its own jobs queue, delayed, when an instance it started is not yet
// ready (AWS sends no event when an instance's SSM agent comes online) or
// when a free instance's keep-warm window ends: its delivery runs a
// reconcile then, rather than at the watchdog's next tick.
type Recheck struct {
	InstanceID string `json:"recheck"`
}

// instancePattern is an EC2 instance id: "i-" and 8 or 17 characters
// (lower-case hexadecimal in AWS; letters are let through for samples).
var instancePattern = regexp.MustCompile(`^i-[0-9a-z]{8}([0-9a-z]{9})?$`)

// ValidInstanceID reports whether id has the shape of an EC2 instance id.
func ValidInstanceID(id string) bool { return instancePattern.MatchString(id) }

// RecheckMessage is the body of a re-check message for instance id.
func RecheckMessage(id string) string {
	b, _ := json.Marshal(Recheck{InstanceID: id}) // a struct of one string: cannot fail
	return string(b)
}

// IsRecheck reports whether raw is meant as a re-check message: a JSON
// object with a "recheck" member. Such a message is parsed by ParseRecheck,
// never as a job (a job message has no "recheck" field).
func IsRecheck(raw []byte) bool {
	var m map[string]json.RawMessage
	if json.Unmarshal(raw, &m) != nil {
		return false
	}
	_, ok := m["recheck"]
	return ok
}

// ParseRecheck decodes and validates a re-check message. Every error it
// returns is an *Error, as Parse's are.
func ParseRecheck(raw []byte) (Recheck, error) {
	if len(raw) > MaxMessageBytes {
		return Recheck{}, &Error{Kind: ErrOversized, Msg: fmt.Sprintf("%d bytes, the limit is %d", len(raw), MaxMessageBytes)}
	}
	var r Recheck
	if err := decodeStrict(raw, &r); err != nil {
		return Recheck{}, &Error{Kind: ErrMalformed, Field: "recheck", Msg: err.Error()}
	}
	if !ValidInstanceID(r.InstanceID) {
		return Recheck{}, &Error{Kind: ErrInvalid, Field: "recheck", Msg: fmt.Sprintf("%q is not an EC2 instance id", r.InstanceID)}
	}
	return r, nil
}
