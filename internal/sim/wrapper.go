package sim

import (
	"strconv"
	"time"

	"github.com/nightshift-dev/nightshift/internal/awssim"
	"github.com/nightshift-dev/nightshift/internal/job"
	"github.com/nightshift-dev/nightshift/internal/runner"
	"github.com/nightshift-dev/nightshift/internal/watchdog"
)

// ExecFunc is what a job's command does when the wrapper runs it.
type ExecFunc func(Run) Outcome

// Run is one attempt's command as the wrapper starts it: what the
// instance's agent received (Commands is the whole wrapper), and the
// attempt it runs.
type Run struct {
	awssim.Run
	JobID   string
	Attempt int
}

// Outcome is how a job's command ended: exit code, virtual duration,
// output. A command that Hangs never ends by itself (SSM's execution
// timeout, a cancel or the dead-man timer ends it) and makes no progress.
type Outcome struct {
	Exit     int
	Duration time.Duration
	Output   string
	Hang     bool
}

// Wrapped is what the wrapper on an instance made of one command: the job
// attempt it runs, or, for a Duplicate, the attempt it found already
// started (it runs nothing and reports that copy's exit code).
type Wrapped struct {
	JobID     string
	Attempt   int
	Duplicate bool
	// Stop: the command is runner.Stop's for the attempt, not the attempt's own.
	Stop bool
	// Sync: the command is runner.SyncNow's for the attempt (a checkpoint
	// sync asked on a rebalance recommendation), not the attempt's own.
	Sync bool
}

// Invocation is a command invocation of the cloud with what the wrapper
// made of it.
type Invocation struct {
	awssim.Invocation
	Wrapped
}

// Invocations returns every command invocation, in send order.
func (w *World) Invocations() []Invocation {
	w.mu.Lock()
	defer w.mu.Unlock()
	invs := w.Cloud.Invocations()
	out := make([]Invocation, len(invs))
	for k, inv := range invs {
		out[k] = Invocation{Invocation: inv, Wrapped: w.attempts[inv.CommandID+"/"+inv.InstanceID]}
	}
	return out
}

// wrapper models on the simulated instance what nightshift's bash wrapper
// (internal/runner) does around a job's command, reading what it needs from
// the command's header (runner.ParseHeader), never from the script's text: the per-attempt lock on
// the root volume (a second copy of an attempt runs nothing and reports the
// first copy's exit code), the dead-man timer, the progress heartbeat
// published every minute, the exit code written, and the idle timer armed
// after the job.
type wrapper struct{ w *World }

func (x wrapper) Run(h *awssim.Host, r awssim.Run) awssim.Outcome {
	if sh, err := runner.ParseStopHeader(r.Commands); err == nil {
		x.w.mu.Lock()
		x.w.attempts[r.CommandID+"/"+r.InstanceID] = Wrapped{JobID: sh.Job, Attempt: sh.Attempt, Stop: true}
		x.w.mu.Unlock()
		return x.stop(h, sh)
	}
	if sh, err := runner.ParseSyncHeader(r.Commands); err == nil {
		x.w.mu.Lock()
		x.w.attempts[r.CommandID+"/"+r.InstanceID] = Wrapped{JobID: sh.Job, Attempt: sh.Attempt, Sync: true}
		x.w.mu.Unlock()
		return syncNow(h, sh)
	}
	hd, err := runner.ParseHeader(r.Commands)
	if err != nil {
		return awssim.Outcome{Exit: 2, Output: "sim: not a nightshift wrapper: " + err.Error() + "\n"}
	}
	dir := hd.AttemptDir()
	first := h.Create(dir)
	x.w.mu.Lock()
	x.w.attempts[r.CommandID+"/"+r.InstanceID] = Wrapped{JobID: hd.Job, Attempt: hd.Attempt, Duplicate: !first}
	x.w.mu.Unlock()
	if !first {
		return awssim.Outcome{Idle: true, Await: dir + "/exit_code", Output: "nightshift: attempt already started on this instance; reporting its result\n"}
	}
	h.Shutdown(time.Duration(hd.DeadmanSeconds)*time.Second, "dead-man timer")
	if hd.Notebook != nil {
		return notebook(h, hd, x.w.NotebookStuck)
	}
	o := Outcome{Duration: time.Minute}
	if x.w.Exec != nil {
		o = x.w.Exec(Run{Run: r, JobID: hd.Job, Attempt: hd.Attempt})
	}
	if hd.Checkpoint != nil && !o.Hang {
		return x.checkpointed(h, hd, o)
	}
	started := h.Now()
	return awssim.Outcome{
		Exit: o.Exit, Duration: o.Duration, Output: o.Output, Hang: o.Hang,
		// A stop (see stop) ends the job after the wrapper's grace, the
		// longest a job that ignores TERM takes; then, as after any end,
		// the outputs are synced, the exit code written, the idle timer armed.
		Interrupt: dir + "/stop", InterruptGrace: runner.StopGrace,
		Every: watchdog.Progress.Period,
		Tick: func(h *awssim.Host) {
			since := 0.0 // a working job writes output: its last progress is just now
			if o.Hang {
				since = h.Now().Sub(started).Seconds()
			}
			h.PutMetric(watchdog.Progress.Namespace, watchdog.Progress.Name, since)
		},
		Then: func(h *awssim.Host, exit int) {
			h.Write(dir+"/exit_code", strconv.Itoa(exit))
			h.Shutdown(time.Duration(hd.IdleSeconds)*time.Second, "idle timer")
		},
	}
}

