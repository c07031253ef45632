// Command hello is the smallest aws-lambda-go function. internal/bench
// builds it the way functions/* are built and compares their binary size
// and init time to it: the difference is what nightshift itself costs.
package main

import (
	"context"
	"encoding/json"

	"github.com/aws/aws-lambda-go/lambda"
)

func main() {
	lambda.Start(func(ctx context.Context, e json.RawMessage) (string, error) { return "hello", nil })
}
