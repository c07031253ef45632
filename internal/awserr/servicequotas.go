package awserr

// Service Quotas' codes are the modeled errors of its API, as
// aws-sdk-go-v2 declares them in service/servicequotas/types/errors.go and
// the API reference lists them per operation (GetServiceQuota,
// RequestServiceQuotaIncrease, GetRequestedServiceQuotaChange,
// ListRequestedServiceQuotaChangeHistoryByQuota).
var (
	// ServiceQuotasDenied holds the codes of a call the caller may not make
	// or that names nothing there: no permission (AccessDeniedException), a
	// dependency without access, such as the service-linked role
	// (DependencyAccessDeniedException), a quota or request that does not
	// exist (NoSuchResourceException: a region without the quota, a
	// request id that is not the account's).
	ServiceQuotasDenied = codes("AccessDeniedException", "DependencyAccessDeniedException", "NoSuchResourceException")
	// ServiceQuotasOpen holds ResourceAlreadyExistsException:
	// RequestServiceQuotaIncrease's answer while the quota has an open
	// request already.
	ServiceQuotasOpen = codes("ResourceAlreadyExistsException")
	// ServiceQuotasTooMany holds QuotaExceededException: the account has too
	// many open increase requests (Service Quotas' own quota on them).
	ServiceQuotasTooMany = codes("QuotaExceededException")
	// ServiceQuotasInvalid holds the codes of a request Service Quotas will
	// not take as asked: an invalid argument (IllegalArgumentException: a
	// desired value not above the applied one, say) or a quota in a state
	// that takes no request (InvalidResourceStateException).
	ServiceQuotasInvalid = codes("IllegalArgumentException", "InvalidResourceStateException")
	// ServiceQuotasThrottle holds TooManyRequestsException, Service Quotas'
	// throttling code, and the JSON protocol's generic ThrottlingException.
	ServiceQuotasThrottle = codes("TooManyRequestsException", "ThrottlingException")
)
