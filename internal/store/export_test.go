package store

// SetPageLimit caps the items of each Query page of d, so that tests
// paginate with few items.
func SetPageLimit(d *DynamoDB, n int32) { d.pageLimit = n }
