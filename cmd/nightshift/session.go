package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"regexp"
	"strconv"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
)

// Session Manager port forwarding, as the AWS CLI v2 does it: StartSession
// here, with the user's credentials, then session-manager-plugin with the
// session, which opens the local port and the stream to the agent
// (awscli/customizations/sessionmanager.py).

// portForwardingDocument is the Session Manager document that forwards a
// port of the user's machine to a port on the instance.
const portForwardingDocument = "AWS-StartPortForwardingSession"

// pluginName is the Session Manager plugin's executable.
const pluginName = "session-manager-plugin"

// pluginResponseEnv is the environment variable the AWS CLI hands the
// StartSession response in, to a plugin newer than
// lastPluginWithoutEnv, so that the session's token is not on the
// command line for anyone on the machine to read in the process list.
const (
	pluginResponseEnv    = "AWS_SSM_START_SESSION_RESPONSE"
	lastPluginWithoutEnv = "1.2.497.0"
)

type ssmAPI interface {
	StartSession(ctx context.Context, in *ssm.StartSessionInput, opts ...func(*ssm.Options)) (*ssm.StartSessionOutput, error)
	TerminateSession(ctx context.Context, in *ssm.TerminateSessionInput, opts ...func(*ssm.Options)) (*ssm.TerminateSessionOutput, error)
}

// pluginCommand is one run of session-manager-plugin.
type pluginCommand struct {
	Path string
	// Args are its arguments, after the executable's name.
	Args []string
	// Env is what is added to this process's environment for it.
	Env []string
}

// pluginCommandLine builds the plugin's command line exactly as the AWS CLI
// does: the session (SessionId, TokenValue, StreamUrl) as JSON, or the name
// of the variable holding it; the Region; "StartSession"; the profile (""
// for the default chain); the StartSession request as JSON, whose Target
// the plugin reads; the SSM endpoint URL.
func pluginCommandLine(path, version string, out *ssm.StartSessionOutput, region, profile string, in *ssm.StartSessionInput, endpoint string) (pluginCommand, error) {
	if out == nil || out.SessionId == nil || out.TokenValue == nil || out.StreamUrl == nil {
		return pluginCommand{}, errors.New("StartSession answered without a session id, token or stream URL")
	}
	resp, err := marshalPlain(struct {
		SessionID  string `json:"SessionId"`
		TokenValue string `json:"TokenValue"`
		StreamURL  string `json:"StreamUrl"`
	}{aws.ToString(out.SessionId), aws.ToString(out.TokenValue), aws.ToString(out.StreamUrl)})
	if err != nil {
		return pluginCommand{}, err
	}
	req, err := marshalPlain(struct {
		Target       string              `json:"Target"`
		DocumentName string              `json:"DocumentName,omitempty"`
		Parameters   map[string][]string `json:"Parameters,omitempty"`
	}{aws.ToString(in.Target), aws.ToString(in.DocumentName), in.Parameters})
	if err != nil {
		return pluginCommand{}, err
	}
	pc := pluginCommand{Path: path}
	first := string(resp)
	if pluginTakesEnv(version) {
		pc.Env = []string{pluginResponseEnv + "=" + string(resp)}
		first = pluginResponseEnv
	}
	pc.Args = []string{first, region, "StartSession", profile, string(req), endpoint}
	return pc, nil
}

// marshalPlain is JSON as Python's json.dumps writes it for the AWS CLI:
// no HTML escapes of & < >.
func marshalPlain(v any) ([]byte, error) {
	var b bytes.Buffer
	e := json.NewEncoder(&b)
	e.SetEscapeHTML(false)
	if err := e.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

var pluginVersionPattern = regexp.MustCompile(`^\d+(\.\d+){0,3}$`)

// pluginTakesEnv reports whether a plugin of this version (its --version
// output) reads the session from pluginResponseEnv: one newer than
// lastPluginWithoutEnv. One that does not say is handed it on the
// command line, as the AWS CLI does.
func pluginTakesEnv(version string) bool {
	v := strings.Join(strings.Fields(version), "")
	if !pluginVersionPattern.MatchString(v) {
		return false
	}
	a, b := versionParts(v), versionParts(lastPluginWithoutEnv)
	for len(a) < len(b) {
		a = append(a, 0)
	}
	for len(b) < len(a) {
		b = append(b, 0)
	}
	for i := range a {
		if a[i] != b[i] {
			return a[i] > b[i]
		}
	}
	return false
}

func versionParts(v string) []int {
	var out []int
	for _, p := range strings.Split(v, ".") {
		n, _ := strconv.Atoi(p)
		out = append(out, n)
	}
	return out
}

// pluginStartError: the plugin could not be started at all.
type pluginStartError struct{ err error }

func (e *pluginStartError) Error() string { return e.err.Error() }
func (e *pluginStartError) Unwrap() error { return e.err }

// runPluginOS runs the plugin with this process's terminal. While it runs,
// Ctrl-C (and the terminal's other job-control signals the AWS CLI
// ignores) goes to the plugin, which ends the session, not to this
// process: the signals are caught here and dropped.
func runPluginOS(_ context.Context, pc pluginCommand) error {
	cmd := exec.Command(pc.Path, pc.Args...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.Env = append(os.Environ(), pc.Env...)
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt)
	defer signal.Stop(sigs)
	go func() {
		for range sigs {
		}
	}()
	if err := cmd.Start(); err != nil {
		return &pluginStartError{err}
	}
	return cmd.Wait()
}

func pluginVersionOS(ctx context.Context, path string) (string, error) {
	out, err := exec.CommandContext(ctx, path, "--version").Output()
	return string(out), err
}

// portFreeOS reports whether port can be listened on, on this machine's
// loopback, where the plugin listens.
func portFreeOS(port int) bool {
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		return false
	}
	_ = l.Close()
	return true
}

// ssmEndpointURL is the SSM endpoint the plugin is told of, as the AWS
// CLI tells it its client's: AWS_ENDPOINT_URL's if set, else the
// Region's.
func ssmEndpointURL(ctx context.Context, cfg aws.Config) string {
	if cfg.BaseEndpoint != nil && *cfg.BaseEndpoint != "" {
		return *cfg.BaseEndpoint
	}
	ep, err := ssm.NewDefaultEndpointResolverV2().ResolveEndpoint(ctx, ssm.EndpointParameters{Region: aws.String(cfg.Region)})
	if err != nil {
		return "https://ssm." + cfg.Region + ".amazonaws.com"
	}
	return ep.URI.String()
}

// pluginMissing says how to install the plugin: the AWS documentation's
// commands.
var pluginMissing = fmt.Sprintf(`nightshift: %[1]s is not on your PATH. Port forwarding through Session Manager needs it; install it:
  Debian/Ubuntu (x86_64; ubuntu_arm64 for ARM):
    curl "https://s3.amazonaws.com/session-manager-downloads/plugin/latest/ubuntu_64bit/session-manager-plugin.deb" -o "session-manager-plugin.deb"
    sudo dpkg -i session-manager-plugin.deb
  macOS (Apple silicon; mac for Intel):
    curl "https://s3.amazonaws.com/session-manager-downloads/plugin/latest/mac_arm64/session-manager-plugin.pkg" -o "session-manager-plugin.pkg"
    sudo installer -pkg session-manager-plugin.pkg -target /
    sudo ln -s /usr/local/sessionmanagerplugin/bin/session-manager-plugin /usr/local/bin/session-manager-plugin
  elsewhere: https://docs.aws.amazon.com/systems-manager/latest/userguide/session-manager-working-with-install-plugin.html
`, pluginName)
