// Command watchdog is the Lambda function run every minute to reconcile and stop what is idle.
package main

import (
	"context"
	"os"

	"github.com/nightshift-dev/nightshift/internal/service"
)

func main() { os.Exit(service.Run(context.Background(), service.WatchdogFunction)) }
