package job

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// MaxMessageBytes bounds a job message. The command travels inside an SSM
// SendCommand parameter and the spec inside a DynamoDB item (400 KB); 64 KiB
// leaves room for both with a wide margin while no real command needs more.
const MaxMessageBytes = 64 << 10

// MaxRuntimeLimit is SSM Run Command's largest execution timeout (48 h).
const MaxRuntimeLimit = 48 * time.Hour

// MinRuntime is the shortest max_runtime accepted: below it the instance's
// boot and setup would dominate, and a typo ("5s" for "5h") is likelier.
const MinRuntime = time.Minute

// Bounds of max_wait: at least the watchdog's few minutes (a launch that
// fails on capacity is retried every minute), at most 30 days.
const (
	MinMaxWait   = 5 * time.Minute
	MaxWaitLimit = 30 * 24 * time.Hour
)

// MaxRetries bounds the retries a job may ask for after lost instances.
const MaxRetries = 10

// MaxPriority is the highest job priority (0 is the lowest). Three digits:
// the store orders the queue by it as fixed-width text.
const MaxPriority = 999

// Bounds of a root volume in GiB: 8 is the smallest a Linux AMI boots
// from, 16384 (16 TiB) EBS's largest gp3 volume.
const (
	MinVolumeGB = 8
	MaxVolumeGB = 16384
)

// Markets a job may ask for.
const (
	OnDemand         = "on-demand"
	Spot             = "spot"
	SpotThenOnDemand = "spot-then-on-demand"
)

// Spec is the job message (v1) as validated, with deployment defaults applied.
type Spec struct {
	ID         string   `json:"id,omitempty"`
	Name       string   `json:"name,omitempty"`
	Command    string   `json:"command"`
	Workdir    string   `json:"workdir,omitempty"`
	Setup      string   `json:"setup,omitempty"`
	Env        Env      `json:"env,omitempty"`
	Instance   Instance `json:"instance,omitzero"`
	MaxRuntime Duration `json:"max_runtime,omitzero"`
	Inputs     []Sync   `json:"inputs,omitempty"`
	Outputs    []Sync   `json:"outputs,omitempty"`
	Retries    *int     `json:"retries,omitempty"`
	Priority   int      `json:"priority,omitempty"`
	// Notify says when the job's end is published to the stack's SNS
	// topic: NotifyEnd, NotifyFailure, or NotifyNever (the default).
	Notify string `json:"notify,omitempty"`
	// ScheduledAt is set by EventBridge Scheduler (<aws.scheduler.scheduled-time>);
	// it is folded into the id, so each scheduled run has its own id and the
	// scheduler's at-least-once delivery runs it once.
	ScheduledAt string `json:"scheduled_at,omitempty"`
	// OnStall says what the watchdog does with a stalled job: "notify" (the
	// default) or "cancel".
	OnStall string `json:"on_stall,omitempty"`
	// StallTimeout overrides the deployment's stall timeout for this job.
	StallTimeout Duration `json:"stall_timeout,omitzero"`
	// MaxWait bounds how long the job may wait in the queue — for capacity,
	// quota, a free instance — before it fails with the reason it waited
	// for; zero waits for ever.
	MaxWait Duration `json:"max_wait,omitzero"`
	// Notebook, when set, makes the job a JupyterLab session on the
	// notebook's own instance instead of a command (see Notebook).
	Notebook *Notebook `json:"notebook,omitempty"`
	// Checkpoint, when set, keeps a directory the training writes in step
	// with S3, so that the attempt after a lost instance resumes from it
	// (see Checkpoint).
	Checkpoint *Checkpoint `json:"checkpoint,omitempty"`
}

// When a job's end is published (notify), on the stack's SNS topic: a
// message cannot name its own recipient, since an address subscribed to a
// topic must confirm first, and the stack's topic is the one they confirm.
const (
	NotifyNever   = "never"   // not at all: the default
	NotifyFailure = "failure" // unless the job SUCCEEDED
	NotifyEnd     = "end"     // whatever its end
)

// NotifyOn reports whether a job that ended in st is published.
func (s *Spec) NotifyOn(st State) bool {
	switch {
	case st == Rejected || !st.Terminal():
		return false
	case s.Notify == NotifyEnd:
		return true
	case s.Notify == NotifyFailure:
		return st != Succeeded
	}
	return false
}

