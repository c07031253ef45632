package sdkimport

import (
	"testing"

	_ "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/smithy-go"
)

// Test files may fake AWS errors: these imports are allowed.
func TestRefused(t *testing.T) {
	if !refused(&smithy.GenericAPIError{Code: "Unsupported"}) {
		t.Error("refused = false")
	}
}
