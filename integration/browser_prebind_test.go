package integration

import (
	"bytes"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
)

// Single sign-on in Chromium (issue 19): a web application's backend
// pre-binds its user through boshd's /prebind and the page attaches, with
// Converse.js (authentication 'prebind', prebind_url) and Strophe.js
// (attach()).

// backendPrebindPath is the test backend's prebind_url on the pages'
// origin.
const backendPrebindPath = "/backend/prebind"

// prebindBackend is a web application's backend as the test plays it: it
// knows its users' passwords and serves prebind_url (GET ?user=NAME) by
// calling boshd's /prebind with its bearer token, for the browser's
// address, and answering the browser with boshd's JSON.
type prebindBackend struct {
	prebindURL string // boshd's /prebind
	token      string
	users      map[string]browserUser

	mu    sync.Mutex
	calls map[string]int // prebind_url calls per user
}

func (b *prebindBackend) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	user, ok := b.users[r.URL.Query().Get("user")]
	if !ok {
		http.Error(w, "no such user", http.StatusNotFound)
		return
	}
	b.mu.Lock()
	b.calls[r.URL.Query().Get("user")]++
	b.mu.Unlock()
	ip, _, _ := net.SplitHostPort(r.RemoteAddr)
	body, _ := json.Marshal(map[string]string{"jid": user.JID, "password": user.Password, "resource": "sso", "client_ip": ip})
	req, err := http.NewRequestWithContext(r.Context(), http.MethodPost, b.prebindURL, bytes.NewReader(body))
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	req.Header.Set("Authorization", "Bearer "+b.token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(resp.StatusCode)
	io.Copy(w, resp.Body)
}

// Calls returns how many times user's prebind_url was fetched.
func (b *prebindBackend) Calls(user string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.calls[user]
}

// startPrebindStack starts the browser stack with boshd's /prebind
// served (as cmd/boshd serves it on its admin listener) and the test
// backend at backendPrebindPath on the pages' origin.
func startPrebindStack(t *testing.T) (*browserStack, *prebindBackend) {
	t.Helper()
	const token = "browser-backend-token-5678"
	backend := &prebindBackend{token: token, calls: make(map[string]int)}
	st := startBrowserStack(t, serveOptions{Routes: func(mux *http.ServeMux) {
		mux.Handle(backendPrebindPath, backend)
	}})
	backend.users = st.Users
	endpoint := httptest.NewServer(st.Handler.PrebindHandler(func() []byte { return []byte(token) }))
	t.Cleanup(endpoint.Close)
	backend.prebindURL = endpoint.URL + "/prebind"
	t.Cleanup(func() {
		for _, u := range st.Users {
			if countLines(st.Log(), u.Password) > 0 || countLines(st.Log(), token) > 0 {
				t.Errorf("boshd logged a password or the token")
			}
		}
	})
	return st, backend
}

// TestBrowserConversePrebind: Converse.js with authentication 'prebind'
// and auto_login opens straight into alice's roster (no login form) and
// chats with bob; reloaded, it is in again without a login form and
// chats on.
func TestBrowserConversePrebind(t *testing.T) {
	t.Parallel()
	st, backend := startPrebindStack(t)
	res := st.Run(t, "converse-prebind", map[string]any{"prebindPath": backendPrebindPath})
	if jid, _ := res["jid"].(string); jid != st.Users["alice"].JID+"/sso" {
		t.Errorf("Converse.js is in as %q, want %s/sso", jid, st.Users["alice"].JID)
	}
	before, _ := res["sidsBefore"].([]any)
	after, _ := res["sidsAfter"].([]any)
	if len(before) != 1 || len(after) != 1 {
		t.Fatalf("alice's BOSH sids: %v before the reload, %v after; want one each", before, after)
	}
	switch calls := backend.Calls("alice"); {
	case calls == 1 && after[0] == before[0]:
		t.Logf("after the reload Converse.js restored pre-bound session %v", before[0])
	case calls == 2 && after[0] != before[0]:
		t.Logf("after the reload Converse.js pre-bound anew: session %v, then %v", before[0], after[0])
	default:
		t.Errorf("prebind_url fetched %d times, sids %v then %v: want one fetch and the same session, or two and a new one", calls, before, after)
	}
	if n := countLines(st.Log(), "session pre-bound"); n != backend.Calls("alice") {
		t.Errorf("boshd pre-bound %d sessions, want one per prebind_url fetch (%d)", n, backend.Calls("alice"))
	}
}

// TestBrowserStropheAttach: Strophe.js attach() on a pre-bound session:
// its first request carries the rid /prebind answered, it gets what bob
// sent before it attached, and it sends and receives.
func TestBrowserStropheAttach(t *testing.T) {
	t.Parallel()
	st, backend := startPrebindStack(t)
	res := st.Run(t, "strophe-attach", map[string]any{"prebindPath": backendPrebindPath})
	if res["firstRid"] != res["rid"] || res["firstSid"] != res["sid"] || res["attachedSid"] != res["sid"] {
		t.Errorf("attached page's first request: sid %v rid %v; /prebind answered sid %v rid %v", res["firstSid"], res["firstRid"], res["sid"], res["rid"])
	}
	if backend.Calls("alice") != 1 {
		t.Errorf("prebind_url fetched %d times, want 1", backend.Calls("alice"))
	}
}
