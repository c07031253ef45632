#!/usr/bin/env bash
# nightshift wrapper: job {{id}}, attempt {{attempt}}.
# Rendered by internal/runner; every value but setup and command is shell-quoted.
set -uo pipefail
export HOME="${HOME:-/root}"
ns_log() { printf 'nightshift: %s\n' "$*" >&2; }
# The instance metadata service; tests give a fake one in the wrapper's
# own environment (read here, before the job's env is exported).
ns_imds=${NIGHTSHIFT_IMDS_ENDPOINT:-{{imds}}}
# Every path the wrapper hands the job is absolute, so that the job may cd
# anywhere: a relative state directory (the local run's) is resolved here,
# from where the command started.
ns_state={{state_dir}}
mkdir -p "$ns_state/jobs/"{{id}} && ns_state=$(cd "$ns_state" && pwd) || {
	ns_log "state directory unusable: $ns_state"
	exit 1
}
ns_dir="$ns_state/jobs/"{{id}}/{{attempt}}

# Dead-man timer: schedule a power-off that the instance performs by itself
# even if the control plane is gone. Launched with shutdown behaviour "stop",
# the instance stops (a spot instance terminates).
ns_arm() {
	shutdown -c >/dev/null 2>&1 || true
	shutdown -P "+$1" "nightshift: $2" >/dev/null 2>&1 || ns_log "could not arm shutdown timer"
}

# Per-attempt lock: the first copy of this attempt creates its directory. A
# second copy (a duplicate SendCommand) does not run the job again: it waits
# for the first copy's exit code and reports it.
if ! mkdir "$ns_dir" 2>/dev/null; then
	ns_log "attempt {{attempt}} already started on this instance; reporting its result"
	for ((i = 0; i < {{wait_polls}}; i++)); do
		if [ -s "$ns_dir/exit_code" ]; then exit "$(cat "$ns_dir/exit_code")"; fi
		sleep 5
	done
	exit 124
fi

# ns_abort ends an attempt that cannot run its command (its workdir or an
# input is unusable): the exit code is recorded and the idle timer armed,
# as after a job.
ns_abort() {
	ns_log "$2"
	echo "$1" >"$ns_dir/exit_code"
	ns_arm {{idle_minutes}} "idle timer after job "{{id}}
	exit "$1"
}

