package doctor

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
)

// Status is the outcome of one check.
type Status string

// The outcomes of a check.
const (
	OK   Status = "ok"   // passed
	Warn Status = "warn" // passed, but something is likely to bite other clients
	Fail Status = "fail" // failed: a Pyro4 client would fail here too
	Skip Status = "skip" // not run, because an earlier check failed
)

// Mark returns the symbol the text report shows for s: ✓, !, ✗ or -.
func (s Status) Mark() string {
	switch s {
	case OK:
		return "✓"
	case Warn:
		return "!"
	case Fail:
		return "✗"
	}
	return "-"
}

// Names of the checks, in the order they run.
const (
	CheckDNS         = "dns"
	CheckConnect     = "tcp connect"
	CheckUnixConnect = "unix connect" // instead of dns and tcp connect for a unix socket
	CheckTLS         = "tls"
	CheckProtocol    = "protocol"
	CheckHMAC        = "hmac"
	CheckSerializers = "serializers"
	CheckLookup      = "lookup"  // name server only
	CheckPing        = "ping"    // daemon only
	CheckObject      = "object"  // daemon with an object id: its exposed members
	CheckObjects     = "objects" // daemon without an object id: its registered objects
)

// Check is the result of one check.
type Check struct {
	Name    string `json:"name"`
	Status  Status `json:"status"`
	Summary string `json:"summary"`
	Hint    string `json:"hint,omitempty"`
	// Data holds what the check found, for scripts: one of the *Data types of this
	// package, or nil.
	Data any `json:"data,omitempty"`
}

// Line returns the check as the text report shows it: mark, name and summary.
func (c Check) Line() string { return c.Status.Mark() + " " + c.Name + ": " + c.Summary }

// Roles of a Section.
const (
	RoleNameServer = "name server"
	RoleDaemon     = "daemon"
)

// Section is the checks of one endpoint: the name server of a PYRONAME: target, or the
// daemon.
type Section struct {
	Role     string  `json:"role"`
	Location string  `json:"location"`         // HOST:PORT or ./u:/path
	Object   string  `json:"object,omitempty"` // the object id checked, if any
	Checks   []Check `json:"checks"`
}

// Title returns the heading of the section in the text report, such as
// `daemon 127.0.0.1:9999, object "example"`.
func (s *Section) Title() string {
	t := s.Role + " " + s.Location
	if s.Object != "" {
		t += ", object " + fmt.Sprintf("%q", s.Object)
	}
	return t
}

// Check returns the check with the given name, or nil.
func (s *Section) Check(name string) *Check {
	for i := range s.Checks {
		if s.Checks[i].Name == name {
			return &s.Checks[i]
		}
	}
	return nil
}

// Report is the outcome of a doctor run.
type Report struct {
	Target string `json:"target"`
	// AnswersCalls is true when the target's daemon completed a handshake and answered
	// PINGs, and, for an object, knows the object.
	AnswersCalls bool `json:"answers_calls"`
	// OK is AnswersCalls with no failed check: what the exit status says.
	OK       bool      `json:"ok"`
	Verdict  string    `json:"verdict"`
	Sections []Section `json:"sections"`
}

// Section returns the section of the given role, or nil.
func (r *Report) Section(role string) *Section {
	for i := range r.Sections {
		if r.Sections[i].Role == role {
			return &r.Sections[i]
		}
	}
	return nil
}

// VerdictLine returns the last line of the text report: ✓ or ✗, then the verdict.
func (r *Report) VerdictLine() string {
	mark := Fail.Mark()
	if r.OK {
		mark = OK.Mark()
	}
	return mark + " verdict: " + r.Verdict
}

// ExitCode is the exit status for the report: 0 when the target answers calls and no
// check failed, else 1.
func (r *Report) ExitCode() int {
	if r.OK {
		return 0
	}
	return 1
}

// finish sets OK and Verdict from the checks and answers.
func (r *Report) finish(answers bool) {
	r.AnswersCalls = answers
	var failed, warned []string
	first := ""
	for _, s := range r.Sections {
		prefix := ""
		if s.Role == RoleNameServer {
			prefix = "name server "
		}
		for _, c := range s.Checks {
			switch c.Status {
			case Fail:
				failed = append(failed, prefix+c.Name)
				if first == "" {
					first = prefix + c.Name + ": " + brief(c.Summary)
				}
			case Warn:
				warned = append(warned, prefix+c.Name)
			}
		}
	}
	r.OK = answers && len(failed) == 0
	switch {
	case !answers && first == "":
		r.Verdict = r.Target + " does not answer calls"
	case !answers:
		r.Verdict = r.Target + " does not answer calls (" + first + ")"
	case len(failed) > 0:
		r.Verdict = r.Target + " answers calls, but " + count(len(failed), "check") + " failed (" + first + ")"
	case len(warned) > 0:
		r.Verdict = r.Target + " answers calls, with " + count(len(warned), "warning") + " (" + strings.Join(warned, ", ") + ")"
	default:
		r.Verdict = r.Target + " answers calls"
	}
}

// brief is the part of a summary the verdict repeats: up to its first "; ", where the
// details begin.
func brief(summary string) string {
	s, _, _ := strings.Cut(summary, "; ")
	return s
}

func count(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}

// WriteText writes the report for a terminal: a heading per section, a line per check
// (skipped checks on one line), hints below failures and warnings, and the verdict last.
func (r *Report) WriteText(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "pyro-dispatch doctor %s\n", r.Target)
	for _, s := range r.Sections {
		b.WriteString(s.Title() + "\n")
		var skipped []string
		for _, c := range s.Checks {
			if c.Status == Skip {
				skipped = append(skipped, c.Name)
				continue
			}
			b.WriteString("  " + c.Line() + "\n")
			if c.Hint != "" {
				b.WriteString("      hint: " + c.Hint + "\n")
			}
		}
		if len(skipped) > 0 {
			b.WriteString("  " + Skip.Mark() + " not checked: " + strings.Join(skipped, ", ") + "\n")
		}
	}
	b.WriteString(r.VerdictLine() + "\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// WriteJSON writes the report as one indented JSON object.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(r)
}
