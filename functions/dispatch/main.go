// Command dispatch is the Lambda function that receives EC2 and SSM events from EventBridge.
package main

import (
	"context"
	"os"

	"github.com/nightshift-dev/nightshift/internal/service"
)

func main() { os.Exit(service.Run(context.Background(), service.DispatchFunction)) }
