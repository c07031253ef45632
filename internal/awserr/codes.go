package awserr

// The code sets, by service. EC2's codes are listed in "Error codes for the
// Amazon EC2 API" (docs.aws.amazon.com/AWSEC2/latest/APIReference/errors-overview.html);
// SSM's and DynamoDB's are the modeled errors of their APIs, as
// aws-sdk-go-v2 declares them in service/ssm/types/errors.go and
// service/dynamodb/types/errors.go.

// EC2 refusals of a launch or a start.
var (
	// EC2Capacity holds the codes for AWS having no room for the request
	// right now: the errors page's Insufficient*Capacity server errors
	// (InsufficientInstanceCapacity also answers StartInstances) and its
	// spot capacity error, UnfulfillableCapacity.
	EC2Capacity = codes("InsufficientInstanceCapacity", "InsufficientCapacity", "InsufficientHostCapacity",
		"InsufficientReservedInstanceCapacity", "UnfulfillableCapacity")
	// EC2Quota holds the codes of the account's on-demand limits: in vCPUs
	// (VcpuLimitExceeded) or, for older accounts, in instances
	// (InstanceLimitExceeded).
	EC2Quota = codes("VcpuLimitExceeded", "InstanceLimitExceeded")
	// EC2SpotQuota holds the codes of the account's spot limit
	// (MaxSpotInstanceCountExceeded). SpotMaxPriceTooLow, a spot price above
	// the request's maximum, is not on the errors page; it is kept because,
	// as with the quota, another zone does not help and a person's change
	// does.
	EC2SpotQuota = codes("MaxSpotInstanceCountExceeded", "SpotMaxPriceTooLow")
	// EC2Unsupported holds the codes for an instance type not offered in
	// the zone (Unsupported) or not for this request (InvalidInstanceType).
	EC2Unsupported = codes("Unsupported", "InvalidInstanceType")
	// EC2NotFound holds the codes for an instance that does not exist, or
	// an id that cannot be one.
	EC2NotFound = codes("InvalidInstanceID.NotFound", "InvalidInstanceID.Malformed")
)

// Throttling, per service: each answers a call over its request rate with
// its own code.
var (
	// EC2Throttle holds EC2's throttling codes. EC2 throttles every action
	// with RequestLimitExceeded (a server error on the errors page).
	// Throttling and ThrottlingException are not EC2's: they are the generic
	// throttling codes of the query and JSON protocols, which the SDK's
	// retryer counts as throttling for any service (aws/retry
	// DefaultThrottleErrorCodes).
	EC2Throttle = codes("RequestLimitExceeded", "Throttling", "ThrottlingException")
	// SSMThrottle holds SSM's throttling codes: ThrottlingException, and
	// TooManyUpdates (concurrent updates of a resource that takes one at a
	// time), whose remedy is the same: try again later. Throttling is the
	// generic query-protocol code.
	SSMThrottle = codes("ThrottlingException", "TooManyUpdates", "Throttling")
	// CloudWatchThrottle holds CloudWatch's throttling code, the
	// query-protocol error Throttling (AWS knowledge center,
	// "cloudwatch-400-error-throttling").
	CloudWatchThrottle = codes("Throttling")
	// DynamoDBThrottle holds DynamoDB's throttling codes: a table or index
	// over its throughput (ProvisionedThroughputExceededException), the
	// account over its throughput limit (RequestLimitExceeded), the control
	// plane over its rate (ThrottlingException).
	DynamoDBThrottle = codes("ProvisionedThroughputExceededException", "RequestLimitExceeded", "ThrottlingException")
)

// SSM Run Command.
var (
	// SSMNotReady holds InvalidInstanceId, SSM's answer to SendCommand and
	// the command APIs until the instance's agent has registered (and for an
	// instance the caller may not reach, or one shutting down).
	SSMNotReady = codes("InvalidInstanceId")
	// SSMNoInvocation holds InvocationDoesNotExist, GetCommandInvocation's
	// answer for a moment right after SendCommand.
	SSMNoInvocation = codes("InvocationDoesNotExist")
)

// DynamoDB conditional writes.
var (
	// DynamoDBConditionFailed holds the code of a write whose condition
	// expression was false.
	DynamoDBConditionFailed = codes("ConditionalCheckFailedException")
	// DynamoDBTransactionConflict holds the code of a single write refused
	// because a transaction on the same item was in flight.
	DynamoDBTransactionConflict = codes("TransactionConflictException")
	// DynamoDBLostRace holds the cancellation reasons of a
	// TransactionCanceledException that mean another writer won: a
	// condition failed, or another transaction held the item. The other
	// reasons (None, ThrottlingError, ProvisionedThroughputExceeded,
	// ValidationError, ItemCollectionSizeLimitExceeded) are errors of their
	// own. These are reason codes, not error codes: match them with Contains.
	DynamoDBLostRace = codes("ConditionalCheckFailed", "TransactionConflict")
)

// EC2 refusals of what a launch asks for, rather than of the moment: no
// retry changes the answer, a person must change the request. Whose
// request it is — the job's message or the deployment's — the caller
// knows (internal/fleet).
var (
	// EC2ImageRefused holds the codes of an AMI that does not exist, is
	// malformed or is not available to the account.
	EC2ImageRefused = codes("InvalidAMIID.NotFound", "InvalidAMIID.Malformed", "InvalidAMIID.Unavailable")
	// EC2VolumeRefused holds InvalidBlockDeviceMapping: a root volume
	// smaller than the AMI's snapshot, or a bad device.
	EC2VolumeRefused = codes("InvalidBlockDeviceMapping")
	// EC2CombinationRefused holds InvalidParameterCombination: an instance
	// type with an AMI of another architecture, say.
	EC2CombinationRefused = codes("InvalidParameterCombination")
	// EC2DeploymentRefused holds the codes of settings only the
	// deployment makes: its subnets, launch template, security group, the
	// functions' permissions (PassRole on the instance profile included),
	// and an account that may not launch yet.
	EC2DeploymentRefused = codes(
		"InvalidSubnetID.NotFound", "InvalidSubnetID.Malformed",
		"InvalidLaunchTemplateId.NotFound", "InvalidLaunchTemplateId.Malformed", "InvalidLaunchTemplateId.VersionNotFound",
		"InvalidLaunchTemplateName.NotFoundException",
		"InvalidGroup.NotFound", "InvalidSecurityGroupID.NotFound",
		"UnauthorizedOperation", "AuthFailure", "OptInRequired", "PendingVerification", "Blocked",
	)
	// SSMParameterRefused holds the codes of an SSM parameter that cannot
	// be read: absent, of another version, or not the caller's to read.
	SSMParameterRefused = codes("ParameterNotFound", "ParameterVersionNotFound", "AccessDeniedException")
)

// Errors of the command line's reads.
var (
	// LogsNotFound holds CloudWatch Logs' ResourceNotFoundException: a log
	// group or stream that does not exist (yet: SSM makes a command's
	// stream when the command first writes to it).
	LogsNotFound = codes("ResourceNotFoundException")
)
