package runner

import (
	_ "embed"
	"path"
	"strconv"
	"time"
)

// notebookText is what a notebook job runs in place of a command: it
// installs JupyterLab into the job's environment when it lacks it, starts
// it on the instance's loopback interface with a fresh token, prints its
// URL (job.NotebookReady), looks at what its person does every
// NotebookLook, publishes the most of each minute as the NotebookState
// metric, and ends JupyterLab once its person has left.
//
//go:embed notebook.sh
var notebookText string

// NotebookLook is how often a notebook's wrapper looks at what its person
// does (Jupyter's REST API, the Session Manager sessions, nvidia-smi): the
// notebook ends within this of its idle timeout.
const NotebookLook = 15 * time.Second

// NotebookInstallExitCode is the exit code of a notebook whose environment
// has no JupyterLab and cannot install it.
const NotebookInstallExitCode = 95

// NotebookGPUPercent is the GPU utilization at which a notebook's GPU is
// busy: the watchdog's idle threshold for watched instances.
const NotebookGPUPercent = 5

// The values of the notebook's state metric (namespace nightshift, metric
// NotebookState, dimension InstanceId): the most of what the wrapper saw in
// each minute.
const (
	NotebookAway      = 0 // nobody connected, nothing running
	NotebookConnected = 1 // a browser or a session connected, nothing running
	NotebookBusy      = 2 // a kernel busy or active, or the GPU busy
)

// notebookDir is where a notebook's files live on its instance, unless the
// message names a workdir: the same directory for every session of the
// notebook, on the root volume, which a stop keeps.
func notebookDir(stateDir, name string) string { return path.Join(stateDir, "notebooks", name) }

// notebookCommand renders what a notebook job runs in place of a command.
func (p plan) notebookCommand() (string, error) {
	n := p.job.Spec.Notebook
	return expand(notebookText, map[string]string{
		"notebook": Quote(n.Name), "port": strconv.Itoa(p.notebookPort),
		"install_exit": strconv.Itoa(NotebookInstallExitCode), "stop_exit": strconv.Itoa(StopExitCode),
		"look_seconds": strconv.Itoa(int(p.notebookLook / time.Second)), "gpu_percent": strconv.Itoa(NotebookGPUPercent),
		"idle_seconds":           strconv.Itoa(int(n.Idle.D() / time.Second)),
		"idle_connected_seconds": strconv.Itoa(int(n.IdleConnected.D() / time.Second)),
		"region":                 Quote(p.region), "instance": Quote(p.instanceID),
	}, nil)
}

// HeaderNotebook is what a notebook wrapper's header says of its notebook.
type HeaderNotebook struct {
	Name string `json:"name"`
	Port int    `json:"port"`
	// IdleSeconds and IdleConnectedSeconds are the notebook's idle
	// timeouts: nobody connected, and a browser connected, with nothing
	// running. LookSeconds is how often the wrapper looks.
	IdleSeconds          int `json:"idle_seconds"`
	IdleConnectedSeconds int `json:"idle_connected_seconds"`
	LookSeconds          int `json:"look_seconds"`
	GPUPercent           int `json:"gpu_percent"`
}

func (p plan) headerNotebook() *HeaderNotebook {
	n := p.job.Spec.Notebook
	if n == nil {
		return nil
	}
	return &HeaderNotebook{
		Name: n.Name, Port: p.notebookPort,
		IdleSeconds: int(n.Idle.D() / time.Second), IdleConnectedSeconds: int(n.IdleConnected.D() / time.Second),
		LookSeconds: int(p.notebookLook / time.Second), GPUPercent: NotebookGPUPercent,
	}
}
