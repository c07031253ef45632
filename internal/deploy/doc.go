// Package deploy holds the checks on the deployment: the AWS SAM template at
// the repository root (template.yaml) and the sample events in events/.
//
// The package has no code of its own. Its tests parse template.yaml and fail
// when the template drifts from what nightshift relies on: least-privilege
// IAM keyed on the nightshift:managed tag (design invariant S4), queue and
// function settings, the launch template's hardening, the jobs table, the
// cron schedule, and a clean cfn-lint.
package deploy
