package objects

import (
	"fmt"
	"strings"
	"time"
)

// Two time encodings travel in nova RPC and must not be confused (protocols.md §0 item 4):
//
//   - object DateTime fields: oslo _utils.isotime, "2006-01-02T15:04:05Z", seconds only;
//   - the request context "timestamp" and plain datetime RPC arguments: jsonutils/strtime,
//     "2006-01-02T15:04:05.000000" with mandatory microseconds and no zone; the conductor
//     parses it with strptime("%Y-%m-%dT%H:%M:%S.%f"), so a missing fraction is fatal.
const (
	// DateTimeLayout is the object DateTime primitive.
	DateTimeLayout = "2006-01-02T15:04:05Z"
	// ContextTimeLayout is the context timestamp / strtime primitive.
	ContextTimeLayout = "2006-01-02T15:04:05.000000"
)

// FormatDateTime encodes t as an object DateTime field primitive (UTC, no fraction).
func FormatDateTime(t time.Time) string { return t.UTC().Format(DateTimeLayout) }

// FormatContextTime encodes t as a context timestamp (UTC, microseconds, no zone).
func FormatContextTime(t time.Time) string { return t.UTC().Format(ContextTimeLayout) }

// ParseDateTime parses what iso8601.parse_date accepts in practice: "T" or space
// separator, optional fraction, and "Z", "+HH:MM", "+HHMM" or no zone (naive = UTC).
func ParseDateTime(s string) (time.Time, error) {
	in := strings.TrimSpace(s)
	if len(in) > 10 && in[10] == ' ' {
		in = in[:10] + "T" + in[11:]
	}
	for _, layout := range []string{
		time.RFC3339Nano,
		"2006-01-02T15:04:05.999999999Z0700",
		"2006-01-02T15:04:05.999999999",
		"2006-01-02T15:04Z07:00",
		"2006-01-02T15:04",
	} {
		if t, err := time.Parse(layout, in); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("parse date-time %q: %w", s, ErrFieldType)
}

// ParseContextTime parses a context timestamp; it is as lenient as ParseDateTime because
// some senders (oslo.context to_dict in older releases) use other ISO 8601 forms.
func ParseContextTime(s string) (time.Time, error) { return ParseDateTime(s) }