# Stop (runner.Stop, a person's cancel): a second command sends the wrapper
# TERM, by the pid recorded here with its start time (by then the pid alone
# may be another process's), or, if it comes before this copy has recorded
# it, leaves a file "stop" that the wrapper looks for before the command.
# SSM's own cancel kills the command's whole process group with SIGKILL: no
# output sync, no exit code. A stop lets the job end itself: TERM to the
# job's process group, KILL after {{stop_grace_seconds}} s, then the outputs are synced and
# exit code {{stop_exit}} recorded, as after any job.
ns_stop_asked='' ns_job='' ns_termed='' ns_killer=''
# The trap only notes the stop; the wrapper acts on it between commands.
# It never waits for a process with bash's wait while a stop may come: a
# trapped signal ends that wait early, and a later wait for the same
# process can then miss its end and never return (bash 5.2).
trap 'ns_stop_asked=1' TERM
# ns_term_job sends the job's process group TERM, once, and KILL when the
# grace is over; the wrapper ends the killer if the job ends first.
ns_term_job() {
	[ -z "$ns_termed" ] || return 0
	ns_termed=1
	ns_log "stop asked: TERM sent to the job; KILL in {{stop_grace_seconds}} s if it has not ended"
	kill -TERM -- "-$ns_job" 2>/dev/null
	(
		sleep {{stop_grace_seconds}}
		kill -KILL -- "-$ns_job" 2>/dev/null
	) </dev/null >/dev/null 2>&1 &
	ns_killer=$!
}
# ns_stopped ends the attempt, before its command runs, when a stop came.
ns_stopped() {
	if [ -n "$ns_stop_asked" ] || [ -e "$ns_dir/stop" ]; then ns_abort {{stop_exit}} "stopped before the command started"; fi
}
# Field 22 of /proc/PID/stat is the process's start time; the fields are
# counted after the command name, which may hold spaces.
ns_started_at() {
	local s
	read -r s <"/proc/$1/stat" && s=${s##*) } && set -- $s && echo "${20}"
}
echo "$$ $(ns_started_at $$)" >"$ns_dir/pid"

ns_arm {{deadman_minutes}} "dead-man timer for job "{{id}}
ns_log "job "{{id}}" attempt {{attempt}} started; dead-man timer in {{deadman_minutes}} min"
date -u +%s >"$ns_dir/started"
date -u +%s >"$ns_dir/heartbeat"
# The job shows progress by writing output or by touching this file.
export NIGHTSHIFT_HEARTBEAT="$ns_dir/progress"
: >"$NIGHTSHIFT_HEARTBEAT"
: >"$ns_dir/stdout"
: >"$ns_dir/stderr"

# The job and its syncs run in its workdir. By default that is nightshift's
# own directory for the job, on the root volume (it survives a stop, unlike
# the DLAMI's instance store), where a relative workdir goes too; both are
# created here. An absolute workdir the job names must exist. Never the SSM
# agent's own working directory.
ns_work={{workdir}}
if {{create_workdir}}; then mkdir -p "$ns_work"; fi
cd "$ns_work" || ns_abort 99 "workdir unusable: $ns_work"

# Heartbeat: every minute, the seconds since the job last showed progress go
# to CloudWatch (nightshift/SecondsSinceProgress), where the watchdog reads
# them to tell a stalled job from a busy one. The loop must not hold the
# command's output open: SSM waits for every writer to close.
ns_progress() {
	local newest
	newest=$(stat -c %Y "$ns_dir/stdout" "$ns_dir/stderr" "$NIGHTSHIFT_HEARTBEAT" 2>/dev/null | sort -n | tail -n 1)
	echo $(($(date -u +%s) - ${newest:-$(cat "$ns_dir/started")}))
}
(
	while sleep {{heartbeat_seconds}}; do
		date -u +%s >"$ns_dir/heartbeat"
		if command -v aws >/dev/null 2>&1; then
			aws cloudwatch put-metric-data --region {{region}} --namespace nightshift \
				--metric-name SecondsSinceProgress --unit Seconds --value "$(ns_progress)" \
				--dimensions InstanceId={{instance}} >/dev/null 2>&1 || true
		fi
	done
) </dev/null >/dev/null 2>&1 &
ns_heartbeat=$!
ns_watch=''
trap 'kill "$ns_heartbeat" $ns_watch 2>/dev/null' EXIT

# ns_secret exports variable $1 with the value of the Parameter Store
# parameter $2, read with the instance's role and decrypted (a
# SecureString). The value is never printed: the command holds only the
# parameter's name. An attempt whose secret cannot be read ends before the
# command runs.
ns_secret() {
	local v
	v=$(aws ssm get-parameter --region {{region}} --with-decryption --name "$2" \
		--query Parameter.Value --output text </dev/null) ||
		ns_abort {{secret_exit}} "cannot read parameter $2 for \$$1 with the instance's role (is it under the stack's SecretsPrefix?)"
	export "$1=$v"
}
{{env}}
export NIGHTSHIFT_JOB_ID={{id}} NIGHTSHIFT_ATTEMPT={{attempt}}

ns_stopped
{{inputs}}

# Checkpoint (the job's checkpoint field): a directory the training writes,
# kept in step with S3 so that the attempt after a lost instance resumes
# from it. Restored before the command: a restore that fails ends the
# attempt, as an input sync that fails does (the job would start over, and
# its syncs would then bury the checkpoint it could not read). Synced up
# while the command runs (every {{checkpoint_every_seconds}} s, on a rebalance recommendation, on a
# spot interruption notice) and after it, whatever its end. Synced up
# without --delete: a sync can only add to or replace what S3 keeps. A sync
# up that fails is logged loudly and changes no exit code: the training's
# own result is the job's.
ns_ckpt_s3={{checkpoint_s3}} ns_ckpt_dir={{checkpoint_dir}}
if [ -n "$ns_ckpt_s3" ]; then
	mkdir -p "$ns_ckpt_dir" && ns_ckpt_dir=$(cd "$ns_ckpt_dir" && pwd) ||
		ns_abort 98 "checkpoint directory unusable: $ns_ckpt_dir"
	export NIGHTSHIFT_CHECKPOINT_DIR="$ns_ckpt_dir" NIGHTSHIFT_INTERRUPTION_FILE="$ns_dir/interruption"
	ns_stopped
	ns_log "checkpoint: restoring $ns_ckpt_s3 into $ns_ckpt_dir"
	aws s3 sync --only-show-errors "$ns_ckpt_s3" "$ns_ckpt_dir" </dev/null ||
		ns_abort 98 "checkpoint restore failed: $ns_ckpt_s3 (may the instance role read it? the stack's CheckpointBuckets names the buckets it may)"
fi
ns_stopped

# The job's output goes to SSM (and so CloudWatch Logs) and to files whose
# modification times are its progress. The two tees are the wrapper's own
# children, fed through named pipes, and it waits for them: bash does not
# wait for a process substitution, so the exit line could come before the
# job's last lines.
ns_out="$ns_dir/stdout.pipe" ns_err="$ns_dir/stderr.pipe"
mkfifo "$ns_out" "$ns_err" || ns_abort 99 "cannot make the output pipes in $ns_dir"
tee -a "$ns_dir/stdout" <"$ns_out" &
ns_tee_out=$!
tee -a "$ns_dir/stderr" <"$ns_err" >&2 &
ns_tee_err=$!
# The job runs in a process group of its own (set -m), so that a stop
# signals all of it and nothing of the wrapper's (the tees, the heartbeat).
# SSM, when it cancels the command or its execution timeout passes, kills
# only the wrapper's group: a guard in the job's group ends the job within
# {{poll_seconds}} s of the wrapper, however the wrapper ended. The body is
# a function's, run in the background: one process, whose traps are the
# job's own (a subshell body would be a second one, ended by the TERM).
ns_run() {
	set +m # the job's own children stay in its group
	(
		trap '' TERM # a stop's TERM is for the job; the guard stays till the end
		while kill -0 $$ 2>/dev/null; do sleep {{poll_seconds}}; done
		kill -KILL 0
	) </dev/null >/dev/null 2>&1 &
	set +u # activation scripts read unset variables
	# setup
	{{setup}}
	# command
	{{command}}
}
set -m
ns_run </dev/null >"$ns_out" 2>"$ns_err" &
ns_job=$!
set +m

# ns_ckpt_push syncs the checkpoint directory up; $1 says why.
ns_ckpt_push() {
	ns_log "checkpoint: syncing $ns_ckpt_dir to $ns_ckpt_s3 ($1)"
	aws s3 sync --only-show-errors "$ns_ckpt_dir" "$ns_ckpt_s3" </dev/null && return 0
	ns_log "CHECKPOINT SYNC FAILED ($1): $ns_ckpt_dir to $ns_ckpt_s3; the job goes on and its exit code is kept, but a later attempt resumes from the last sync that worked"
	return 1
}
# ns_imds_get reads the instance metadata item $1 (IMDSv2: a session token
# first, kept for three of its six hours) into $ns_dir/imds; it fails when
# the item is absent (404: no notice) or the service does not answer.
ns_imds_token='' ns_imds_token_at=0
ns_imds_get() {
	local now code
	now=$(date -u +%s)
	if [ -z "$ns_imds_token" ] || [ $((now - ns_imds_token_at)) -ge 10800 ]; then
		ns_imds_token=$(curl -s -f -X PUT --max-time 2 -H 'X-aws-ec2-metadata-token-ttl-seconds: 21600' "$ns_imds/latest/api/token") || {
			ns_imds_token=''
			return 1
		}
		ns_imds_token_at=$now
	fi
	code=$(curl -s -o "$ns_dir/imds" -w '%{http_code}' --max-time 2 -H "X-aws-ec2-metadata-token: $ns_imds_token" "$ns_imds/latest/meta-data/$1")
	case "$code" in
	200) return 0 ;;
	401) ns_imds_token='' ;; # expired: a new one at the next look
	esac
	return 1
}
# ns_json_field prints field $1 of the JSON object in $ns_dir/imds.
ns_json_field() { sed -n 's/.*"'"$1"'"[[:space:]]*:[[:space:]]*"\([^"]*\)".*/\1/p' "$ns_dir/imds" | head -n 1; }
# ns_interrupted answers a spot interruption notice: the seconds left go to
# $NIGHTSHIFT_INTERRUPTION_FILE, the job's process group gets TERM, and
# the checkpoint is synced once the job has ended, or {{interruption_margin_seconds}} s before the
# interruption (the job KILLed first), whichever comes first.
ns_interrupted() {
	local action when deadline left now
	action=$(ns_json_field action) when=$(ns_json_field time)
	now=$(date -u +%s)
	deadline=$(date -u -d "$when" +%s 2>/dev/null) || deadline=$((now + 120))
	left=$((deadline - now))
	[ "$left" -ge 0 ] || left=0
	echo "$left" >"$NIGHTSHIFT_INTERRUPTION_FILE"
	echo "$deadline" >"$ns_dir/interrupted"
	ns_log "spot interruption notice: ${action:-terminate} at ${when:-in 2 min}, $left s left: TERM sent to the job; its checkpoint is synced when it ends, or {{interruption_margin_seconds}} s before"
	kill -TERM -- "-$ns_job" 2>/dev/null
	while kill -0 "$ns_job" 2>/dev/null && [ "$(date -u +%s)" -lt $((deadline - {{interruption_margin_seconds}})) ]; do sleep 0.2; done
	if kill -0 "$ns_job" 2>/dev/null; then
		ns_log "the job has not ended {{interruption_margin_seconds}} s before the interruption: KILL sent, then the checkpoint synced"
		kill -KILL -- "-$ns_job" 2>/dev/null
	fi
	ns_ckpt_push "spot interruption notice" || true
}
# ns_ckpt_watch runs beside the job while it lives: the periodic sync, the
# sync asked by a command (runner.SyncNow: the file "sync"), and every
# {{checkpoint_look_seconds}} s the instance metadata's interruption notice and rebalance
# recommendation. It ends with the job; the wrapper waits for it, so that
# no sync of its is cut short.
ns_ckpt_watch() {
	local now next look=0 rebalanced=''
	next=$(($(date -u +%s) + {{checkpoint_every_seconds}}))
	while kill -0 "$ns_job" 2>/dev/null; do
		now=$(date -u +%s)
		if [ -e "$ns_dir/sync" ]; then
			rm -f "$ns_dir/sync"
			ns_ckpt_push "asked: a rebalance recommendation for the instance" || true
			next=$(($(date -u +%s) + {{checkpoint_every_seconds}}))
		fi
		if [ "$now" -ge "$look" ]; then
			look=$((now + {{checkpoint_look_seconds}}))
			if ns_imds_get spot/instance-action; then
				ns_interrupted
				return 0
			fi
			if [ -z "$rebalanced" ] && ns_imds_get events/recommendations/rebalance; then
				rebalanced=1
				ns_log "rebalance recommendation (noticed $(ns_json_field noticeTime)): the instance is at elevated risk of interruption"
				ns_ckpt_push "rebalance recommendation" || true
				next=$(($(date -u +%s) + {{checkpoint_every_seconds}}))
			fi
		fi
		if [ "$now" -ge "$next" ]; then
			ns_ckpt_push "every {{checkpoint_every_seconds}} s" || true
			next=$(($(date -u +%s) + {{checkpoint_every_seconds}}))
		fi
		sleep 1
	done
}
if [ -n "$ns_ckpt_s3" ]; then
	ns_ckpt_watch </dev/null &
	ns_watch=$!