// What the watchdog does with a stalled job.
const (
	StallNotify = "notify"
	StallCancel = "cancel"
)

// Instance says where a job runs: a pool, optionally with the instance types
// to try in order, the market, and the root volume size.
type Instance struct {
	Pool     string   `json:"pool,omitempty"`
	Types    []string `json:"types,omitempty"`
	Market   string   `json:"market,omitempty"`
	VolumeGB int      `json:"volume_gb,omitempty"`
	AMI      string   `json:"ami,omitempty"`
}

// UnmarshalJSON accepts a pool name ("gpu") or the full object.
func (in *Instance) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		return json.Unmarshal(b, &in.Pool)
	}
	type plain Instance
	var p plain
	if err := decodeStrict(b, &p); err != nil {
		return err
	}
	*in = Instance(p)
	return nil
}

// decodeStrict decodes one JSON value into v, refusing fields v lacks.
func decodeStrict(b []byte, v any) error {
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	return d.Decode(v)
}

// Env is a job's environment variables, by name.
type Env map[string]EnvValue

// EnvValue is one environment variable: Value as it is, or, when SSM is
// set, a reference to the Parameter Store parameter of that name (a
// SecureString, usually), which the wrapper reads on the instance with the
// instance's role. A reference is all that nightshift keeps and sends: the
// value is never in the job record, the SSM command or the log. In a job
// message it is a string, or {"ssm": "/nightshift/secrets/wandb"}.
type EnvValue struct {
	Value string
	SSM   string
}

// Secret reports whether v names a parameter rather than holding its value.
func (v EnvValue) Secret() bool { return v.SSM != "" }

// envShape says what an env value may be; it never quotes what was given,
// which may be a secret pasted where its name should be.
const envShape = `want a string or {"ssm": "/parameter/name"}`

// MarshalJSON writes v as the message has it: a string, or {"ssm": NAME}.
func (v EnvValue) MarshalJSON() ([]byte, error) {
	if v.SSM != "" {
		return json.Marshal(struct {
			SSM string `json:"ssm"`
		}{v.SSM})
	}
	return json.Marshal(v.Value)
}

// UnmarshalJSON reads a string, or an object with a parameter name
// {"ssm": NAME} and nothing else. null is the empty string, as it was
// when env values could only be strings.
func (v *EnvValue) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	switch {
	case string(b) == "null":
		*v = EnvValue{}
		return nil
	case len(b) > 0 && b[0] == '"':
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return errors.New(envShape)
		}
		*v = EnvValue{Value: s}
		return nil
	case len(b) > 0 && b[0] == '{':
		d := json.NewDecoder(bytes.NewReader(b))
		d.DisallowUnknownFields()
		var ref struct {
			SSM *string `json:"ssm"`
		}
		if err := d.Decode(&ref); err != nil || ref.SSM == nil || *ref.SSM == "" {
			return errors.New(envShape + `, got an object without a parameter name or with other fields`)
		}
		*v = EnvValue{SSM: *ref.SSM}
		return nil
	}
	return errors.New(envShape + ", got " + jsonKind(b))
}

// UnmarshalJSON reads the env object, naming the variable whose value is
// of the wrong shape.
func (e *Env) UnmarshalJSON(b []byte) error {
	if string(bytes.TrimSpace(b)) == "null" {
		return nil
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return &Error{Kind: ErrInvalid, Field: "env", Msg: `want an object such as {"LR": "0.1", "WANDB_API_KEY": {"ssm": "/nightshift/secrets/wandb"}}, got ` + jsonKind(b)}
	}
	env := make(Env, len(raw))
	for _, name := range slices.Sorted(maps.Keys(raw)) {
		var v EnvValue
		if err := v.UnmarshalJSON(raw[name]); err != nil {
			return &Error{Kind: ErrInvalid, Field: "env", Msg: fmt.Sprintf("%q: %v", name, err)}
		}
		env[name] = v
	}
	*e = env
	return nil
}

