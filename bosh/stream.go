package bosh

import (
	"context"
	"errors"

	"github.com/boshd/boshd/session"
	"github.com/boshd/boshd/xmpp"
)

// addStream opens another stream in session s for a request carrying to
// (XEP-0124 §16.2), with the same checks as a session creation, and hands
// the request to the session with the open stream, or with why it could
// not be opened: the session answers in rid order and lives on either way.
func (h *Handler) addStream(ctx context.Context, s *session.Session, b *body) (*session.Response, func(), error) {
	add := &session.NewStream{}
	target, err := h.target(b)
	if err != nil {
		var re *requestError
		errors.As(err, &re)
		h.log.Info("stream refused", "sid", s.LogID(), "err", err)
		add.Failed = re.cond
	} else {
		target.Lang = b.lang
		conn, err := h.g.Dial(ctx, target)
		var serr *xmpp.StreamError
		switch {
		case errors.As(err, &serr):
			add.Failed, add.Payload = session.RemoteStreamError, [][]byte{serr.Raw}
		case err != nil:
			h.log.Warn("upstream connection failed", "domain", target.Domain, "addr", target.Addr, "err", err)
			add.Failed = session.RemoteConnectionFailed
		default:
			add.Up, add.From, add.Payload = conn, conn.From(), [][]byte{conn.Features()}
			if add.From == "" {
				add.From = target.Domain
			}
		}
	}
	// The session owns add.Up from here, and closes it if the request
	// is refused.
	return s.Handle(ctx, session.Request{RID: b.rid, Add: add, Key: b.key, NewKey: b.newkey, Ack: parseAck(b.ack)})
}

// isAddStream reports whether b asks session s for another stream: a
// request with to that is not a restart, in a session with multiple
// streams. Without them, such a request is an empty poll (XEP-0124 §16.3).
func isAddStream(s *session.Session, b *body) bool {
	return s.Params.MultiStream && b.hasTo && !b.restart
}

// streamOf returns the stream a request names; without multiple streams
// the attribute is ignored (XEP-0124 §16.3).
func streamOf(s *session.Session, b *body) string {
	if !s.Params.MultiStream {
		return ""
	}
	return b.stream
}
