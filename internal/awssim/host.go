package awssim

import (
	"strconv"
	"time"
)

// Executor runs what SSM delivers to an instance: the operating system and
// whatever program the command starts. The cloud models only what AWS and
// the OS provide — the process's lifetime, its exit code and output, the
// execution timeout, the disk, the power-off timer; the executor says what
// the program does with them.
type Executor interface {
	Run(h *Host, r Run) Outcome
}

// ExecFunc adapts a function to Executor.
type ExecFunc func(h *Host, r Run) Outcome

// Run calls f.
func (f ExecFunc) Run(h *Host, r Run) Outcome { return f(h, r) }

// Run is one command invocation as the instance's agent receives it.
type Run struct {
	InstanceID, CommandID, Comment string
	// Commands is the AWS-RunShellScript "commands" parameter, lines joined.
	Commands string
	// WorkingDirectory is the "workingDirectory" parameter, if any.
	WorkingDirectory string
	// Timeout is the execution timeout.
	Timeout time.Duration
}

// Outcome is how a process behaves. It exits with Exit after Duration
// (virtual time), unless it Hangs, or Awaits a file, or SSM's execution
// timeout, a cancel or the instance's stop ends it first.
type Outcome struct {
	Exit     int
	Duration time.Duration
	Output   string
	// Hang: the process never ends by itself, and does no work.
	Hang bool
	// Idle: the process does no work while it runs (it waits on another).
	Idle bool
	// Await, when set, is a file on the instance's disk: the process ends
	// when the file is written, with its content as the exit code.
	Await string
	// Interrupt, when set, is a file on the instance's disk: when it is
	// written while the process runs, the process ends by itself
	// InterruptGrace later (Then runs), with the file's content as its exit
	// code — a program that handles a signal and exits.
	Interrupt      string
	InterruptGrace time.Duration
	// Every and Tick: while the process runs, Tick runs every Every.
	Every time.Duration
	Tick  func(h *Host)
	// Then runs as the process exits by itself, with its exit code; not
	// when it is killed (timeout, cancel, the instance stopping).
	Then func(h *Host, exit int)
}

// Host is a running instance as a process on it sees it: its disk, its
// power-off timer, the metrics it publishes. Its methods lock the cloud:
// call them from an executor, never while holding the cloud.
type Host struct {
	c *Cloud
	i *Instance
}

// ID returns the instance id.
func (h *Host) ID() string { return h.i.ID }

// Now returns the virtual time.
func (h *Host) Now() time.Time { return h.c.clock.Now() }

// Create creates an empty file, as mkdir does a directory: it reports false
// when the path exists already.
func (h *Host) Create(path string) bool {
	h.c.mu.Lock()
	defer h.c.mu.Unlock()
	if _, ok := h.i.disk[path]; ok {
		return false
	}
	h.i.disk[path] = ""
	return true
}

// Read returns a file's content.
func (h *Host) Read(path string) (string, bool) {
	h.c.mu.Lock()
	defer h.c.mu.Unlock()
	v, ok := h.i.disk[path]
	return v, ok
}

// Write writes a file, and ends the processes that await it.
func (h *Host) Write(path, data string) {
	h.c.mu.Lock()
	defer h.c.mu.Unlock()
	h.i.disk[path] = data
	h.c.wake(h.i, path)
}

// Shutdown arms the instance's power-off timer (shutdown -P +after),
// replacing an armed one; after ≤ 0 leaves it as it is. At the timer the
// instance shuts itself down: an on-demand instance stops (its shutdown
// behaviour), a one-time spot instance terminates.
func (h *Host) Shutdown(after time.Duration, why string) {
	h.c.mu.Lock()
	defer h.c.mu.Unlock()
	h.c.arm(h.i, after, why)
}

// PutMetric publishes a datapoint now, as PutMetricData from the instance
// does, with the single dimension InstanceId.
func (h *Host) PutMetric(namespace, name string, value float64) {
	h.c.mu.Lock()
	defer h.c.mu.Unlock()
	k := metricKey{namespace: namespace, name: name, instance: h.i.ID}
	h.c.published[k] = append(h.c.published[k], point{at: h.c.clock.Now(), value: value})
}

// arm sets the instance's own shutdown timer; a later arm replaces it.
func (c *Cloud) arm(i *Instance, d time.Duration, why string) {
	if d <= 0 || c.BrokenShutdown {
		return
	}
	i.timerGen++
	gen, bootGen := i.timerGen, i.gen
	i.ShutdownAt = c.clock.Now().Add(d)
	c.clock.At(i.ShutdownAt, func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		if i.timerGen != gen || i.gen != bootGen || i.State != "running" {
			return
		}
		if i.Spot {
			c.terminate(i, why)
		} else {
			c.stop(i, why)
		}
	})
}

// wake ends the processes on i that await path, or that path interrupts.
func (c *Cloud) wake(i *Instance, path string) {
	for _, inv := range c.commands {
		if inv.InstanceID != i.ID || inv.Status != "InProgress" {
			continue
		}
		code, err := strconv.Atoi(i.disk[path])
		if err != nil {
			code = 1
		}
		switch path {
		case inv.await:
			c.finish(inv, status(code), code, "")
		case inv.interrupt:
			inv.interrupt = "" // one interrupt ends it; a second changes nothing
			gen, then, h := inv.gen, inv.then, inv.host
			c.clock.At(c.clock.Now().Add(inv.interruptGrace), func() {
				c.mu.Lock()
				if inv.gen != gen || inv.Status != "InProgress" {
					c.mu.Unlock()
					return
				}
				c.finish(inv, status(code), code, "")
				c.mu.Unlock()
				if then != nil {
					then(h, code)
				}
			})
		}
	}
}