// jsonKind names the kind of a JSON value, for an error that must not
// repeat the value itself.
func jsonKind(b []byte) string {
	b = bytes.TrimSpace(b)
	if len(b) == 0 {
		return "nothing"
	}
	switch b[0] {
	case '{':
		return "an object"
	case '[':
		return "a list"
	case '"':
		return "a string"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	}
	return "a number"
}

// Sync is one S3 transfer: inputs are synced from S3 to Path before the
// command, outputs from Path to S3 after it.
type Sync struct {
	S3   string `json:"s3"`
	Path string `json:"path"`
}

// Duration is a time.Duration that reads "90m", "2h30m" or a number of seconds.
type Duration time.Duration

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// MarshalJSON writes the duration as Go duration text.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON reads Go duration text or whole seconds.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		var n json.Number
		if err := json.Unmarshal(b, &n); err != nil {
			return fmt.Errorf("want a duration such as \"2h\" or a number of seconds, got %s", b)
		}
		s = n.String() + "s"
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("want a duration such as \"2h\" or \"90m\", got %q", s)
	}
	*d = Duration(v)
	return nil
}

// Defaults are the deployment's answers for what a message leaves out, and
// what it may name.
type Defaults struct {
	Pool       string
	MaxRuntime time.Duration
	Retries    int
	Setup      string
	Market     string
	// Pools lists the pool names a message may name.
	Pools []string
	// KnownType reports whether an instance type is one nightshift can run.
	KnownType func(string) bool
	// MaxWait is the deployment's max_wait for a job that names none; zero
	// waits for ever.
	MaxWait time.Duration
	// NotebookIdle and NotebookIdleConnected are the deployment's notebook
	// idle timeouts (zero: DefaultNotebookIdle, DefaultNotebookIdleConnected).
	NotebookIdle, NotebookIdleConnected time.Duration
	// SecretsPrefix is the Parameter Store path under which an env value
	// may name a parameter ({"ssm": NAME}), such as /nightshift/secrets/:
	// the path the instance role may read. Empty: secrets are off, and a
	// message that names a parameter is rejected.
	SecretsPrefix string
	// CheckpointBuckets are the S3 buckets a checkpoint may name: the
	// ones the instance role may read and write. The deployed functions
	// always set it (empty: none, and a checkpoint is refused); nil leaves
	// it unchecked (a harness without a stack).
	CheckpointBuckets []string
}

// The kinds of bad input; each validation error wraps exactly one.
var (
	ErrMalformed       = errors.New("malformed JSON")
	ErrUnknownField    = errors.New("unknown field")
	ErrMissingCommand  = errors.New("missing command")
	ErrBadID           = errors.New("bad id")
	ErrBadEnvName      = errors.New("bad env name")
	ErrBadDuration     = errors.New("bad duration")
	ErrUnknownInstance = errors.New("unknown instance type or pool")
	ErrOversized       = errors.New("message too large")
	ErrInvalid         = errors.New("invalid value")
	ErrBadTransition   = errors.New("transition not allowed")
)

// Error is a validation error: which kind, which field, and what is wrong.
type Error struct {
	Kind  error
	Field string
	Msg   string
}

func (e *Error) Error() string {
	if e.Field == "" {
		return fmt.Sprintf("%v: %s", e.Kind, e.Msg)
	}
	return fmt.Sprintf("%v: %s: %s", e.Kind, e.Field, e.Msg)
}

// Unwrap returns the kind, for errors.Is.
func (e *Error) Unwrap() error { return e.Kind }

var (
	idPattern  = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)
	envPattern = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	// paramPattern is a Parameter Store parameter path: "/" and names of
	// a-zA-Z0-9_.- separated by "/" (Parameter Store's naming constraints;
	// a name without the leading "/" is not in a hierarchy, so under no
	// prefix).
	paramPattern = regexp.MustCompile(`^(/[A-Za-z0-9_.-]+)+$`)
	fields       = []string{"id", "name", "command", "workdir", "setup", "env", "instance", "max_runtime", "inputs", "outputs", "retries", "priority", "notify", "scheduled_at", "on_stall", "stall_timeout", "max_wait", "notebook", "checkpoint"}
)

