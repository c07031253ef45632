// Package sdkimport is a fixture for TestSDKImportsFound: a non-test file
// that branches on an AWS error itself.
package sdkimport

import (
	"errors"

	"github.com/aws/smithy-go"
)

func refused(err error) bool {
	var api smithy.APIError
	return errors.As(err, &api)
}
