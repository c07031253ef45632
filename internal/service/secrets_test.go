package service

import (
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/nightshift-dev/nightshift/internal/config"
	"github.com/nightshift-dev/nightshift/internal/job"
	"github.com/nightshift-dev/nightshift/internal/store"
)

// TestSecretsPrefixReachesJobs: the deployment's NIGHTSHIFT_SECRETS_PREFIX
// is what a job message's secrets are checked against; unset, a message
// that names a parameter is rejected.
func TestSecretsPrefixReachesJobs(t *testing.T) {
	msg := func(param string) []byte {
		return []byte(`{"command": "python train.py", "env": {"WANDB_API_KEY": {"ssm": "` + param + `"}}}`)
	}
	tests := []struct {
		name   string
		prefix string // NIGHTSHIFT_SECRETS_PREFIX
		param  string
		ok     bool
	}{
		{name: "under the prefix", prefix: "/nightshift/secrets/", param: "/nightshift/secrets/wandb", ok: true},
		{name: "outside it", prefix: "/nightshift/secrets/", param: "/prod/db-password"},
		{name: "secrets off", prefix: "", param: "/nightshift/secrets/wandb"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := config.FromEnv(func(k string) string {
				return map[string]string{"NIGHTSHIFT_TABLE": "jobs", "NIGHTSHIFT_SECRETS_PREFIX": tt.prefix}[k]
			})
			if err != nil {
				t.Fatal(err)
			}
			svc := New(s, Clients{}, store.NewMemory(), time.Now, slog.New(slog.NewTextHandler(io.Discard, nil)))
			_, err = job.Parse(msg(tt.param), svc.Scheduler.Defaults())
			var bad *job.Error
			if tt.ok && err != nil || !tt.ok && !errors.As(err, &bad) {
				t.Errorf("Parse(env from %q) with prefix %q = %v; want ok %v", tt.param, tt.prefix, err, tt.ok)
			}
		})
	}
}
