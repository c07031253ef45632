// Package quota is nightshift's use of Service Quotas and of EC2's instance
// list for the vCPUs in use: the applied value of the EC2 vCPU quotas GPU
// instances count against (cached), the vCPUs every pending or running
// instance of the account uses under each (nightshift's and others'), and
// the increase requests — filed, listed, followed.
package quota

import (
	"errors"
	"time"
)

// ServiceCode is the Service Quotas code of EC2: nightshift reads and asks
// for EC2's quotas only.
const ServiceCode = "ec2"

// Request statuses, as Service Quotas names them.
const (
	StatusPending     = "PENDING"
	StatusCaseOpened  = "CASE_OPENED"
	StatusApproved    = "APPROVED"
	StatusDenied      = "DENIED"
	StatusNotApproved = "NOT_APPROVED"
	StatusCaseClosed  = "CASE_CLOSED"
	StatusInvalid     = "INVALID_REQUEST"
)

// Request is one quota increase request, as Service Quotas reports it.
type Request struct {
	ID     string
	CaseID string // the AWS Support case, once one is opened
	Code   string // the quota code, L-…
	// Desired is the value asked for, in vCPUs.
	Desired          float64
	Status           string
	Created, Updated time.Time
}

// CaseURL is the AWS Support console page of a request's case.
func CaseURL(caseID string) string {
	return "https://console.aws.amazon.com/support/home#/case/?displayId=" + caseID
}

// Open reports whether AWS has not decided the request yet.
func (r Request) Open() bool { return r.Status == StatusPending || r.Status == StatusCaseOpened }

// Granted reports whether AWS approved the request.
func (r Request) Granted() bool { return r.Status == StatusApproved }

// Refused reports whether AWS decided against the request (denied, not
// approved, its case closed, or the request invalid).
func (r Request) Refused() bool { return r.Status != "" && !r.Open() && !r.Granted() }

// Errors callers branch on.
var (
	// ErrOpen: the quota has an open request already
	// (ResourceAlreadyExistsException); Service Quotas takes one at a time.
	ErrOpen = errors.New("an increase request for this quota is open already")
	// ErrTooMany: the account has too many open requests (QuotaExceededException).
	ErrTooMany = errors.New("too many open quota increase requests")
	// ErrDenied: the caller may not read or ask (AccessDeniedException,
	// DependencyAccessDeniedException, NoSuchResourceException in a region
	// without the quota).
	ErrDenied = errors.New("Service Quotas refused the call")
)