// Parameter Store's limits on a parameter name.
const (
	// maxParameterName is the longest name a parameter may have.
	maxParameterName = 1011
	// maxParameterLevels is the deepest hierarchy a name may have.
	maxParameterLevels = 15
)

// ValidID reports whether id is a usable job id.
func ValidID(id string) bool { return idPattern.MatchString(id) }

// Parse decodes and validates one job message and applies the defaults.
// Every error it returns is an *Error.
func Parse(raw []byte, d Defaults) (Spec, error) {
	if len(raw) > MaxMessageBytes {
		return Spec{}, &Error{Kind: ErrOversized, Msg: fmt.Sprintf("%d bytes, the limit is %d", len(raw), MaxMessageBytes)}
	}
	var s Spec
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		return Spec{}, decodeError(raw, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return Spec{}, &Error{Kind: ErrMalformed, Msg: "text after the JSON object"}
	}
	if err := s.foldSchedule(); err != nil {
		return Spec{}, err
	}
	if err := s.validate(d); err != nil {
		return Spec{}, err
	}
	s.applyDefaults(d)
	return s, nil
}

func decodeError(raw []byte, err error) error {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	var own *Error
	switch {
	case errors.As(err, &own):
		// A field decoder that knows the field said what is wrong (Env).
		return own
	case errors.As(err, &syn):
		return &Error{Kind: ErrMalformed, Msg: fmt.Sprintf("%v (at byte %d)", syn, syn.Offset)}
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return &Error{Kind: ErrMalformed, Msg: "empty or truncated message; want a JSON object such as {\"command\": \"python train.py\"}"}
	case errors.As(err, &typ):
		if typ.Field == "" {
			return &Error{Kind: ErrMalformed, Msg: fmt.Sprintf("want a JSON object, got %s", typ.Value)}
		}
		return &Error{Kind: ErrInvalid, Field: typ.Field, Msg: fmt.Sprintf("want %s, got %s", typ.Type, typ.Value)}
	}
	msg := err.Error()
	if name, ok := strings.CutPrefix(msg, "json: unknown field "); ok {
		name, _ = strconv.Unquote(name)
		hint := ""
		if near := nearest(name, fields); near != "" {
			hint = fmt.Sprintf(" (did you mean %q?)", near)
		}
		return &Error{Kind: ErrUnknownField, Msg: fmt.Sprintf("%q is not a job message field%s; fields: %s", name, hint, strings.Join(fields, ", "))}
	}
	// Errors from field decoders (Duration, Instance) carry the field path
	// only in their text; report them under the field they concern.
	if strings.Contains(msg, "duration") {
		return &Error{Kind: ErrBadDuration, Field: durationField(raw), Msg: trimJSON(msg)}
	}
	return &Error{Kind: ErrInvalid, Msg: trimJSON(msg)}
}

// durationField names the duration field of raw that does not parse.
func durationField(raw []byte) string {
	var m map[string]json.RawMessage
	_ = json.Unmarshal(raw, &m)
	for _, f := range []string{"max_runtime", "stall_timeout", "max_wait"} {
		var d Duration
		if v, ok := m[f]; ok && d.UnmarshalJSON(v) != nil {
			return f
		}
	}
	return ""
}

func trimJSON(msg string) string { return strings.TrimPrefix(msg, "json: ") }

// foldSchedule makes "<id>-<scheduled_at without colons>" the job's id.
func (s *Spec) foldSchedule() error {
	if s.ScheduledAt == "" {
		return nil
	}
	t, err := time.Parse(time.RFC3339, s.ScheduledAt)
	if err != nil {
		return &Error{Kind: ErrInvalid, Field: "scheduled_at", Msg: fmt.Sprintf("%q: want an RFC 3339 time such as 2026-11-25T02:00:00Z", s.ScheduledAt)}
	}
	if s.ID == "" {
		return &Error{Kind: ErrBadID, Field: "id", Msg: "a scheduled job needs an id (the schedule's name, say) to make each run's id from"}
	}
	s.ID = s.ID + "-" + t.UTC().Format("2006-01-02T150405Z")
	return nil
}

