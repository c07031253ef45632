package awssim

import (
	"context"
	"fmt"
	"slices"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
)

// session is an active Session Manager session: a shell, or a port
// forwarding one (document AWS-StartPortForwardingSession).
type session struct {
	id, target string
	document   *string
}

// PortForwardingDocument is the Session Manager document that forwards a
// local port to a port on the instance.
const PortForwardingDocument = "AWS-StartPortForwardingSession"

// StartSession opens a Session Manager session to a running instance whose
// agent is online (TargetNotConnected otherwise, as Session Manager
// answers): a shell without a document, or port forwarding with
// AWS-StartPortForwardingSession and its parameters portNumber and
// localPortNumber. Other documents are not modelled. The stream URL and
// token are made up: the data channel is not modelled.
func (c *Cloud) StartSession(_ context.Context, in *ssm.StartSessionInput, _ ...func(*ssm.Options)) (*ssm.StartSessionOutput, error) {
	return serve(c, "StartSession", in, c.startSession)
}

func (c *Cloud) startSession(in *ssm.StartSessionInput) (*ssm.StartSessionOutput, error) {
	target := aws.ToString(in.Target)
	i, err := c.instance("StartSession", target)
	if err != nil {
		return nil, err
	}
	switch doc := aws.ToString(in.DocumentName); doc {
	case "":
	case PortForwardingDocument:
		for _, p := range []string{"portNumber", "localPortNumber"} {
			if v := in.Parameters[p]; len(v) != 1 || v[0] == "" {
				return nil, apiError("InvalidParameters", "%s needs one value of %s", doc, p)
			}
		}
		for p := range in.Parameters {
			if p != "portNumber" && p != "localPortNumber" {
				return nil, apiError("InvalidParameters", "%s has no parameter %s", doc, p)
			}
		}
	default:
		return nil, notModelled("StartSession document %q", doc)
	}
	if !c.online(i) {
		return nil, apiError("TargetNotConnected", "%s is not connected.", target)
	}
	c.seq++
	id := fmt.Sprintf("sim-%d", c.seq)
	c.sessions = append(c.sessions, session{id: id, target: target, document: in.DocumentName})
	return &ssm.StartSessionOutput{
		SessionId: aws.String(id), StreamUrl: aws.String("wss://ssmmessages.sim.amazonaws.com/v1/data-channel/" + id),
		TokenValue: aws.String("sim-token-" + id),
	}, nil
}

// TerminateSession ends a session; ending one that has ended is not an
// error, as Session Manager answers.
func (c *Cloud) TerminateSession(_ context.Context, in *ssm.TerminateSessionInput, _ ...func(*ssm.Options)) (*ssm.TerminateSessionOutput, error) {
	return serve(c, "TerminateSession", in, func(in *ssm.TerminateSessionInput) (*ssm.TerminateSessionOutput, error) {
		id := aws.ToString(in.SessionId)
		c.sessions = slices.DeleteFunc(c.sessions, func(s session) bool { return s.id == id })
		return &ssm.TerminateSessionOutput{SessionId: in.SessionId}, nil
	})
}

// Jupyter is what a Jupyter server on an instance shows through its REST
// API (/api/status, /api/kernels), and what the instance's GPUs do: the
// person's side of a notebook. The harness sets it as the person acts; the
// program on the instance (the wrapper's model) reads it through its Host.
type Jupyter struct {
	// Connections counts browsers connected (kernel websockets, or a tab
	// polling the server).
	Connections int
	// KernelBusy: a kernel is executing, or was active (executing,
	// completing) since the last look.
	KernelBusy bool
	// GPU is the GPUs' utilization, in percent.
	GPU float64
}

// SetJupyter says what the notebook on an instance shows from now on.
func (c *Cloud) SetJupyter(instanceID string, j Jupyter) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.jupyter == nil {
		c.jupyter = map[string]Jupyter{}
	}
	c.jupyter[instanceID] = j
}

// Jupyter returns what the notebook on the instance shows now, as its
// REST API and nvidia-smi answer there.
func (h *Host) Jupyter() Jupyter {
	h.c.mu.Lock()
	defer h.c.mu.Unlock()
	return h.c.jupyter[h.i.ID]
}

// Sessions counts the Session Manager sessions to the instance, as the
// agent's session workers on it show.
func (h *Host) Sessions() int {
	h.c.mu.Lock()
	defer h.c.mu.Unlock()
	n := 0
	for _, s := range h.c.sessions {
		if s.target == h.i.ID {
			n++
		}
	}
	return n
}

// endSessions ends the sessions to an instance that is going down.
func (c *Cloud) endSessions(id string) {
	c.sessions = slices.DeleteFunc(c.sessions, func(s session) bool { return s.target == id })
}
