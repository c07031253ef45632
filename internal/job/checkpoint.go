package job

import (
	"encoding/json"
	"fmt"
	"path"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Checkpoint asks the wrapper to keep a directory the training writes in
// step with S3, so that an attempt after a lost instance (a spot
// interruption, mostly) resumes where the last one left off: before the
// command the wrapper restores S3 into Path; while it runs it syncs Path up
// to S3 every Every, at once on a rebalance recommendation, and on a spot
// interruption notice once the command has had its TERM; after the command,
// whatever its end, once more. In a job message it is the S3 URL alone
// ("s3://bucket/prefix") or the object.
type Checkpoint struct {
	// Path is the directory the training writes its checkpoints in,
	// absolute, or relative to the job's workdir (DefaultCheckpointPath).
	Path string `json:"path,omitempty"`
	// S3 is where the checkpoint is kept: s3://bucket/prefix, a prefix of
	// the job's own.
	S3 string `json:"s3"`
	// Every is how often the directory is synced up while the command runs.
	Every Duration `json:"every,omitzero"`
}

// Defaults and bounds of a checkpoint, each with its reason.
const (
	// DefaultCheckpointPath is the checkpoint directory of a job that names
	// none, under its workdir: a directory of its own, so that nothing but
	// checkpoints goes to the checkpoint's prefix, on the root volume by
	// default (the job's own directory), which a stop keeps. The job reads
	// it from NIGHTSHIFT_CHECKPOINT_DIR either way.
	DefaultCheckpointPath = "checkpoints"
	// DefaultCheckpointEvery: ten minutes of training at most are lost to
	// an instance that goes without notice, for six S3 listings of the
	// prefix an hour; the notice itself gives two minutes to sync.
	DefaultCheckpointEvery = 10 * time.Minute
	// MinCheckpointEvery: every sync lists the prefix and compares every
	// file; more often than a minute, a large checkpoint's upload would
	// not have ended before the next began, and the interruption notice
	// gives two minutes anyway.
	MinCheckpointEvery = time.Minute
	// MaxCheckpointEvery: beyond a day between syncs, an instance lost
	// without notice (hardware, a notice missed) loses more than a day of
	// training; a job that wants fewer syncs than that has no use for them.
	MaxCheckpointEvery = 24 * time.Hour
)

// MaxResumes bounds the lost attempts of a checkpointed job that are not
// counted against its retries (see Job.Resumes). Spot's worst frequency
// band is above 20% a month per instance; twenty interruptions of one job
// is a market to leave (on-demand, another type), or a job whose resumes
// get nowhere, not bad luck. Past it every loss counts against retries.
const MaxResumes = 20

// bucketName is an S3 general purpose bucket name: 3–63 of a-z 0-9 . -,
// starting and ending with a letter or digit (the length, adjacent
// periods, IP addresses and reserved affixes are checked apart).
var bucketName = regexp.MustCompile(`^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$`)

var ipAddress = regexp.MustCompile(`^\d+\.\d+\.\d+\.\d+$`)

// validBucket reports why name is not an S3 bucket name, or "".
func validBucket(name string) string {
	switch {
	case !bucketName.MatchString(name):
		return "3-63 characters of a-z 0-9 . -, starting and ending with a letter or digit"
	case strings.Contains(name, ".."):
		return "no two adjacent periods"
	case ipAddress.MatchString(name):
		return "not an IP address"
	}
	for _, p := range []string{"xn--", "sthree-", "amzn-s3-demo-"} {
		if strings.HasPrefix(name, p) {
			return "no reserved prefix " + p
		}
	}
	for _, s := range []string{"-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3"} {
		if strings.HasSuffix(name, s) {
			return "no reserved suffix " + s
		}
	}
	return ""
}

// Bucket returns the bucket of the checkpoint's S3 URL.
func (c *Checkpoint) Bucket() string {
	rest, _ := strings.CutPrefix(c.S3, "s3://")
	b, _, _ := strings.Cut(rest, "/")
	return b
}

const checkpointShape = `want "s3://bucket/prefix" or {"s3": "s3://bucket/prefix", "path": "checkpoints", "every": "10m"}`

// UnmarshalJSON accepts the S3 URL ("s3://bucket/prefix") or the object.
func (c *Checkpoint) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		return json.Unmarshal(b, &c.S3)
	}
	type plain Checkpoint
	var p plain
	if err := decodeStrict(b, &p); err != nil {
		msg := trimJSON(err.Error())
		if strings.Contains(msg, "duration") {
			return &Error{Kind: ErrBadDuration, Field: "checkpoint.every", Msg: msg}
		}
		return &Error{Kind: ErrInvalid, Field: "checkpoint", Msg: checkpointShape + ": " + msg}
	}
	*c = Checkpoint(p)
	return nil
}

