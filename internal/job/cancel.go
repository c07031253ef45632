package job

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"
)

// MaxCancelReason bounds a cancel message's reason: it becomes the job's
// reason, which a person reads in a table.
const MaxCancelReason = 512

// Cancel is a cancel message: {"cancel": "ID", "reason": "…"}. It travels
// on the jobs queue like a job message, so the SQS console can cancel a
// job as well as the command line.
type Cancel struct {
	ID     string `json:"cancel"`
	Reason string `json:"reason,omitempty"`
}

// IsCancel reports whether raw is meant as a cancel message: a JSON object
// with a "cancel" member. Such a message is parsed by ParseCancel, never as
// a job (a job message has no "cancel" field).
func IsCancel(raw []byte) bool {
	var m map[string]json.RawMessage
	if json.Unmarshal(raw, &m) != nil {
		return false
	}
	_, ok := m["cancel"]
	return ok
}

// ParseCancel decodes and validates a cancel message. Every error it
// returns is an *Error, as Parse's are.
func ParseCancel(raw []byte) (Cancel, error) {
	if len(raw) > MaxMessageBytes {
		return Cancel{}, &Error{Kind: ErrOversized, Msg: fmt.Sprintf("%d bytes, the limit is %d", len(raw), MaxMessageBytes)}
	}
	var c Cancel
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
			return Cancel{}, &Error{Kind: ErrUnknownField, Msg: fmt.Sprintf("%s is not a cancel message field; fields: cancel, reason", name)}
		}
		return Cancel{}, &Error{Kind: ErrMalformed, Msg: "a cancel message is {\"cancel\": \"JOB_ID\", \"reason\": \"…\"}: " + trimJSON(err.Error())}
	}
	if _, err := dec.Token(); err != io.EOF {
		return Cancel{}, &Error{Kind: ErrMalformed, Msg: "text after the JSON object"}
	}
	switch {
	case !ValidID(c.ID):
		return Cancel{}, &Error{Kind: ErrBadID, Field: "cancel", Msg: fmt.Sprintf("%q: want the id of the job to cancel, 1-64 characters of A-Z a-z 0-9 . _ -", c.ID)}
	case utf8.RuneCountInString(c.Reason) > MaxCancelReason:
		return Cancel{}, &Error{Kind: ErrInvalid, Field: "reason", Msg: fmt.Sprintf("%d characters: at most %d", utf8.RuneCountInString(c.Reason), MaxCancelReason)}
	case strings.ContainsRune(c.Reason, 0):
		return Cancel{}, &Error{Kind: ErrInvalid, Field: "reason", Msg: "contains a NUL byte"}
	}
	return c, nil
}