fi
# The wrapper looks for the job's end, at first often (a short job's end is
# seen at once), then every {{poll_seconds}} s, as the guard looks for the wrapper's: a
# stop's TERM, trapped, takes effect between two looks. The end is seen
# once bash has reaped the job, which the wait for the sleep does.
ns_nap=50 # ms
while kill -0 "$ns_job" 2>/dev/null; do
	if [ -n "$ns_stop_asked" ]; then ns_term_job; fi
	printf -v ns_s '%d.%03d' $((ns_nap / 1000)) $((ns_nap % 1000))
	sleep "$ns_s"
	ns_nap=$((ns_nap * 2 < {{poll_ms}} ? ns_nap * 2 : {{poll_ms}}))
done
# The job has ended: a stop now has nothing to stop, and no signal may cut
# the waits short from here on.
trap '' TERM
wait "$ns_job"
ns_code=$? ns_group=$ns_job
ns_job=''
# What the job left running is ended with it: the instance is the next job's.
kill -KILL -- "-$ns_group" 2>/dev/null
if [ -n "$ns_termed" ]; then
	# The killer, ended here unless it is done: done, it killed the job.
	kill "$ns_killer" 2>/dev/null
	if wait "$ns_killer"; then
		ns_log "the job had not ended {{stop_grace_seconds}} s after TERM: killed"
	fi
	ns_code={{stop_exit}}
