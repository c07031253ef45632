package store

// SetPageLimit caps the items of each Query page of d, so that tests
// paginate with few items.
func SetPageLimit(d *DynamoDB, n int32) { d.pageLimit = n }

// LargestJob is the largest job record nightshift can write (see size_test.go).
var LargestJob = largestJob
