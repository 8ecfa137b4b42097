package session

// Condition is a terminal binding condition of XEP-0124 §17.2, sent as the
// condition attribute of a <body type='terminate'/>.
type Condition string

// The terminal conditions of XEP-0124 §17.2.
const (
	BadRequest             Condition = "bad-request"
	HostGone               Condition = "host-gone"
	HostUnknown            Condition = "host-unknown"
	ImproperAddressing     Condition = "improper-addressing"
	InternalServerError    Condition = "internal-server-error"
	ItemNotFound           Condition = "item-not-found"
	OtherRequest           Condition = "other-request"
	PolicyViolation        Condition = "policy-violation"
	RemoteConnectionFailed Condition = "remote-connection-failed"
	RemoteStreamError      Condition = "remote-stream-error"
	SeeOtherURI            Condition = "see-other-uri"
	SystemShutdown         Condition = "system-shutdown"
	UndefinedCondition     Condition = "undefined-condition"
)

// Response types, the type attribute of a <body/>.
const (
	// TypeTerminate ends the session (XEP-0124 §13, §17.2).
	TypeTerminate = "terminate"
	// TypeError is a recoverable error: the request failed but the
	// session lives on (XEP-0124 §17.3).
	TypeError = "error"
)
