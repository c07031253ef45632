package sim

import (
	"strconv"
	"time"

	"github.com/nightshift-dev/nightshift/internal/awssim"
	"github.com/nightshift-dev/nightshift/internal/runner"
	"github.com/nightshift-dev/nightshift/internal/watchdog"
)

// Training is what one attempt of a checkpointed job did, as the wrapper
// model saw it: the progress it restored from the checkpoint, how long its
// command trained, and the progress its last sync saved. Work done and not
// saved (Restored + Trained − Saved) is what the next attempt does again.
type Training struct {
	Attempt                  int
	Restored, Trained, Saved time.Duration
	// Syncs counts its syncs up, by why: "every", "rebalance", "asked"
	// (runner.SyncNow), "notice", "end".
	Syncs map[string]int
}

// Training returns what each attempt of job id did, in order (checkpointed
// jobs only).
func (w *World) Training(id string) []Training {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make([]Training, len(w.training[id]))
	for k, t := range w.training[id] {
		out[k] = *t
		out[k].Syncs = map[string]int{}
		for why, n := range t.Syncs {
			out[k].Syncs[why] = n
		}
	}
	return out
}

// checkpointed models the wrapper of a job with a checkpoint
// (runner/wrapper.sh), whose command resumes from it (as the README's
// snippet does): the command's Duration is the whole training; the model
// restores the progress the checkpoint's S3 object holds and trains for
// the rest. Every look (the header's look_seconds) it does what the real
// wrapper's watch does: on a spot interruption notice in the instance's
// metadata it sends the command TERM (training stops) and syncs the
// checkpoint, then waits for the instance to go, reporting nothing; on a
// rebalance recommendation, or a sync asked (runner.SyncNow), it syncs at
// once; every `every` it syncs. A sync saves the progress so far. When the
// training is done it syncs, records the exit code and arms the idle timer,
// as after any job. An instance lost without notice loses the work since
// the last sync.
func (x wrapper) checkpointed(h *awssim.Host, hd runner.Header, o Outcome) awssim.Outcome {
	ck, dir := *hd.Checkpoint, hd.AttemptDir()
	restored := time.Duration(0)
	if b, ok := h.GetObject(ck.S3); ok {
		restored, _ = time.ParseDuration(b)
	}
	rest := max(0, o.Duration-restored)
	t := &Training{Attempt: hd.Attempt, Restored: restored, Saved: restored, Syncs: map[string]int{}}
	x.w.mu.Lock()
	if x.w.training == nil {
		x.w.training = map[string][]*Training{}
	}
	x.w.training[hd.Job] = append(x.w.training[hd.Job], t)
	x.w.mu.Unlock()

	start := h.Now()
	every := time.Duration(ck.EverySeconds) * time.Second
	look := time.Duration(ck.LookSeconds) * time.Second
	lastSync, lastBeat, asked, rebalanced, stopped := start, start, 0, false, false
	// trained is how long the command has trained by now, at most its rest.
	trained := func() time.Duration { return min(rest, h.Now().Sub(start)) }
	sync := func(why string) {
		x.w.mu.Lock()
		t.Trained, t.Saved = trained(), restored+trained()
		t.Syncs[why]++
		x.w.mu.Unlock()
		h.PutObject(ck.S3, t.Saved.String())
		lastSync = h.Now()
	}
	finish := func(h *awssim.Host, exit int) {
		sync("end")
		h.Write(dir+"/exit_code", strconv.Itoa(exit))
		h.Shutdown(time.Duration(hd.IdleSeconds)*time.Second, "idle timer")
	}
	done := dir + "/done"
	return awssim.Outcome{
		Output: o.Output,
		// The command ends when the look below finds its training done
		// (the file done, with its exit code), or on a stop's TERM; after a
		// notice it never ends by itself: the instance goes first.
		Await:     done,
		Interrupt: dir + "/stop", InterruptGrace: runner.StopGrace,
		Every: look,
		Tick: func(h *awssim.Host) {
			if stopped {
				return
			}
			now := h.Now()
			if now.Sub(lastBeat) >= watchdog.Progress.Period {
				h.PutMetric(watchdog.Progress.Namespace, watchdog.Progress.Name, 0)
				lastBeat = now
			}
			x.w.mu.Lock()
			t.Trained = trained()
			x.w.mu.Unlock()
			if _, ok := h.SpotNotice(); ok {
				stopped = true // TERM: the training stops, its checkpoint is synced
				sync("notice")
				return
			}
			if trained() >= rest {
				stopped = true
				finish(h, o.Exit)
				h.Write(done, strconv.Itoa(o.Exit))
				return
			}
			if n, _ := strconv.Atoi(func() string { v, _ := h.Read(dir + "/sync"); return v }()); n > asked {
				asked = n
				sync("asked")
			}
			if _, ok := h.Rebalance(); ok && !rebalanced {
				rebalanced = true
				sync("rebalance")
			}
			if now.Sub(lastSync) >= every {
				sync("every")
			}
		},
		Then: func(h *awssim.Host, exit int) {
			// A stop: the command ended on its TERM.
			stopped = true
			finish(h, exit)
		},
	}
}

// syncNow models runner.SyncNow's command on the instance: for an attempt
// running here it bumps the count in the file "sync", which the wrapper's
// look answers with a sync; otherwise it does nothing.
func syncNow(h *awssim.Host, sh runner.StopHeader) awssim.Outcome {
	dir := sh.AttemptDir()
	what := "attempt " + strconv.Itoa(sh.Attempt) + " of job " + sh.Job
	_, here := h.Read(dir)
	if _, ended := h.Read(dir + "/exit_code"); !here || ended {
		return awssim.Outcome{Duration: time.Second, Output: "nightshift: " + what + " is not running on this instance: no checkpoint to sync\n"}
	}
	v, _ := h.Read(dir + "/sync")
	n, _ := strconv.Atoi(v)
	h.Write(dir+"/sync", strconv.Itoa(n+1))
	return awssim.Outcome{Duration: time.Second, Output: "nightshift: " + what + ": checkpoint sync asked (rebalance recommendation)\n"}
}
