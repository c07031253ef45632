// Package e2e runs the Lambda functions as AWS runs them: each function's
// bootstrap binary under the Lambda Runtime Interface Emulator, invoked over
// HTTP with the samples in events/, against moto over HTTP. It has only
// tests; see lambda_test.go.
package e2e
