package runner_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/nightshift-dev/nightshift/internal/job"
	"github.com/nightshift-dev/nightshift/internal/runner"
)

// secretValue is what the stub Parameter Store holds: shell and quoting
// syntax, so that a value that went through the shell as text would show.
const secretValue = `wandb-k3y 'it''s' "$(touch /tmp/pwned)" ${HOME} ; x`

// stubParameterStore puts an aws on the instance's PATH that answers
// `aws ssm get-parameter --with-decryption --name NAME` with secretValue
// for the parameters in known, and fails like the AWS CLI (exit 254,
// ParameterNotFound on stderr) for any other; it logs its arguments to the
// returned file. Other aws calls (the heartbeat) succeed and do nothing.
func stubParameterStore(t *testing.T, in *instance, known ...string) string {
	t.Helper()
	log := filepath.Join(in.dir, "aws.log")
	var cases strings.Builder
	for _, name := range known {
		cases.WriteString(runner.Quote(name) + ") [ -n \"$dec\" ] && { printf '%s\\n' " + runner.Quote(secretValue) + "; exit 0; };;\n")
	}
	stub := "#!/bin/sh\nprintf '%s\\n' \"$*\" >>" + runner.Quote(log) + "\n" +
		"[ \"$1 $2\" = 'ssm get-parameter' ] || exit 0\n" +
		"name='' dec=''\n" +
		"while [ $# -gt 0 ]; do case $1 in --name) name=$2; shift;; --with-decryption) dec=1;; esac; shift; done\n" +
		"case $name in\n" + cases.String() + "esac\n" +
		"echo \"An error occurred (ParameterNotFound) when calling the GetParameter operation: Parameter $name not found.\" >&2\nexit 254\n"
	if err := os.WriteFile(filepath.Join(in.bin, "aws"), []byte(stub), 0o755); err != nil {
		t.Fatal(err)
	}
	return log
}

// secretJob is a job with one plain value and one secret, that writes what
// it was given to out.
func secretJob(id, param, out string) *job.Job {
	j := newJob(id, `printf '%s' "$WANDB_API_KEY" >"$OUT_FILE"; echo "LR=$LR"`, time.Hour, map[string]string{"OUT_FILE": out, "LR": "0.1"})
	j.Spec.Env["WANDB_API_KEY"] = job.EnvValue{SSM: param}
	return j
}

// TestWrapperSecret: an env value that names a parameter reaches the job's
// command as the parameter's value, read on the instance with decryption;
// the value is in no output, no file of the attempt, and not in the command
// SSM gets, which names only the parameter.
func TestWrapperSecret(t *testing.T) {
	in := newInstance(t)
	const param = "/nightshift/secrets/wandb"
	log := stubParameterStore(t, in, param)
	out := filepath.Join(in.dir, "seen")
	j := secretJob("secret-test", param, out)

	code, output := in.run(t, j, 10*time.Minute)
	if code != 0 {
		t.Fatalf("wrapper exit code = %d; want 0; output:\n%s", code, output)
	}
	if b, err := os.ReadFile(out); err != nil || string(b) != secretValue {
		t.Errorf("the command saw $WANDB_API_KEY = %q, %v; want the parameter's value %q", b, err, secretValue)
	}
	if _, err := os.Stat("/tmp/pwned"); err == nil {
		t.Errorf("/tmp/pwned exists: the secret's value ran as shell")
	}
	if !strings.Contains(output, "LR=0.1") {
		t.Errorf("output = %q; want the job's own output", output)
	}
	b, err := os.ReadFile(log)
	if err != nil {
		t.Fatal(err)
	}
	wantCall := "ssm get-parameter --region us-east-1 --with-decryption --name " + param + " --query Parameter.Value --output text"
	if !strings.Contains(string(b), wantCall+"\n") {
		t.Errorf("aws calls:\n%s\nwant %q", b, wantCall)
	}

	launcher, err := runner.Launcher(j, "i-0123456789abcdef0", 10*time.Minute, runner.ScriptOptions{StateDir: in.stateDir, Region: "us-east-1"})
	if err != nil {
		t.Fatal(err)
	}
	script, err := runner.Script(j, "i-0123456789abcdef0", 10*time.Minute, runner.ScriptOptions{StateDir: in.stateDir, Region: "us-east-1"})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(script, "\nns_secret WANDB_API_KEY "+runner.Quote(param)+"\n") {
		t.Errorf("the wrapper does not read $WANDB_API_KEY from %s", param)
	}
	seen := map[string]string{"the output": output, "the launcher SSM gets": launcher, "the wrapper": script}
	for _, f := range []string{"stdout", "stderr"} {
		b, err := os.ReadFile(filepath.Join(in.attemptDir(j), f))
		if err != nil {
			t.Fatal(err)
		}
		seen["the attempt's "+f] = string(b)
	}
	for where, text := range seen {
		// The value, or any line of it long enough to be its own.
		if strings.Contains(text, secretValue) || strings.Contains(text, "wandb-k3y") {
			t.Errorf("%s holds the secret's value:\n%s", where, text)
		}
	}
	h, err := runner.ParseHeader(launcher)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[string]string{"WANDB_API_KEY": param}, h.Secrets); diff != "" {
		t.Errorf("header secrets (-want +got):\n%s", diff)
	}
}

// TestWrapperSecretUnreadable: a parameter the instance cannot read (it does
// not exist, or the role may not read it) ends the attempt with
// SecretExitCode before the command runs, with a message that names the
// parameter, the exit code recorded and the idle timer armed.
func TestWrapperSecretUnreadable(t *testing.T) {
	in := newInstance(t)
	const param = "/nightshift/secrets/gone"
	stubParameterStore(t, in, "/nightshift/secrets/wandb")
	out := filepath.Join(in.dir, "seen")
	j := secretJob("secret-gone", param, out)

	code, output := in.run(t, j, 10*time.Minute)
	if code != runner.SecretExitCode || runner.SecretExitCode != 96 {
		t.Fatalf("wrapper exit code = %d (SecretExitCode %d); want 96; output:\n%s", code, runner.SecretExitCode, output)
	}
	if !strings.Contains(output, "cannot read parameter "+param+" for $WANDB_API_KEY") {
		t.Errorf("output = %q; want it to name the parameter and the variable", output)
	}
	if b, err := os.ReadFile(filepath.Join(in.attemptDir(j), "exit_code")); err != nil || strings.TrimSpace(string(b)) != "96" {
		t.Errorf("exit_code file = %q, %v; want 96", b, err)
	}
	if calls := in.shutdowns(t); len(calls) == 0 || calls[len(calls)-1] != "-P +11" {
		t.Errorf("shutdown calls %v; want the idle timer armed last (-P +11)", calls)
	}
	if _, err := os.Stat(out); err == nil {
		t.Errorf("the command ran")
	}
}
