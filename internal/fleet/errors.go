package fleet

import (
	"errors"
	"fmt"
	"strings"

	"github.com/nightshift-dev/nightshift/internal/awserr"
	"github.com/nightshift-dev/nightshift/internal/catalog"
)

// The kinds of launch failure callers branch on. Capacity, quota, throttling
// and an unsupported zone are transient or fixable by a person: the job waits.
var (
	ErrCapacity    = errors.New("insufficient capacity")
	ErrQuota       = errors.New("vCPU or instance quota reached")
	ErrSpotQuota   = errors.New("spot quota reached")
	ErrThrottled   = errors.New("EC2 API throttled")
	ErrUnsupported = errors.New("instance type not offered in this zone")
	ErrNotManaged  = errors.New("instance is not managed by nightshift")
	// ErrNoAnswer marks a launch that AWS did not answer: a timeout, a lost
	// connection, a cancelled call, a crash. The instance may exist; a
	// launch repeated with the same token gets it back.
	ErrNoAnswer = errors.New("no answer from AWS")
	// ErrJob: EC2 refused what the job's own message asks for (its AMI, its
	// root volume, its instance types with that AMI). No retry helps; the
	// job's message must change.
	ErrJob = errors.New("EC2 refused what the job asks for")
	// ErrDeployment: EC2 refused the deployment's own launch settings (a
	// subnet, the launch template, a permission, the default AMI), or
	// answered with an error nightshift does not know. Every launch of the
	// pool would meet it: a person must fix the stack.
	ErrDeployment = errors.New("EC2 refused the deployment's launch settings")
)

// LaunchError explains a failed launch: its kind (one of the Err values
// above, for errors.Is), the AWS error code, and what a person can do.
type LaunchError struct {
	Kind         error
	Code         string
	InstanceType string
	Quota        catalog.Quota
	Region       string
	// Fix says what to change, for ErrJob and ErrDeployment.
	Fix string
	Err error
}

// message is AWS's own message of err, or its text.
func message(err error) string {
	if m := awserr.Message(err); m != "" {
		return m
	}
	return err.Error()
}

func (e *LaunchError) Error() string {
	switch e.Kind {
	case ErrQuota, ErrSpotQuota:
		return fmt.Sprintf("%s for %s (%s): the account's quota %s %q is too low, possibly 0; ask for more at %s (Service Quotas → Amazon EC2 → %s), then nightshift places the job by itself",
			e.Kind, e.InstanceType, e.Code, e.Quota.Code, e.Quota.Name, e.Quota.URL(e.Region), e.Quota.Code)
	case ErrCapacity:
		return fmt.Sprintf("%s for %s (%s): AWS has no %s free in this zone right now; nightshift retries every minute, or list more types or subnets", e.Kind, e.InstanceType, e.Code, e.InstanceType)
	case ErrUnsupported:
		return fmt.Sprintf("%s: %s (%s); list other instance types or subnets in other zones", e.Kind, e.InstanceType, e.Code)
	case ErrThrottled:
		return fmt.Sprintf("%s (%s); nightshift retries on the next tick", e.Kind, e.Code)
	case ErrJob:
		return fmt.Sprintf("%s (%s: %s): change the job's %s", e.Kind, e.Code, message(e.Err), e.Fix)
	case ErrDeployment:
		return fmt.Sprintf("%s (%s: %s): %s", e.Kind, e.Code, message(e.Err), e.Fix)
	}
	return fmt.Sprintf("launch %s: %v", e.InstanceType, e.Err)
}

// Unwrap lets errors.Is see both the kind and the AWS error.
func (e *LaunchError) Unwrap() []error { return []error{e.Kind, e.Err} }

// classify turns an AWS error into a LaunchError. r says which of the
// request the job chose (its refusal is the job's to fix) and which the
// deployment did. A non-API error is returned as it is (no answer).
func classify(err error, instanceType string, spot bool, region string, r LaunchRequest) error {
	if !awserr.Answered(err) {
		return err
	}
	le := &LaunchError{Code: awserr.Code(err), InstanceType: instanceType, Quota: catalog.QuotaFor(instanceType, spot), Region: region, Err: err}
	job := func(chose bool, field, fix string) {
		if chose {
			le.Kind, le.Fix = ErrJob, field
			return
		}
		le.Kind, le.Fix = ErrDeployment, fix
	}
	switch {
	case awserr.EC2Capacity.Has(err):
		le.Kind = ErrCapacity
	case awserr.EC2Quota.Has(err):
		le.Kind = ErrQuota
	case awserr.EC2SpotQuota.Has(err):
		le.Kind = ErrSpotQuota
	case awserr.EC2Throttle.Has(err):
		le.Kind = ErrThrottled
	case awserr.EC2Unsupported.Has(err):
		le.Kind = ErrUnsupported
	case awserr.EC2ImageRefused.Has(err), awserr.SSMParameterRefused.Has(err):
		job(r.Chose.AMI, "instance.ami", "check the stack's AmiParameter (or the pool's ami): the AMI it names cannot be launched")
	case awserr.EC2VolumeRefused.Has(err):
		job(r.Chose.Volume, "instance.volume_gb (at least the AMI's snapshot size)", "raise VolumeSizeGB (or the pool's volume_gb) to at least the AMI's snapshot size")
	case awserr.EC2CombinationRefused.Has(err):
		job(r.Chose.AMI || r.Chose.Types, "instance.types or instance.ami (they must suit each other)", "check the pool's instance types against its AMI")
	case awserr.EC2DeploymentRefused.Has(err):
		le.Kind, le.Fix = ErrDeployment, deploymentFix(le.Code)
	default:
		le.Kind, le.Fix = ErrDeployment, "an error nightshift does not know; launches pause and retry with back-off"
	}
	return le
}

// deploymentFix says what to do about a refused deployment setting.
func deploymentFix(code string) string {
	switch {
	case strings.HasPrefix(code, "InvalidSubnetID"):
		return "a subnet in the stack's SubnetIds is gone or wrong: update the stack"
	case strings.HasPrefix(code, "InvalidLaunchTemplate"):
		return "the stack's launch template is gone: redeploy the stack"
	case strings.HasPrefix(code, "InvalidGroup"), strings.HasPrefix(code, "InvalidSecurityGroupID"):
		return "the launch template's security group is gone: redeploy the stack"
	case code == "UnauthorizedOperation", code == "AuthFailure":
		return "the functions' role may not make this launch (iam:PassRole on the instance profile, the launch template, the subnet): check the stack's IAM"
	}
	return "the account may not launch instances yet (verification, opt-in or a block): see the EC2 console"
}

// IsNotFound reports whether err says the instance does not exist.
func IsNotFound(err error) bool { return awserr.EC2NotFound.Has(err) }

// Transient reports whether a launch error may clear up by itself or by a
// person's action, so the job should wait rather than fail.
func Transient(err error) bool {
	return errors.Is(err, ErrCapacity) || errors.Is(err, ErrQuota) || errors.Is(err, ErrSpotQuota) ||
		errors.Is(err, ErrThrottled) || errors.Is(err, ErrUnsupported)
}
