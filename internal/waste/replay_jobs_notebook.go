package waste

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/nightshift-dev/nightshift/internal/awssim"
	"github.com/nightshift-dev/nightshift/internal/job"
)

// jobNotebooks: each session is a nightshift notebook, as `nightshift
// notebook NAME` makes it. The person's arrival sends the notebook message
// (or, with the notebook's last session still running, reuses it, as the
// command line does); their phases start once the session is RUNNING —
// JupyterLab answers — and show on the simulated Jupyter and the Session
// Manager sessions: work is a browser connected through a port-forwarding
// session and the kernel active, the GPU busy; read a browser connected,
// nothing running; busy the kernel and GPU busy with the laptop closed (no
// connection, no session); a Leave end nothing; an Open end a browser
// connected, nothing running, until the next arrival or OpenTabLimit.
// The notebook's wrapper (modelled by the harness) ends the session when
// its person has left, and nightshift stops the instance.
type jobNotebooks struct {
	*watchedNotebooks // the bookkeeping and the measure are the same
	// live is each notebook's session job, while one may be live.
	live map[string]string
	seq  int
}

func newJobNotebooks(rp *replay) *jobNotebooks {
	return &jobNotebooks{watchedNotebooks: newWatchedNotebooks(rp), live: map[string]string{}}
}

// usage: the simulator's own model — nightshift reads Jupyter, the
// sessions and the GPU from the instance, not EC2's metrics.
func (jn *jobNotebooks) usage(string, time.Time) (awssim.Usage, bool) {
	return awssim.Usage{}, false
}

// readyPoll is how often the person looks whether their notebook is
// ready, as `nightshift notebook` polls the job's log.
const readyPoll = 3 * time.Second

func (jn *jobNotebooks) arrive(ev Event) {
	rp := jn.rp
	nb := jn.byName[ev.Name]
	if nb == nil {
		nb = &watched{name: ev.Name}
		jn.byName[ev.Name] = nb
	}
	nb.seq++ // an earlier session's open tab is closed from here on
	nb.arrivals = append(nb.arrivals, ev.At.Add(rp.shift))
	if id, ok := jn.live[ev.Name]; ok {
		if j, err := rp.w.Store.Job(rp.ctx, id); err == nil && !j.State.Terminal() && !j.CancelRequested() {
			jn.wait(nb, id, ev)
			return
		}
	}
	jn.seq++
	id := fmt.Sprintf("nb%d-%s", jn.seq, ev.Name)
	max := min(ev.Session.Duration()+ReplayRuntimeMargin+time.Hour, job.MaxRuntimeLimit)
	if ev.Session.End == Open {
		max = job.MaxRuntimeLimit
	}
	body, err := json.Marshal(map[string]any{
		"id": id,
		"notebook": map[string]any{
			"name": ev.Name, "idle": rp.p.NotebookIdle.String(), "idle_connected": rp.p.NotebookIdleConnected.String(),
		},
		"max_runtime": max.Round(time.Minute).String(),
	})
	if err != nil {
		rp.finding("line %d: %v", ev.Line, err)
		return
	}
	jn.live[ev.Name] = id
	rp.w.Send(string(body))
	rp.w.Poll(rp.ctx)
	jn.wait(nb, id, ev)
}

// wait polls the session until it runs, then plays the person's phases.
func (jn *jobNotebooks) wait(nb *watched, id string, ev Event) {
	rp := jn.rp
	seq := nb.seq
	var poll func()
	poll = func() {
		if nb.seq != seq {
			return
		}
		j, err := rp.w.Store.Job(rp.ctx, id)
		switch {
		case err != nil:
		case j.State == job.Running:
			if nb.id == "" {
				nb.id = j.InstanceID
				jn.byID[nb.id] = nb
			} else if nb.id != j.InstanceID {
				rp.finding("line %d: notebook %s ran on %s, not its own instance %s", ev.Line, nb.name, j.InstanceID, nb.id)
			}
			start := rp.w.Clock.Now()
			if n := len(nb.sessions); n > 0 {
				start = latest(start, nb.sessions[n-1].to)
			}
			jn.play(nb, id, start, ev)
			return
		case j.State.Terminal():
			rp.finding("line %d: notebook %s's session %s ended %s before its person began (%s)", ev.Line, nb.name, id, j.State, j.Reason)
			return
		}
		rp.at(rp.w.Clock.Now().Add(readyPoll), poll)
	}
	poll()
}

// show sets what the person does on the notebook's instance, if the
// arrival that asked is still the latest.
func (jn *jobNotebooks) show(nb *watched, seq int, p Presence) {
	if nb.seq != seq {
		return
	}
	c := jn.rp.w.Cloud
	j := awssim.Jupyter{}
	if p.Connected {
		j.Connections = 1
	}
	if p.Active {
		j.KernelBusy, j.GPU = true, 90
	}
	c.SetJupyter(nb.id, j)
	if p.Connected != nb.connected {
		nb.connected = p.Connected
		if i, _ := jn.rp.instance(nb.id); !p.Connected || i.State == "running" {
			c.Session(nb.id, p.Connected)
		}
	}
}

// play schedules the session's phases from start, and its end; at the end
// it checks that the session and its instance lasted.
func (jn *jobNotebooks) play(nb *watched, id string, start time.Time, ev Event) {
	rp := jn.rp
	seq := nb.seq
	end := rp.phases(nb, start, ev.Session, func(p Presence) { jn.show(nb, seq, p) })
	inst, _ := rp.instance(nb.id)
	stops := inst.Stops
	rp.at(end, func() {
		i, _ := rp.instance(nb.id)
		j, err := rp.w.Store.Job(rp.ctx, id)
		if i.Stops != stops || i.State != "running" || err != nil || j.State != job.Running {
			state := ""
			if j != nil {
				state = string(j.State) + ": " + j.Reason
			}
			rp.finding("line %d: notebook %s (%s) ended while its person was in a session (instance %s, session %s)", ev.Line, nb.name, nb.id, i.State, state)
		}
	})
}
