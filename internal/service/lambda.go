package service

import (
	"context"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-lambda-go/lambdacontext"
)

// Function picks one function's handler from the service.
type Function func(*Service) any

// The stack's three functions.
var (
	IntakeFunction   Function = func(s *Service) any { return s.Intake.Handle }
	DispatchFunction Function = func(s *Service) any { return s.Dispatch.Handle }
	WatchdogFunction Function = func(s *Service) any { return s.Tick.Handle }
)

// Run is the whole of a function's main: it builds the service once per
// Lambda execution environment, outside the handler (INIT is billed, and
// warm invocations reuse the clients), and serves fn's handler. It returns
// only when the configuration is unusable, with the exit status for main.
func Run(ctx context.Context, fn Function) int {
	log := lambdacontext.NewLogger()
	svc, err := Load(ctx, log)
	if err != nil {
		log.ErrorContext(ctx, "configuration", "err", err)
		return 1
	}
	lambda.Start(fn(svc))
	return 0
}
