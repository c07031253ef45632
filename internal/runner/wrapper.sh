#!/usr/bin/env bash
# nightshift wrapper: job {{id}}, attempt {{attempt}}.
# Rendered by internal/runner; every value but setup and command is shell-quoted.
set -uo pipefail
export HOME="${HOME:-/root}"
ns_log() { printf 'nightshift: %s\n' "$*" >&2; }
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
trap 'kill "$ns_heartbeat" 2>/dev/null' EXIT

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
# Outputs are synced even after a failure (checkpoints help). A job whose
# command succeeded but whose outputs were not saved has not succeeded.
{{outputs}}

echo "$ns_code" >"$ns_dir/exit_code"
ns_log "job "{{id}}" attempt {{attempt}} exited with code $ns_code"
# Idle timer: if no next job arrives within keep-warm, the instance stops itself.
ns_arm {{idle_minutes}} "idle timer after job "{{id}}
exit "$ns_code"