// stop models runner.Stop's command on the instance: for an attempt that
// runs here it leaves the stop file, which the attempt's wrapper (Run)
// takes as the TERM; for one that has ended or is not here it does nothing.
// The command itself succeeds at once either way.
func (x wrapper) stop(h *awssim.Host, sh runner.StopHeader) awssim.Outcome {
	dir := sh.AttemptDir()
	what := "attempt " + strconv.Itoa(sh.Attempt) + " of job " + sh.Job
	if _, ok := h.Read(dir); !ok {
		return awssim.Outcome{Duration: time.Second, Output: "nightshift: " + what + " is not on this instance: nothing to stop\n"}
	}
	if code, ok := h.Read(dir + "/exit_code"); ok {
		return awssim.Outcome{Duration: time.Second, Output: "nightshift: " + what + " has ended already (exit code " + code + "): nothing to stop\n"}
	}
	h.Write(dir+"/stop", strconv.Itoa(runner.StopExitCode))
	return awssim.Outcome{Duration: time.Second, Output: "nightshift: " + what + ": TERM sent to its wrapper\n"}
}

// notebook models a notebook's wrapper (internal/runner/notebook.sh):
// JupyterLab runs until its person has left. Every look it reads what the
// notebook shows (Host.Jupyter, the Session Manager sessions) as the real
// one reads Jupyter's REST API, pgrep and nvidia-smi; every minute it
// publishes the most it saw as NotebookState; once nobody has been
// connected with nothing running for the idle timeout, or a browser
// connected with nothing running for the connected one, it ends JupyterLab
// and exits 0. A stop (TERM) ends JupyterLab within seconds.
func notebook(h *awssim.Host, hd runner.Header, stuck bool) awssim.Outcome {
	nb, dir := *hd.Notebook, hd.AttemptDir()
	look := time.Duration(nb.LookSeconds) * time.Second
	present, busy, sent, most := h.Now(), h.Now(), h.Now(), 0
	return awssim.Outcome{
		// It never ends by itself but through the look below; SSM's
		// execution timeout (max runtime) ends it otherwise.
		Exit: 0, Duration: time.Duration(hd.MaxRuntimeSeconds)*time.Second + time.Hour,
		Output:    job.NotebookReady + "http://127.0.0.1:" + strconv.Itoa(nb.Port) + "/lab?token=sim\n",
		Interrupt: dir + "/stop", InterruptGrace: notebookStopGrace,
		Every: look,
		Tick: func(h *awssim.Host) {
			now, st := h.Now(), NotebookState(h.Jupyter(), h.Sessions(), nb.GPUPercent)
			if st >= runner.NotebookConnected {
				present = now
			}
			if st >= runner.NotebookBusy {
				busy = now
			}
			most = max(most, st)
			if now.Sub(sent) >= time.Minute {
				h.PutMetric(watchdog.NotebookState.Namespace, watchdog.NotebookState.Name, float64(most))
				sent, most = now, 0
			}
			if stuck {
				return
			}
			if now.Sub(present) >= time.Duration(nb.IdleSeconds)*time.Second || now.Sub(busy) >= time.Duration(nb.IdleConnectedSeconds)*time.Second {
				if _, stopping := h.Read(dir + "/stop"); !stopping {
					h.Write(dir+"/stop", "0") // ends itself, exit 0, as after a TERM of its own
				}
			}
		},
		Then: func(h *awssim.Host, exit int) {
			h.Write(dir+"/exit_code", strconv.Itoa(exit))
			h.Shutdown(time.Duration(hd.IdleSeconds)*time.Second, "idle timer")
		},
	}
}

// notebookStopGrace is how long JupyterLab takes to end on TERM.
const notebookStopGrace = 2 * time.Second

// NotebookState is what a notebook's wrapper makes of what it sees: busy
// (a kernel busy or active, the GPU busy), connected (a browser or a
// Session Manager session), or away.
func NotebookState(j awssim.Jupyter, sessions, gpuPercent int) int {
	switch {
	case j.KernelBusy || j.GPU >= float64(gpuPercent):
		return runner.NotebookBusy
	case j.Connections > 0 || sessions > 0:
		return runner.NotebookConnected
	}
	return runner.NotebookAway
}