func (s *Spec) validate(d Defaults) error {
	if s.Notebook != nil {
		if err := s.Notebook.validate(s); err != nil {
			return err
		}
	}
	if s.Checkpoint != nil {
		if err := s.Checkpoint.validate(s, d); err != nil {
			return err
		}
	}
	switch {
	case s.Notebook == nil && strings.TrimSpace(s.Command) == "":
		return &Error{Kind: ErrMissingCommand, Field: "command", Msg: "a job needs a command, e.g. {\"command\": \"python train.py\"}"}
	case s.ID != "" && !ValidID(s.ID):
		return &Error{Kind: ErrBadID, Field: "id", Msg: fmt.Sprintf("%q: want 1-64 characters of A-Z a-z 0-9 . _ -", s.ID)}
	case s.MaxRuntime != 0 && (s.MaxRuntime.D() < MinRuntime || s.MaxRuntime.D() > MaxRuntimeLimit):
		return &Error{Kind: ErrBadDuration, Field: "max_runtime", Msg: fmt.Sprintf("%v: want between %v and %v", s.MaxRuntime.D(), MinRuntime, MaxRuntimeLimit)}
	case s.Retries != nil && (*s.Retries < 0 || *s.Retries > MaxRetries):
		return &Error{Kind: ErrInvalid, Field: "retries", Msg: fmt.Sprintf("%d: want 0 to %d", *s.Retries, MaxRetries)}
	case s.Priority < 0 || s.Priority > MaxPriority:
		return &Error{Kind: ErrInvalid, Field: "priority", Msg: fmt.Sprintf("%d: want 0 to %d", s.Priority, MaxPriority)}
	case s.Notify != "" && s.Notify != NotifyNever && s.Notify != NotifyFailure && s.Notify != NotifyEnd:
		return &Error{Kind: ErrInvalid, Field: "notify", Msg: fmt.Sprintf("%q: want end, failure or never; the notice goes to the stack's SNS topic (subscribe to it there)", s.Notify)}
	case s.OnStall != "" && s.OnStall != StallNotify && s.OnStall != StallCancel:
		return &Error{Kind: ErrInvalid, Field: "on_stall", Msg: fmt.Sprintf("%q: want notify or cancel", s.OnStall)}
	case s.MaxWait != 0 && (s.MaxWait.D() < MinMaxWait || s.MaxWait.D() > MaxWaitLimit):
		return &Error{Kind: ErrBadDuration, Field: "max_wait", Msg: fmt.Sprintf("%v: want between %v and %v", s.MaxWait.D(), MinMaxWait, MaxWaitLimit)}
	case s.StallTimeout != 0 && s.StallTimeout.D() < 5*time.Minute:
		return &Error{Kind: ErrBadDuration, Field: "stall_timeout", Msg: fmt.Sprintf("%v: want at least 5m (GPU metrics arrive once a minute)", s.StallTimeout.D())}
	case strings.ContainsRune(s.Command, 0):
		return &Error{Kind: ErrInvalid, Field: "command", Msg: "contains a NUL byte"}
	}
	for _, name := range slices.Sorted(maps.Keys(s.Env)) {
		if !envPattern.MatchString(name) {
			return &Error{Kind: ErrBadEnvName, Field: "env", Msg: fmt.Sprintf("%q: want a shell variable name ([A-Za-z_][A-Za-z0-9_]*)", name)}
		}
		if v := s.Env[name]; v.Secret() {
			if err := checkSecret(name, v.SSM, d.SecretsPrefix); err != nil {
				return err
			}
		}
	}
	if err := s.Instance.validate(d); err != nil {
		return err
	}
	for i, sy := range slices.Concat(s.Inputs, s.Outputs) {
		if !strings.HasPrefix(sy.S3, "s3://") || sy.Path == "" {
			field := "inputs"
			if i >= len(s.Inputs) {
				field = "outputs"
			}
			return &Error{Kind: ErrInvalid, Field: field, Msg: fmt.Sprintf("want {\"s3\": \"s3://bucket/prefix\", \"path\": \"dir\"}, got s3=%q path=%q", sy.S3, sy.Path)}
		}
	}
	return nil
}

