package bosh

import (
	"net/http/httptest"
	"strings"
	"testing"
)

// TestHostMeta checks the BOSH-only host-meta of HostMeta; the handler
// itself is gateway.HostMeta's, tested there.
func TestHostMeta(t *testing.T) {
	t.Parallel()
	const url = "https://chat.example.org/http-bind"
	for path, want := range map[string]string{
		HostMetaPath:     `<Link rel="urn:xmpp:alt-connections:xbosh" href="` + url + `"></Link>`,
		HostMetaJSONPath: `"rel": "urn:xmpp:alt-connections:xbosh",` + "\n      " + `"href": "` + url + `"`,
	} {
		w := httptest.NewRecorder()
		HostMeta(url).ServeHTTP(w, httptest.NewRequest("GET", "http://chat.example.org"+path, nil))
		if body := w.Body.String(); w.Code != 200 || !strings.Contains(body, want) || strings.Count(body, "urn:xmpp:alt-connections:") != 1 {
			t.Errorf("%s: %d %s; want the one link %s", path, w.Code, body, want)
		}
	}
}
