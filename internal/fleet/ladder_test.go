package fleet_test

import (
	"context"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/nightshift-dev/nightshift/internal/fleet"
)

// TestLaunchTokensAfterQuota: a quota refusal ends its (type, market)'s
// subnets, and the next rung's token is still its own place in the ladder:
// a launch repeated after a crash, with the preflight now skipping the
// refused market, sends the same token and gets the same instance.
func TestLaunchTokensAfterQuota(t *testing.T) {
	tf := newTestFleet("subnet-a", "subnet-b", "subnet-c")
	tf.fail["g5.xlarge/spot/subnet-a"] = "MaxSpotInstanceCountExceeded"
	req := request("spot-then-on-demand", "g5.xlarge")
	first, err := tf.Launch(context.Background(), req)
	if err != nil {
		t.Fatalf("Launch: %v", err)
	}
	want := []string{"g5.xlarge/spot/subnet-a -1", "g5.xlarge/on-demand/subnet-a -4"}
	if diff := cmp.Diff(want, sent(tf, req.Token)); diff != "" {
		t.Errorf("tries (-want +got):\n%s", diff)
	}

	// The crash: the job's record never learned of the instance. The
	// repeat's preflight knows spot is out of quota and skips it.
	tf.forget()
	req.NoRoom = func(_ string, spot bool) error {
		if spot {
			return fleet.ErrSpotQuota
		}
		return nil
	}
	again, err := tf.Launch(context.Background(), req)
	if err != nil || again.ID != first.ID {
		t.Errorf("Launch repeated = %s, %v; want the first launch's %s", again.ID, err, first.ID)
	}
	if diff := cmp.Diff([]string{"g5.xlarge/on-demand/subnet-a -4"}, sent(tf, req.Token)); diff != "" {
		t.Errorf("repeated tries (-want +got):\n%s", diff)
	}
}

// sent lists the fleet's RunInstances tries as "type/market/subnet -N",
// N the client token's suffix after the request's token.
func sent(tf *testFleet, token string) []string {
	var out []string
	for _, in := range tf.runs {
		out = append(out, tryKey(in)+" "+strings.TrimPrefix(*in.ClientToken, token))
	}
	return out
}