fi
wait "$ns_tee_out" "$ns_tee_err"
rm -f "$ns_out" "$ns_err"
if [ -n "$ns_watch" ]; then
	wait "$ns_watch" # a sync of its in flight ends first
	ns_watch=''
	# After a notice, the watch synced once the job had ended.
	if [ ! -e "$ns_dir/interrupted" ]; then ns_ckpt_push "the job ended with exit code $ns_code" || true; fi
fi
# Outputs are synced even after a failure (checkpoints help). A job whose
# command succeeded but whose outputs were not saved has not succeeded.
{{outputs}}

# After an interruption notice the wrapper reports no end of its own: the
# instance goes, the attempt is lost, and the job is re-queued to resume
# from its checkpoint. Should the instance outlive the notice, the attempt
# ends with exit code {{interrupted_exit}}, which the scheduler takes the same way.
if [ -e "$ns_dir/interrupted" ]; then
	ns_deadline=$(cat "$ns_dir/interrupted")
	ns_log "checkpoint synced; waiting for the spot interruption"
	while [ "$(date -u +%s)" -lt $((ns_deadline + 3 * {{interruption_margin_seconds}})) ]; do sleep 1; done
	ns_log "the instance outlived its spot interruption notice: attempt {{attempt}} ends with exit code {{interrupted_exit}}; the job resumes from its checkpoint"
	ns_code={{interrupted_exit}}
fi
echo "$ns_code" >"$ns_dir/exit_code"
ns_log "job "{{id}}" attempt {{attempt}} exited with code $ns_code"
# Idle timer: if no next job arrives within keep-warm, the instance stops itself.
ns_arm {{idle_minutes}} "idle timer after job "{{id}}
exit "$ns_code"
