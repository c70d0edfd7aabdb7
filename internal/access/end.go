package access

// End says how a connection or session ended: the "end" field of its access
// line. Its values are the constants below and Rejected's.
type End string

// The ends of a connection or session.
const (
	// EOF: both directions finished with FIN (TCP).
	EOF End = "eof"
	// Reset: a side reset or failed, and both were reset (TCP); the
	// backend became unreachable after replying, or the socket failed (UDP).
	Reset End = "reset"
	// IdleTimeout: no byte (or datagram) either way for the idle limit.
	IdleTimeout End = "idle-timeout"
	// Drained: ended by a graceful stop, an upgrade or a reload that removed
	// the rule.
	Drained End = "drained"
	// Closed: closed by an operator through the admin API.
	Closed End = "closed"
	// ConnectFailed: no backend could be reached.
	ConnectFailed End = "connect-failed"
)

// Reason says why a client was refused: the <reason> of the end
// "rejected:<reason>" and the reason label of sluice_rejected_total. The
// empty Reason means the client was admitted. Its values are admit's
// (ReasonDenied and the others), UDP's ReasonMaxSessions and the routed
// TCP rules' below.
type Reason string

// The reasons a routed TCP rule refuses a client for.
const (
	// ReasonNoRoute: the client's first bytes chose no route and the
	// rule has no default route (backends of its own).
	ReasonNoRoute Reason = "no-route"
	// ReasonPeekTimeout: the client sent nothing within peek_timeout and
	// the rule has no default route.
	ReasonPeekTimeout Reason = "peek-timeout"
	// ReasonTLSHandshake: the TLS handshake of a terminating rule or
	// route failed or did not finish within peek_timeout.
	ReasonTLSHandshake Reason = "tls-handshake"
)

// The reasons a TCP client waiting for a full backend is refused for
// (see queue_timeout).
const (
	// ReasonQueueTimeout: every usable backend stayed full (at its
	// max_connections) for queue_timeout while the client waited.
	ReasonQueueTimeout Reason = "queue-timeout"
	// ReasonQueueFull: every usable backend was full and max_queue
	// clients were waiting already.
	ReasonQueueFull Reason = "queue-full"
)

// rejectedPrefix starts the end of every refused client.
const rejectedPrefix = "rejected:"

// Rejected returns the end of a client refused for reason:
// "rejected:<reason>".
func Rejected(reason Reason) End { return End(rejectedPrefix + string(reason)) }
