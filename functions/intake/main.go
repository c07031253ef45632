// Command intake is the Lambda function that reads job messages from SQS.
package main

import (
	"context"
	"os"

	"github.com/nightshift-dev/nightshift/internal/service"
)

func main() { os.Exit(service.Run(context.Background(), service.IntakeFunction)) }
