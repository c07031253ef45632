# notebook {{notebook}}: JupyterLab on 127.0.0.1:{{port}} only, reached through
# Session Manager port forwarding; ended here when its person has left.
ns_nb_port={{port}}
if ! command -v jupyter-lab >/dev/null 2>&1; then
	echo "nightshift: JupyterLab is not in this environment: installing it (python3 -m pip install jupyterlab)"
	python3 -m pip install --quiet jupyterlab || {
		echo "nightshift: could not install JupyterLab; activate an environment that has it (setup) or lets pip install it" >&2
		exit {{install_exit}}
	}
fi
ns_nb_token=$(python3 -c 'import secrets; print(secrets.token_hex(24))') || exit {{install_exit}}
ns_nb_conf=$(mktemp -d)
# A browser whose laptop sleeps stops answering the server's websocket
# pings: its connection is closed within a minute and a half, not when TCP
# gives up. The server listens on the loopback interface only.
cat >"$ns_nb_conf/jupyter_server_config.py" <<'PY'
c.ServerApp.tornado_settings = {"websocket_ping_interval": 30, "websocket_ping_timeout": 90}
PY
JUPYTER_TOKEN=$ns_nb_token JUPYTER_CONFIG_PATH=$ns_nb_conf jupyter-lab --allow-root --no-browser \
	--ip=127.0.0.1 --port="$ns_nb_port" --port-retries=0 --ServerApp.root_dir="$PWD" &
ns_nb_pid=$!
trap 'kill -TERM "$ns_nb_pid" 2>/dev/null; wait "$ns_nb_pid"; exit {{stop_exit}}' TERM
# ns_nb_look prints what the notebook's person is doing now: 2 busy (a
# kernel busy or active within the last look, the GPU busy), 1 connected
# (a browser's kernel connection, an open tab polling the server, a Session
# Manager session to the instance), 0 neither.
ns_nb_look() {
	local gpu sessions
	gpu=$(nvidia-smi --query-gpu=utilization.gpu --format=csv,noheader,nounits 2>/dev/null | sort -n | tail -n 1)
	sessions=$(pgrep -c -f ssm-session-worker 2>/dev/null) # prints 0, and fails, when none
	sessions=${sessions:-0}
	local st
	st=$(python3 - "$ns_nb_port" "$ns_nb_token" "${gpu:-0}" "$sessions" {{look_seconds}} {{gpu_percent}} 2>/dev/null <<'PY'
import datetime, json, sys, urllib.request
port, token, gpu, sessions, look, gpu_busy = sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5]), float(sys.argv[6])
def get(path):
    req = urllib.request.Request("http://127.0.0.1:%s%s" % (port, path), headers={"Authorization": "token " + token})
    return json.load(urllib.request.urlopen(req, timeout=5))
def age(stamp):
    t = datetime.datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    return (datetime.datetime.now(datetime.timezone.utc) - t).total_seconds()
status, kernels = get("/api/status"), get("/api/kernels")
busy = gpu >= gpu_busy or any(k.get("execution_state") == "busy" or age(k["last_activity"]) <= look for k in kernels)
connected = status.get("connections", 0) > 0 or sessions > 0 or age(status["last_activity"]) <= 2 * look
print(2 if busy else 1 if connected else 0)
PY
	)
	# A look that fails (the API does not answer as expected) is read as
	# someone connected, or busy if the GPU is: never as away, so a broken
	# look ends no one's work; the connected timeout still applies.
	case $st in
	0 | 1 | 2) echo "$st" ;;
	*) if [ "${gpu%.*}" -ge {{gpu_percent}} ] 2>/dev/null; then echo 2; else echo 1; fi ;;
	esac
}
until curl -fsS -o /dev/null -H "Authorization: token $ns_nb_token" "http://127.0.0.1:$ns_nb_port/api/status"; do
	kill -0 "$ns_nb_pid" 2>/dev/null || { wait "$ns_nb_pid"; exit $?; }
	sleep 1
done
echo "nightshift: notebook ready: http://127.0.0.1:$ns_nb_port/lab?token=$ns_nb_token"
# Every look, what the person does; every minute, the most of it goes to
# CloudWatch (nightshift/NotebookState, 0-2), where the watchdog reads it.
# The notebook ends itself after {{idle_seconds}} s with nobody connected and nothing
# running, or {{idle_connected_seconds}} s with a browser connected but nothing running.
ns_nb_present=$(date -u +%s) ns_nb_busy=$ns_nb_present ns_nb_minute=0 ns_nb_sent=$ns_nb_present
while kill -0 "$ns_nb_pid" 2>/dev/null; do
	ns_nb_state=$(ns_nb_look)
	ns_nb_now=$(date -u +%s)
	[ "$ns_nb_state" -ge 1 ] && ns_nb_present=$ns_nb_now
	[ "$ns_nb_state" -ge 2 ] && ns_nb_busy=$ns_nb_now
	[ "$ns_nb_state" -gt "$ns_nb_minute" ] && ns_nb_minute=$ns_nb_state
	if [ $((ns_nb_now - ns_nb_sent)) -ge 60 ]; then
		aws cloudwatch put-metric-data --region {{region}} --namespace nightshift \
			--metric-name NotebookState --value "$ns_nb_minute" \
			--dimensions InstanceId={{instance}} >/dev/null 2>&1 </dev/null || true
		ns_nb_minute=0 ns_nb_sent=$ns_nb_now
	fi
	ns_nb_why=''
	if [ $((ns_nb_now - ns_nb_present)) -ge {{idle_seconds}} ]; then
		ns_nb_why="nobody connected and nothing running for $((ns_nb_now - ns_nb_present)) s"
	elif [ $((ns_nb_now - ns_nb_busy)) -ge {{idle_connected_seconds}} ]; then
		ns_nb_why="a browser connected but nothing running for $((ns_nb_now - ns_nb_busy)) s"
	fi
	if [ -n "$ns_nb_why" ]; then
		echo "nightshift: notebook idle: $ns_nb_why; ending it (its files stay on the instance's disk)"
		kill -TERM "$ns_nb_pid" 2>/dev/null
		wait "$ns_nb_pid"
		exit 0
	fi
	sleep {{look_seconds}}
done
wait "$ns_nb_pid"
