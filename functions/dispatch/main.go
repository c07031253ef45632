// Command dispatch is the Lambda function that receives EC2 and SSM events from EventBridge.
package main

import (
	"context"
	"os"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-lambda-go/lambdacontext"

	"github.com/nightshift-dev/nightshift/internal/config"
	"github.com/nightshift-dev/nightshift/internal/handler"
)

func main() {
	log := lambdacontext.NewLogger()
	s, err := config.Load(context.Background(), log)
	if err != nil {
		log.Error("configuration", "err", err)
		os.Exit(1)
	}
	lambda.Start(handler.Dispatch{S: s.Scheduler, Log: log}.Handle)
}
