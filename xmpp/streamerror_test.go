package xmpp

import "testing"

func TestParseStreamError(t *testing.T) {
	t.Parallel()
	const open = `<stream:error xmlns:stream='http://etherx.jabber.org/streams'>`
	const end = `</stream:error>`
	for _, tc := range []struct {
		name, raw       string
		condition, text string
		msg             string
	}{
		{
			name:      "condition only",
			raw:       open + `<conflict xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>` + end,
			condition: "conflict",
			msg:       "xmpp: stream error: conflict",
		},
		{
			name:      "text before condition, app element after",
			raw:       open + `<text xmlns='urn:ietf:params:xml:ns:xmpp-streams' xml:lang='en'>Replaced &amp; gone</text><system-shutdown xmlns='urn:ietf:params:xml:ns:xmpp-streams'/><app xmlns='urn:example'/>` + end,
			condition: "system-shutdown",
			text:      "Replaced & gone",
			msg:       "xmpp: stream error: system-shutdown: Replaced & gone",
		},
		{
			name: "no defined condition",
			raw:  open + `<app xmlns='urn:example'/>` + end,
			msg:  "xmpp: stream error: no condition",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := parseStreamError([]byte(tc.raw))
			if e.Condition != tc.condition || e.Text != tc.text || string(e.Raw) != tc.raw {
				t.Errorf("got %+v", e)
			}
			if e.Error() != tc.msg {
				t.Errorf("Error() = %q, want %q", e.Error(), tc.msg)
			}
		})
	}
}