// validate checks a checkpoint within its message.
func (c *Checkpoint) validate(s *Spec, d Defaults) error {
	bad := func(field, format string, args ...any) error {
		return &Error{Kind: ErrInvalid, Field: field, Msg: fmt.Sprintf(format, args...)}
	}
	rest, isS3 := strings.CutPrefix(c.S3, "s3://")
	bucket, prefix, _ := strings.Cut(rest, "/")
	switch {
	case s.Notebook != nil:
		return bad("checkpoint", "a notebook keeps its files on its own instance's disk, and is never on spot: leave checkpoint out")
	case c.S3 == "":
		return bad("checkpoint.s3", "missing; %s", checkpointShape)
	case !isS3:
		return bad("checkpoint.s3", "%q: want s3://bucket/prefix", c.S3)
	case validBucket(bucket) != "":
		return bad("checkpoint.s3", "%q: bucket %q is not an S3 bucket name (%s)", c.S3, bucket, validBucket(bucket))
	case strings.Trim(prefix, "/") == "":
		return bad("checkpoint.s3", "%q: want a prefix of the job's own, s3://%s/PREFIX: the whole bucket would be restored into the checkpoint directory", c.S3, bucket)
	case strings.ContainsAny(c.S3, "\x00\n") || strings.ContainsAny(c.Path, "\x00\n"):
		return bad("checkpoint", "contains a NUL byte or a newline")
	case !path.IsAbs(c.Path) && pathEscapes(c.Path):
		return bad("checkpoint.path", "%q: a relative path stays under the job's workdir (no ..)", c.Path)
	case c.Path != "" && path.Clean("/"+c.Path) == "/":
		return bad("checkpoint.path", "%q: want a directory of its own, not the workdir or /", c.Path)
	case c.Every != 0 && (c.Every.D() < MinCheckpointEvery || c.Every.D() > MaxCheckpointEvery):
		return &Error{Kind: ErrBadDuration, Field: "checkpoint.every", Msg: fmt.Sprintf("%v: want between %v and %v", c.Every.D(), MinCheckpointEvery, MaxCheckpointEvery)}
	case d.CheckpointBuckets != nil && len(d.CheckpointBuckets) == 0:
		return bad("checkpoint.s3", "%q: this deployment's instances may use no checkpoint bucket (its CheckpointBuckets is empty); ask its operator to add %s", c.S3, bucket)
	case d.CheckpointBuckets != nil && !slices.Contains(d.CheckpointBuckets, bucket):
		return bad("checkpoint.s3", "%q: bucket %s is not one of this deployment's CheckpointBuckets (%s), the only ones its instances may read and write", c.S3, bucket, strings.Join(d.CheckpointBuckets, ", "))
	}
	return nil
}

// pathEscapes reports whether relative path p leaves its base.
func pathEscapes(p string) bool {
	c := path.Clean(p)
	return c == ".." || strings.HasPrefix(c, "../")
}

func (c *Checkpoint) applyDefaults() {
	if c.Path == "" {
		c.Path = DefaultCheckpointPath
	}
	if c.Every == 0 {
		c.Every = Duration(DefaultCheckpointEvery)
	}
}

// Checkpointed reports whether the job keeps a checkpoint.
func (s *Spec) Checkpointed() bool { return s.Checkpoint != nil }
