package fleet_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/nightshift-dev/nightshift/internal/awssim"
	"github.com/nightshift-dev/nightshift/internal/fleet"
)

// TestLaunchRefusals: what no retry changes is told apart by whose it is —
// the job's message (ErrJob: the job fails with what to change) or the
// deployment's settings (ErrDeployment: launches pause) — and stops the
// launch at once, whatever types and subnets are left to try.
func TestLaunchRefusals(t *testing.T) {
	tests := []struct {
		name     string
		give     func(*fleet.LaunchRequest)
		setup    func(*testFleet)
		wantKind error
		wantCode string
		wantText string
	}{
		{
			name:     "the job's AMI does not exist",
			give:     func(r *fleet.LaunchRequest) { r.AMI, r.Chose.AMI = "ami-0nope0000000001", true },
			wantKind: fleet.ErrJob, wantCode: "InvalidAMIID.NotFound", wantText: "instance.ami",
		},
		{
			name:     "the deployment's AMI does not exist",
			setup:    func(f *testFleet) { f.cloud.Parameters[testParam] = "ami-0gone000000001" },
			wantKind: fleet.ErrDeployment, wantCode: "InvalidAMIID.NotFound", wantText: "AmiParameter",
		},
		{
			name:     "the job's AMI parameter is missing",
			give:     func(r *fleet.LaunchRequest) { r.AMI, r.Chose.AMI = "resolve:ssm:/mine/ami", true },
			wantKind: fleet.ErrJob, wantCode: "ParameterNotFound", wantText: "instance.ami",
		},
		{
			name:     "the deployment's AMI parameter is missing",
			setup:    func(f *testFleet) { delete(f.cloud.Parameters, testParam) },
			wantKind: fleet.ErrDeployment, wantCode: "ParameterNotFound", wantText: "AmiParameter",
		},
		{
			name:     "the job's volume is smaller than the snapshot",
			give:     func(r *fleet.LaunchRequest) { r.VolumeGB, r.Chose.Volume = 20, true },
			wantKind: fleet.ErrJob, wantCode: "InvalidBlockDeviceMapping", wantText: "instance.volume_gb",
		},
		{
			name:     "the pool's volume is smaller than the snapshot",
			give:     func(r *fleet.LaunchRequest) { r.VolumeGB = 20 },
			wantKind: fleet.ErrDeployment, wantCode: "InvalidBlockDeviceMapping", wantText: "VolumeSizeGB",
		},
		{
			name:     "the launch template is gone",
			setup:    func(f *testFleet) { f.cloud.LaunchTemplates = map[string]bool{"lt-0other": true} },
			wantKind: fleet.ErrDeployment, wantCode: "InvalidLaunchTemplateId.NotFound", wantText: "redeploy",
		},
		{
			name:     "PassRole denied",
			setup:    func(f *testFleet) { f.fail["g5.xlarge/on-demand/subnet-a"] = "UnauthorizedOperation" },
			wantKind: fleet.ErrDeployment, wantCode: "UnauthorizedOperation", wantText: "PassRole",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newTestFleet("subnet-a", "subnet-b")
			f.cloud.Images = map[string]awssim.Image{testAMI: {Snapshot: "snap-dlami", SnapshotGB: 65}, "ami-0custom00000001": {SnapshotGB: 8}}
			if tt.setup != nil {
				tt.setup(f)
			}
			req := request("", "g5.xlarge", "g4dn.xlarge")
			if tt.give != nil {
				tt.give(&req)
			}
			_, err := f.Launch(context.Background(), req)
			var le *fleet.LaunchError
			if !errors.Is(err, tt.wantKind) || !errors.As(err, &le) || le.Code != tt.wantCode {
				t.Fatalf("Launch() = %v; want a *LaunchError %v with code %s", err, tt.wantKind, tt.wantCode)
			}
			if fleet.Transient(err) || errors.Is(err, fleet.ErrNoAnswer) {
				t.Errorf("Launch() = %v; want it permanent and answered", err)
			}
			if !strings.Contains(err.Error(), tt.wantText) {
				t.Errorf("Launch() = %q; want it to say %q", err, tt.wantText)
			}
			if n := len(f.tries()); n > 1 {
				t.Errorf("Launch() made %d RunInstances calls: %v; want at most 1 — no other type or subnet changes the answer", n, f.tries())
			}
		})
	}
}
