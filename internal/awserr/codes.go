package awserr

// The code sets, by service. EC2's codes are listed in "Error codes for the
// Amazon EC2 API" (docs.aws.amazon.com/AWSEC2/latest/APIReference/errors-overview.html);
// SSM's and DynamoDB's are the modeled errors of their APIs, as
// aws-sdk-go-v2 declares them in service/ssm/types/errors.go and
// service/dynamodb/types/errors.go.

// EC2 refusals of a launch or a start.
var (
	// EC2Capacity: AWS has no room for the request right now. The first
	// four are the errors page's server errors (InsufficientInstanceCapacity
	// also answers StartInstances); UnfulfillableCapacity is its spot
	// capacity error.
	EC2Capacity = codes("InsufficientInstanceCapacity", "InsufficientCapacity", "InsufficientHostCapacity",
		"InsufficientReservedInstanceCapacity", "UnfulfillableCapacity")
	// EC2Quota: the account's on-demand limits, in vCPUs
	// (VcpuLimitExceeded) or, for older accounts, in instances
	// (InstanceLimitExceeded).
	EC2Quota = codes("VcpuLimitExceeded", "InstanceLimitExceeded")
	// EC2SpotQuota: the account's spot limit (MaxSpotInstanceCountExceeded,
	// on the errors page). SpotMaxPriceTooLow, a spot price above the
	// request's maximum, is not on the page; it is kept here because, like
	// the quota, another zone or type does not help and a person's change
	// does.
	EC2SpotQuota = codes("MaxSpotInstanceCountExceeded", "SpotMaxPriceTooLow")
	// EC2Unsupported: the type is not offered in that zone (Unsupported) or
	// not for this request (InvalidInstanceType).
	EC2Unsupported = codes("Unsupported", "InvalidInstanceType")
	// EC2NotFound: the instance does not exist, or the id cannot be one.
	EC2NotFound = codes("InvalidInstanceID.NotFound", "InvalidInstanceID.Malformed")
)

// Throttling, per service: each answers a call over its request rate with
// its own code.
var (
	// EC2Throttle: EC2 throttles every action with RequestLimitExceeded (a
	// server error on the errors page). Throttling and ThrottlingException
	// are not EC2's; they are the generic throttling codes of the query and
	// JSON protocols, which the SDK's retryer counts as throttling for any
	// service (aws/retry DefaultThrottleErrorCodes).
	EC2Throttle = codes("RequestLimitExceeded", "Throttling", "ThrottlingException")
	// SSMThrottle: SSM's ThrottlingException; TooManyUpdates, concurrent
	// updates of a resource that takes one at a time, has the same remedy
	// (try again later); Throttling is the generic query-protocol code.
	SSMThrottle = codes("ThrottlingException", "TooManyUpdates", "Throttling")
	// CloudWatchThrottle: CloudWatch answers over its rate with Throttling
	// (its query-protocol error; AWS knowledge center
	// "cloudwatch-400-error-throttling").
	CloudWatchThrottle = codes("Throttling")
	// DynamoDBThrottle: a table or index over its throughput
	// (ProvisionedThroughputExceededException), the account over its
	// throughput limit (RequestLimitExceeded), the control plane over its
	// rate (ThrottlingException).
	DynamoDBThrottle = codes("ProvisionedThroughputExceededException", "RequestLimitExceeded", "ThrottlingException")
)

// SSM Run Command.
var (
	// SSMNotReady: SendCommand and the command APIs answer
	// InvalidInstanceId until the instance's agent has registered (and for
	// an instance the caller may not reach, or one shutting down).
	SSMNotReady = codes("InvalidInstanceId")
	// SSMNoInvocation: GetCommandInvocation answers InvocationDoesNotExist
	// for a moment right after SendCommand.
	SSMNoInvocation = codes("InvocationDoesNotExist")
)

// DynamoDB conditional writes.
var (
	// DynamoDBConditionFailed: a write's condition expression was false.
	DynamoDBConditionFailed = codes("ConditionalCheckFailedException")
	// DynamoDBTransactionConflict: a single write refused because a
	// transaction on the same item was in flight.
	DynamoDBTransactionConflict = codes("TransactionConflictException")
	// DynamoDBLostRace holds the cancellation reasons of a
	// TransactionCanceledException that mean another writer won: a
	// condition failed, or another transaction held the item. The other
	// reasons (None, ThrottlingError, ProvisionedThroughputExceeded,
	// ValidationError, ItemCollectionSizeLimitExceeded) are errors of their
	// own. These are reason codes, not error codes: match them with Contains.
	DynamoDBLostRace = codes("ConditionalCheckFailed", "TransactionConflict")
)
