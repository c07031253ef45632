// Package waste measures what GPU instances bill while they do not train.
//
// It reads a workload trace (jobs, cron jobs and notebook sessions, see
// Parse and docs/waste.md), replays it through nightshift's real handlers
// and Reconcile on the simulated cloud (Replay), runs the same trace through
// discrete-event models of the policies people use instead — stopping by
// hand, SkyPilot's autostop, the SageMaker auto-stop-idle sample, a nightly
// Instance Scheduler stop — and computes a lower bound, then renders one
// table side by side (Report).
package waste
