package fleet_test

import (
	"context"
	"errors"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/google/go-cmp/cmp"

	"github.com/nightshift-dev/nightshift/internal/fleet"
)

// TestStopWatched: a watched instance is stopped with StopInstances, even a
// spot one (its person chose how it stops); a managed one is stopped as Stop
// does; one with neither tag is refused before any EC2 call (S4). The
// instance is read through FromEC2, so the tags, not a hand-set field, decide.
func TestStopWatched(t *testing.T) {
	tests := []struct {
		name      string
		give      map[string]string
		spot      bool
		wantErr   error
		wantCalls map[string]int
		wantState types.InstanceStateName
	}{
		{name: "watched", give: map[string]string{fleet.TagWatch: "true"}, wantCalls: map[string]int{"StopInstances": 1}, wantState: types.InstanceStateNameStopping},
		{name: "watched spot", give: map[string]string{fleet.TagWatch: "true"}, spot: true, wantCalls: map[string]int{"StopInstances": 1}, wantState: types.InstanceStateNameStopping},
		{name: "managed", give: map[string]string{fleet.TagManaged: "true"}, wantCalls: map[string]int{"StopInstances": 1}, wantState: types.InstanceStateNameStopping},
		{name: "managed spot", give: map[string]string{fleet.TagManaged: "true"}, spot: true, wantCalls: map[string]int{"TerminateInstances": 1}, wantState: types.InstanceStateNameShuttingDown},
		{name: "untagged", give: map[string]string{"Name": "someone's notebook"}, wantErr: fleet.ErrNotManaged, wantCalls: map[string]int{}, wantState: types.InstanceStateNameRunning},
		{name: "watch tag not true", give: map[string]string{fleet.TagWatch: "false"}, wantErr: fleet.ErrNotManaged, wantCalls: map[string]int{}, wantState: types.InstanceStateNameRunning},
		{name: "both tags not true", give: map[string]string{fleet.TagWatch: "yes", fleet.TagManaged: "1"}, wantErr: fleet.ErrNotManaged, wantCalls: map[string]int{}, wantState: types.InstanceStateNameRunning},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newTestFleet()
			id := f.ec2.add(types.InstanceStateNameRunning, tt.spot, tt.give)
			inst := fleet.FromEC2(*f.ec2.instances[id])
			err := f.StopWatched(context.Background(), inst)
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil) != (err == nil) {
				t.Errorf("StopWatched(%v) = %v; want %v", tt.give, err, tt.wantErr)
			}
			if diff := cmp.Diff(tt.wantCalls, f.ec2.calls); diff != "" {
				t.Errorf("StopWatched(%v) EC2 calls (-want +got):\n%s", tt.give, diff)
			}
			if got := f.ec2.instances[id].State.Name; got != tt.wantState {
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
		id := f.ec2.add(types.InstanceStateNameRunning, false, tt.give)
		if got := fleet.FromEC2(*f.ec2.instances[id]).Watched; got != tt.want {
			t.Errorf("FromEC2(tags %v).Watched = %v; want %v", tt.give, got, tt.want)
		}
	}
}
