package fleet

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
)

// refusals are the spot rungs a launch was refused on (or skipped, their
// offering refused for capacity moments ago), for the note that says why
// the instance is on-demand.
type refusals struct {
	// capacity lists, by type in ladder order, the zones (or subnets) spot
	// had no capacity in.
	types    []string
	capacity map[string][]string
	// other are the other refusals, in words (spot quota, type not offered).
	other []string
}

func (r *refusals) add(typ, subnet string, err error) {
	var le *LaunchError
	if !errors.As(err, &le) {
		return
	}
	if errors.Is(err, ErrCapacity) {
		if r.capacity == nil {
			r.capacity = map[string][]string{}
		}
		if !slices.Contains(r.types, typ) {
			r.types = append(r.types, typ)
		}
		where := ErrZone(err)
		if where == "" {
			where = subnet
		}
		if where == "" {
			where = "its zone"
		}
		if !slices.Contains(r.capacity[typ], where) {
			r.capacity[typ] = append(r.capacity[typ], where)
		}
		return
	}
	what := fmt.Sprintf("spot was refused for %s (%s)", typ, le.Code)
	if !slices.Contains(r.other, what) {
		r.other = append(r.other, what)
	}
}

// note says why inst, launched on-demand, is not spot; empty when spot
// was not refused.
func (r *refusals) note(inst Instance) string {
	var parts []string
	for _, t := range r.types {
		parts = append(parts, fmt.Sprintf("spot had no %s capacity in %s", t, strings.Join(r.capacity[t], ", ")))
	}
	parts = append(parts, r.other...)
	if len(parts) == 0 {
		return ""
	}
	where := ""
	if inst.Zone != "" {
		where = " in " + inst.Zone
	}
	return fmt.Sprintf("%s; launched %s on-demand%s as market spot-then-on-demand allows", strings.Join(parts, "; "), inst.Type, where)
}

// zoneInMessage finds the zone in EC2's capacity message: "… capacity in
// the Availability Zone you requested (us-east-1a). …".
var zoneInMessage = regexp.MustCompile(`\(([a-z]{2}(?:-[a-z]+)+-\d+[a-z])\)`)

// ErrZone returns the Availability Zone an EC2 capacity error names, or "".
func ErrZone(err error) string {
	var le *LaunchError
	if !errors.As(err, &le) || le.Err == nil {
		return ""
	}
	if m := zoneInMessage.FindStringSubmatch(message(le.Err)); m != nil {
		return m[1]
	}
	return ""
}

// ErrCode returns the AWS error code of a launch or start error, or "".
func ErrCode(err error) string {
	var le *LaunchError
	if errors.As(err, &le) {
		return le.Code
	}
	return ""
}
