package deploy

import "testing"

// TestFunctionsMayAskPlacementScores: every function that launches (the
// fleet is built in each) may call GetSpotPlacementScores and
// DescribeSubnets. Neither has a resource type: IAM takes them on "*" (EC2
// User Guide, "Required permissions for Spot placement score").
func TestFunctionsMayAskPlacementScores(t *testing.T) {
	tpl := loadTemplate(t)
	for _, fn := range []string{"IntakeFunction", "DispatchFunction", "WatchdogFunction"} {
		stmts := principalStatements(t, tpl, fn)
		for _, action := range []string{"ec2:GetSpotPlacementScores", "ec2:DescribeSubnets"} {
			if !allowed(tpl, stmts, action, "*") {
				t.Errorf("%s: %s on \"*\" not allowed; the fleet's PlacementScores needs it", fn, action)
			}
		}
	}
}
