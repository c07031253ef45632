package fleet

import (
	"errors"
	"fmt"

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
)

// LaunchError explains a failed launch: its kind (one of the Err values
// above, for errors.Is), the AWS error code, and what a person can do.
type LaunchError struct {
	Kind         error
	Code         string
	InstanceType string
	Quota        catalog.Quota
	Region       string
	Err          error
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
	}
	return fmt.Sprintf("launch %s: %v", e.InstanceType, e.Err)
}

// Unwrap lets errors.Is see both the kind and the AWS error.
func (e *LaunchError) Unwrap() []error { return []error{e.Kind, e.Err} }

// classify turns an AWS error into a LaunchError when its code is a known kind.
func classify(err error, instanceType string, spot bool, region string) error {
	le := &LaunchError{Code: awserr.Code(err), InstanceType: instanceType, Quota: catalog.QuotaFor(instanceType, spot), Region: region, Err: err}
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
	default:
		return err
	}
	return le
}

// IsNotFound reports whether err says the instance does not exist.
func IsNotFound(err error) bool { return awserr.EC2NotFound.Has(err) }

// Transient reports whether a launch error may clear up by itself or by a
// person's action, so the job should wait rather than fail.
func Transient(err error) bool {
	return errors.Is(err, ErrCapacity) || errors.Is(err, ErrQuota) || errors.Is(err, ErrSpotQuota) ||
		errors.Is(err, ErrThrottled) || errors.Is(err, ErrUnsupported)
}