// checkSecret checks that env variable name may read parameter param: a
// parameter path under the deployment's secrets prefix.
func checkSecret(name, param, prefix string) error {
	bad := func(format string, args ...any) error {
		return &Error{Kind: ErrInvalid, Field: "env", Msg: fmt.Sprintf("%q: parameter %q: ", name, param) + fmt.Sprintf(format, args...)}
	}
	switch {
	case len(param) > maxParameterName || !paramPattern.MatchString(param):
		return bad(`want a parameter path such as "/nightshift/secrets/wandb": "/" and names of A-Z a-z 0-9 _ . - separated by "/", at most %d characters`, maxParameterName)
	case strings.Count(param, "/") > maxParameterLevels:
		return bad("more than %d levels; Parameter Store allows no deeper hierarchy", maxParameterLevels)
	case prefix == "":
		return bad("this deployment reads no secrets (its SecretsPrefix is empty); ask its operator to set one, such as /nightshift/secrets/")
	}
	under := strings.TrimSuffix(prefix, "/") + "/"
	if !strings.HasPrefix(param, under) {
		return bad("not under this deployment's secrets prefix %q, the only parameters its instances may read", under)
	}
	return nil
}

func (in *Instance) validate(d Defaults) error {
	if in.Pool != "" && !slices.Contains(d.Pools, in.Pool) {
		return &Error{Kind: ErrUnknownInstance, Field: "instance.pool", Msg: fmt.Sprintf("no pool %q; this deployment has %s", in.Pool, strings.Join(d.Pools, ", "))}
	}
	for _, t := range in.Types {
		if d.KnownType != nil && !d.KnownType(t) {
			return &Error{Kind: ErrUnknownInstance, Field: "instance.types", Msg: fmt.Sprintf("%q is not a GPU instance type nightshift knows (g4dn, g5, g6, g6e, p3, p4d, p5 families)", t)}
		}
	}
	switch in.Market {
	case "", OnDemand, Spot, SpotThenOnDemand:
	default:
		return &Error{Kind: ErrInvalid, Field: "instance.market", Msg: fmt.Sprintf("%q: want on-demand, spot or spot-then-on-demand", in.Market)}
	}
	if in.VolumeGB != 0 && (in.VolumeGB < MinVolumeGB || in.VolumeGB > MaxVolumeGB) {
		return &Error{Kind: ErrInvalid, Field: "instance.volume_gb", Msg: fmt.Sprintf("%d: want %d to %d", in.VolumeGB, MinVolumeGB, MaxVolumeGB)}
	}
	if in.AMI != "" && !strings.HasPrefix(in.AMI, "ami-") && !strings.HasPrefix(in.AMI, "resolve:ssm:") {
		return &Error{Kind: ErrInvalid, Field: "instance.ami", Msg: fmt.Sprintf("%q: want an AMI id (ami-…) or resolve:ssm:PARAMETER", in.AMI)}
	}
	return nil
}

func (s *Spec) applyDefaults(d Defaults) {
	if s.Instance.Pool == "" {
		s.Instance.Pool = d.Pool
	}
	if s.MaxRuntime == 0 {
		s.MaxRuntime = Duration(d.MaxRuntime)
		if s.Notebook != nil {
			s.MaxRuntime = Duration(max(d.MaxRuntime, DefaultNotebookMaxRuntime))
		}
	}
	if s.MaxWait == 0 && d.MaxWait > 0 {
		s.MaxWait = Duration(d.MaxWait)
	}
	if s.Notebook != nil {
		s.Notebook.applyDefaults(s, d)
	}
	if s.Checkpoint != nil {
		s.Checkpoint.applyDefaults()
	}
	if s.Setup == "" {
		s.Setup = d.Setup
	}
	if s.Retries == nil {
		s.Retries = &d.Retries
	}
	if s.Instance.Market == "" {
		s.Instance.Market = d.Market
	}
}

// nearest returns the candidate within edit distance 2 of s, if any.
func nearest(s string, candidates []string) string {
	best, bestD := "", 3
	for _, c := range candidates {
		if d := distance(s, c); d < bestD {
			best, bestD = c, d
		}
	}
	return best
}

// distance is the Levenshtein distance between a and b.
func distance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// RetryLimit is how many times the job may be re-queued after losing its instance.
func (s *Spec) RetryLimit() int {
	if s.Retries == nil {
		return 0
	}
	return *s.Retries
}
