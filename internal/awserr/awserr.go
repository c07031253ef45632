// Package awserr classifies AWS errors by their code, never by their message
// text. It holds the named code sets nightshift branches on and the
// predicates over an error; the packages that call AWS turn its verdicts
// into sentinels of their own.
package awserr

import (
	"errors"
	"slices"

	"github.com/aws/smithy-go"
)

// Code returns the code of the AWS API error in err's chain, or "" when
// there is none.
func Code(err error) string {
	var api smithy.APIError
	if !errors.As(err, &api) {
		return ""
	}
	return api.ErrorCode()
}

// Message returns the message of the AWS API error in err's chain, or ""
// when there is none.
func Message(err error) string {
	var api smithy.APIError
	if !errors.As(err, &api) {
		return ""
	}
	return api.ErrorMessage()
}

// Answered reports whether AWS answered the call with an error: err's chain
// holds an API error, whatever its code. A timeout, a cancelled context, a
// connection reset or the simulation's crash is no answer: the call may
// have taken effect.
func Answered(err error) bool {
	var api smithy.APIError
	return errors.As(err, &api)
}

// Codes is a named set of AWS error codes.
type Codes struct {
	codes map[string]bool
}

func codes(cs ...string) Codes {
	m := make(map[string]bool, len(cs))
	for _, c := range cs {
		m[c] = true
	}
	return Codes{codes: m}
}

// Has reports whether err's chain holds an AWS API error whose code is in c.
func (c Codes) Has(err error) bool { return c.codes[Code(err)] }

// Contains reports whether code is in c: for codes AWS reports inside an
// answer rather than as its error, such as DynamoDB's cancellation reasons.
func (c Codes) Contains(code string) bool { return c.codes[code] }

// List returns c's codes, sorted.
func (c Codes) List() []string {
	out := make([]string, 0, len(c.codes))
	for code := range c.codes {
		out = append(out, code)
	}
	slices.Sort(out)
	return out
}
