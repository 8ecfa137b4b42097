package integration

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Pre-bound sessions (issue 19; docs/design/006-prebind.md): the boshd
// binary's POST /prebind, in front of a real Prosody, and what a client
// attaching to its session gets. The browsers' side is in
// browser_prebind_test.go.

// writeToken writes token to a new file in dir and returns its path.
func writeToken(t *testing.T, path, token string) string {
	t.Helper()
	if err := os.WriteFile(path, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// prebindAnswer is /prebind's JSON answer, or its error.
type prebindAnswer struct {
	Status int
	JID    string `json:"jid"`
	SID    string `json:"sid"`
	RID    string `json:"rid"`
	Wait   string `json:"wait"`
	Error  string `json:"error"`
	Field  string `json:"field"`
}

// callPrebind posts req as JSON to url with the bearer token and returns
// the answer. Its numbers must be JSON strings (Converse.js's
// prebind_url): the answer is decoded into strings.
func callPrebind(t testing.TB, url, token string, req map[string]string) prebindAnswer {
	t.Helper()
	body, err := json.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	hreq, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	hreq.Header.Set("Content-Type", "application/json")
	if token != "" {
		hreq.Header.Set("Authorization", "Bearer "+token)
	}
	resp, data, err := readAll((&http.Client{Timeout: eventTimeout}).Do(hreq))
	if err != nil {
		t.Fatal(err)
	}
	var a prebindAnswer
	if err := json.Unmarshal(data, &a); err != nil {
		t.Fatalf("/prebind answered %s with something other than a JSON object of strings: %v\n%s", resp.Status, err, data)
	}
	a.Status = resp.StatusCode
	return a
}

// attach returns a rawSession continuing the pre-bound session a, its
// next request carrying the rid /prebind answered.
func attach(t *testing.T, url string, a prebindAnswer) *rawSession {
	t.Helper()
	rid, err := strconv.ParseUint(a.RID, 10, 64)
	if err != nil {
		t.Fatalf("rid %q: %v", a.RID, err)
	}
	s := &rawSession{t: t, url: url, sid: a.SID, rid: rid - 1, hc: &http.Client{Transport: &http.Transport{DisableCompression: true}}}
	t.Cleanup(s.hc.CloseIdleConnections)
	return s
}

// TestBinaryPrebind: the boshd binary with /prebind on its admin
// listener logs alice in to Prosody with PLAIN, SCRAM-SHA-1 and the
// strongest offered, binds the resource asked, and keeps what bob sends
// her full JID before any client attaches for the client's first
// request; the attached session then chats both ways. A wrong password
// is a generic 401 with the attempt closed; a wrong token is 401 with
// nothing dialled; a token rewritten and SIGHUP replaces the old one;
// neither passwords nor tokens reach the log.
func TestBinaryPrebind(t *testing.T) {
	parallel(t)
	p := startProsody(t, prosodyOptions{})
	dir := t.TempDir()
	const token, newToken = "first-backend-token-ab12", "second-backend-token-cd34"
	tokenFile := writeToken(t, filepath.Join(dir, "token"), token)
	b := startBinaryFor(t, p, "--prebind-token-file", tokenFile)
	url := "http://" + b.AdminAddr + "/prebind"
	b.WaitLog(t, "single sign-on (prebind)")

	bob, bobLogin := login(t, b.URL, p, "bob", "PLAIN", "web")
	goOnline(t, bob)

	for i, mech := range []string{"PLAIN", "SCRAM-SHA-1", ""} {
		resource := fmt.Sprintf("sso%d", i)
		a := callPrebind(t, url, token, map[string]string{
			"jid": "alice@" + p.Domain, "resource": resource, "password": p.Passwords["alice"], "mechanism": mech, "client_ip": "192.0.2.7",
		})
		if a.Status != http.StatusOK || a.JID != "alice@"+p.Domain+"/"+resource || a.SID == "" || a.Wait != "60" {
			t.Fatalf("mechanism %q: %+v; want alice@%s/%s, a sid and wait 60", mech, a, p.Domain, resource)
		}
		// bob writes to the full JID before anyone attached.
		bob.Send(message(a.JID, "early"+resource, "before the attach "+resource))
		bob.Sync()
		eventually(t, eventTimeout, "bob's message queued in the pre-bound session", func() bool { return b.AdminMetric("boshd_queued_stanzas") >= 1 })

		alice := attach(t, b.URL, a)
		r := alice.waitStanza(alice.next("", ""), "message")
		if !strings.Contains(r.raw, "before the attach "+resource) {
			t.Fatalf("alice's first request got %s, want bob's early message", r.raw)
		}
		alice.next("", message(bobLogin.JID, "reply"+resource, "from the pre-bound "+resource)) // held: answered by the terminate
		bob.WaitFor("alice's reply", isStanza("message", func(e *Element) bool { return strings.Contains(e.String(), "from the pre-bound "+resource) }))
		if r := alice.get(alice.next(" type='terminate'", "<presence xmlns='"+nsClient+"' type='unavailable'/>")); r.body.Attr("type") != "terminate" {
			t.Fatalf("terminate: %s", r.raw)
		}
	}
	if n := countLines(b.Log(), "session pre-bound", "ip=192.0.2.7"); n != 3 {
		t.Errorf("%d log lines of sessions pre-bound for client_ip 192.0.2.7, want 3", n)
	}

	// A wrong password: generic, and the attempt closed.
	connects := b.AdminMetric(`boshd_upstream_connect_seconds_count{result="ok"}`)
	a := callPrebind(t, url, token, map[string]string{"jid": "alice@" + p.Domain, "password": "wrong-" + p.Passwords["alice"]})
	if a.Status != http.StatusUnauthorized || a.Error != "login failed" {
		t.Errorf("wrong password: %+v; want 401 login failed", a)
	}
	if got := b.AdminMetric(`boshd_upstream_connect_seconds_count{result="ok"}`); got != connects+1 {
		t.Errorf("upstream connections %v after a wrong password, want %v", got, connects+1)
	}
	eventually(t, eventTimeout, "the failed attempt closed", func() bool { return b.AdminMetric("boshd_sessions_active") == 1 }) // bob's
	// A wrong token: nothing dialled.
	if a := callPrebind(t, url, "not-"+token, map[string]string{"jid": "alice@" + p.Domain, "password": p.Passwords["alice"]}); a.Status != http.StatusUnauthorized {
		t.Errorf("wrong token: %+v; want 401", a)
	}
	if got := b.AdminMetric(`boshd_upstream_connect_seconds_count{result="ok"}`); got != connects+1 {
		t.Errorf("a wrong token dialled: %v upstream connections, want %v", got, connects+1)
	}

	// The token rewritten, then SIGHUP.
	writeToken(t, tokenFile, newToken)
	b.Signal(syscall.SIGHUP)
	b.WaitLog(t, "configuration reloaded")
	if a := callPrebind(t, url, token, map[string]string{"jid": "alice@" + p.Domain, "password": p.Passwords["alice"]}); a.Status != http.StatusUnauthorized {
		t.Errorf("the old token after SIGHUP: %+v; want 401", a)
	}
	a = callPrebind(t, url, newToken, map[string]string{"jid": "alice@" + p.Domain, "token": p.Passwords["alice"]})
	if a.Status != http.StatusOK {
		t.Errorf("the new token after SIGHUP, the password given as token: %+v; want 200", a)
	}

	for _, secret := range []string{p.Passwords["alice"], token, newToken} {
		if strings.Contains(b.Log(), secret) {
			t.Errorf("boshd logged a password or a token (%.4s…)", secret)
		}
	}
}

// TestBinaryPrebindAttachTimeout: a pre-bound session nobody attaches to
// ends after prebind_attach_timeout and its stream to Prosody is closed
// cleanly, as Prosody logs. The endpoint here is on prebind_listen, a listener
// of its own.
func TestBinaryPrebindAttachTimeout(t *testing.T) {
	parallel(t)
	p := startProsody(t, prosodyOptions{})
	token := "attach-timeout-token-0987"
	tokenFile := writeToken(t, filepath.Join(t.TempDir(), "token"), token)
	prebindAddr := freeAddr(t)
	b := startBinaryFor(t, p, "--prebind-token-file", tokenFile, "--prebind-listen", prebindAddr, "--prebind-attach-timeout", "2s")
	a := callPrebind(t, "http://"+prebindAddr+"/prebind", token, map[string]string{"jid": "alice@" + p.Domain, "password": p.Passwords["alice"], "resource": "late"})
	if a.Status != http.StatusOK {
		t.Fatalf("prebind: %+v", a)
	}
	start := time.Now()
	b.WaitLog(t, "session not attached")
	if took := time.Since(start); took > 2*time.Second+eventTimeout/2 {
		t.Errorf("the session ended %v after the prebind, want about 2 s", took)
	}
	// Closed cleanly: Prosody got </stream:stream>, not a lost
	// connection.
	eventually(t, eventTimeout, "alice's stream closed at Prosody", func() bool {
		return strings.Contains(readTail(p.logPath, 400), "c2s stream for alice@"+p.Domain+"/late closed: session closed")
	})
	alice := attach(t, b.URL, a)
	if r := alice.get(alice.next("", "")); r.body.Attr("type") != "terminate" || r.body.Attr("condition") != "item-not-found" {
		t.Errorf("a browser after the timeout got %s, want item-not-found", r.raw)
	}
}

// TestBinaryPrebindRefusedAtStart: /prebind over plain HTTP on an
// address that is not loopback stops boshd at start, unless
// prebind_insecure; a prebind token without any listener too.
func TestBinaryPrebindRefusedAtStart(t *testing.T) {
	t.Parallel()
	tokenFile := writeToken(t, filepath.Join(t.TempDir(), "token"), "start-token-1234")
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"public admin listener", []string{"--admin-listen", "0.0.0.0:0"}, "prebind_insecure"},
		{"public prebind listener", []string{"--admin-listen", "127.0.0.1:0", "--prebind-listen", "[::]:0"}, "prebind_insecure"},
		{"no listener", nil, "admin_listen or prebind_listen"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			args := append([]string{"--listen", "127.0.0.1:0", "--prebind-token-file", tokenFile}, tc.args...)
			cmd := exec.Command(mustBinary(t), args...)
			var out bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &out
			proc, err := startProcess(cmd)
			if err != nil {
				t.Fatal(err)
			}
			if !proc.WaitExit(eventTimeout) {
				proc.Kill()
				t.Fatalf("boshd started:\n%s", out.String())
			}
			if proc.Err() == nil || !strings.Contains(out.String(), tc.want) {
				t.Errorf("boshd exited with %v, saying:\n%s\nwant a failure naming %s", proc.Err(), out.String(), tc.want)
			}
		})
	}
}
