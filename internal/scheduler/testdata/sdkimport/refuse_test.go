package sdkimport

import (
	"testing"

	"github.com/aws/smithy-go"
)

// Test files may fake AWS errors: this import is allowed.
func TestRefused(t *testing.T) {
	if !refused(&smithy.GenericAPIError{Code: "Unsupported"}) {
		t.Error("refused = false")
	}
}
