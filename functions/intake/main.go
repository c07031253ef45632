// Command intake is the Lambda function that reads job messages from SQS.
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
	lambda.Start(handler.Intake{S: s.Scheduler, Log: log}.Handle)
}
