package fleet_test

import (
	"context"
	"errors"
	"testing"

	"github.com/aws/smithy-go"
	"github.com/google/go-cmp/cmp"

	"github.com/nightshift-dev/nightshift/internal/awssim"
	"github.com/nightshift-dev/nightshift/internal/fleet"
)

// TestStopWatched: a watched instance is stopped with StopInstances, even a
// spot one (its person chose how it stops); a managed one is stopped as Stop
// does; one with neither tag is refused before any EC2 call (S4). The
// instance is read through FromEC2, so the tags, not a hand-set field, decide.
// A watched spot instance of a one-time request is one EC2 refuses to stop:
// the refusal comes back, and the fleet does not terminate a person's
// instance instead.
func TestStopWatched(t *testing.T) {
	tests := []struct {
		name string
		give map[string]string
		// market of the instance; "" is an on-demand one a person launched
		// from the console.
		market    string
		wantErr   error
		wantCode  string
		wantCalls map[string]int
		wantState string
	}{
		{name: "watched", give: map[string]string{fleet.TagWatch: "true"}, wantCalls: map[string]int{"StopInstances": 1}, wantState: "stopping"},
		{name: "watched persistent spot", give: map[string]string{fleet.TagWatch: "true"}, market: persistentSpot, wantCalls: map[string]int{"StopInstances": 1}, wantState: "stopping"},
		{name: "watched one-time spot", give: map[string]string{fleet.TagWatch: "true"}, market: oneTimeSpot, wantCode: "UnsupportedOperation", wantCalls: map[string]int{"StopInstances": 1}, wantState: "running"},
		{name: "managed", give: map[string]string{fleet.TagManaged: "true"}, market: onDemand, wantCalls: map[string]int{"StopInstances": 1}, wantState: "stopping"},
		{name: "managed spot", give: map[string]string{fleet.TagManaged: "true"}, market: oneTimeSpot, wantCalls: map[string]int{"TerminateInstances": 1}, wantState: "shutting-down"},
		{name: "untagged", give: map[string]string{"Name": "someone's notebook"}, wantErr: fleet.ErrNotManaged, wantCalls: map[string]int{}, wantState: "running"},
		{name: "watch tag not true", give: map[string]string{fleet.TagWatch: "false"}, wantErr: fleet.ErrNotManaged, wantCalls: map[string]int{}, wantState: "running"},
		{name: "both tags not true", give: map[string]string{fleet.TagWatch: "yes", fleet.TagManaged: "1"}, wantErr: fleet.ErrNotManaged, wantCalls: map[string]int{}, wantState: "running"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newTestFleet()
			var id string
			if tt.market == "" {
				id = f.cloud.Launch("g5.xlarge", tt.give, false)
			} else {
				id = f.run(t, tt.market, tt.give)
			}
			f.clock.Advance(awssim.DefaultBoot)
			inst := fleet.FromEC2(f.describe(t, id))
			f.forget()
			err := f.StopWatched(context.Background(), inst)
			var api smithy.APIError
			switch {
			case tt.wantErr != nil:
				if !errors.Is(err, tt.wantErr) {
					t.Errorf("StopWatched(%v) = %v; want %v", tt.give, err, tt.wantErr)
				}
			case tt.wantCode != "":
				if !errors.As(err, &api) || api.ErrorCode() != tt.wantCode {
					t.Errorf("StopWatched(%v) = %v; want AWS error code %s", tt.give, err, tt.wantCode)
				}
			case err != nil:
				t.Errorf("StopWatched(%v) = %v; want nil", tt.give, err)
			}
			if diff := cmp.Diff(tt.wantCalls, f.cloud.Calls); diff != "" {
				t.Errorf("StopWatched(%v) AWS calls (-want +got):\n%s", tt.give, diff)
			}
			if got := f.state(id); got != tt.wantState {
				t.Errorf("StopWatched(%v) left the instance %s; want %s", tt.give, got, tt.wantState)
			}
		})
	}
}

// TestFromEC2Watched: only nightshift:watch=true marks an instance watched.
func TestFromEC2Watched(t *testing.T) {
	tests := []struct {
		give map[string]string
		want bool
	}{
		{give: map[string]string{fleet.TagWatch: "true"}, want: true},
		{give: map[string]string{fleet.TagWatch: "True"}, want: false},
		{give: map[string]string{fleet.TagWatch: ""}, want: false},
		{give: map[string]string{fleet.TagManaged: "true"}, want: false},
		{give: nil, want: false},
	}
	for _, tt := range tests {
		f := newTestFleet()
		id := f.cloud.Launch("g5.xlarge", tt.give, false)
		if got := fleet.FromEC2(f.describe(t, id)).Watched; got != tt.want {
			t.Errorf("FromEC2(tags %v).Watched = %v; want %v", tt.give, got, tt.want)
		}
	}
}
