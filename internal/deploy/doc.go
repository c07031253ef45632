// Package deploy holds the checks on the deployment: the AWS SAM template at
// the repository root (template.yaml), the CloudWatch agent configuration in
// deploy/ and the sample events in events/.
//
// The package has no code of its own. Its tests parse template.yaml and fail
// when the template drifts from what nightshift relies on: least-privilege
// IAM keyed on the nightshift:managed tag (design invariant S4), with
// nightshift:watch granting no more than stopping and tagging why; queue and
// function settings and the watchdog's environment; the pools the functions
// read (the Pools parameter, or the default pool built from the single-pool
// parameters, resolved as CloudFormation resolves the template's Fn::If),
// and the README's two-pool deployment line; the launch template's
// hardening; the jobs table; the cron schedule; the GPU metrics the watchdog
// reads (agent configuration, its inlined copy, the State Manager
// associations); and a clean cfn-lint.
package deploy
