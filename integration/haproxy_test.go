package integration

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/boshd/boshd/internal/wait"
)

// Several boshd nodes behind HAProxy (docs/design/004-cluster.md): one
// real Prosody, three boshd binaries on 127.0.0.11–13 with node ids n1–n3,
// and a real HAProxy running contrib/haproxy/haproxy.cfg as written, with
// only its addresses and ports replaced by the test's.

// haproxyNodes are the nodes of contrib/haproxy/haproxy.cfg, and the
// loopback address each runs on in the tests.
var haproxyNodes = []struct{ name, ip string }{
	{"n1", "127.0.0.11"},
	{"n2", "127.0.0.12"},
	{"n3", "127.0.0.13"},
}

// haproxyRequired reports whether a missing HAProxy must fail the tests
// instead of skipping them (scripts/test sets BOSHD_REQUIRE_HAPROXY=1).
func haproxyRequired() bool {
	return os.Getenv("CI") == "true" || os.Getenv("BOSHD_REQUIRE_HAPROXY") == "1"
}

// haproxyBinary returns the path of haproxy, or skips (or fails) t.
func haproxyBinary(t *testing.T) string {
	t.Helper()
	for _, p := range []string{os.Getenv("BOSHD_HAPROXY"), "/usr/sbin/haproxy"} {
		if p == "" {
			continue
		}
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if p, err := exec.LookPath("haproxy"); err == nil {
		return p
	}
	msg := "haproxy is not installed (scripts/install-haproxy, or apt-get install -y haproxy)"
	if haproxyRequired() {
		t.Fatalf("%s; required because CI=true or BOSHD_REQUIRE_HAPROXY=1", msg)
	}
	t.Skip(msg + "; BOSHD_REQUIRE_HAPROXY=1 makes this a failure")
	return ""
}

// haproxyCluster is the fixture: Prosody, the boshd nodes and HAProxy.
type haproxyCluster struct {
	t     *testing.T
	P     *prosody
	nodes map[string]*clusterNode // by node id
	// URL is HAProxy's BOSH endpoint, WSURL its WebSocket one.
	URL, WSURL string
	statsURL   string
	haproxy    *process
	haLog      *logBuffer
}

// clusterNode is one boshd node of a haproxyCluster.
type clusterNode struct {
	*boshdProcess
	Name, AgentAddr string
}

// startHAProxyCluster starts Prosody, the three boshd nodes (each with
// its node id, its agent port, the others as peers with one shared
// secret, and debug logs, which name each request for a sid the node does
// not hold) and HAProxy in front of them, and waits until HAProxy sees
// every node up.
func startHAProxyCluster(t *testing.T, opts prosodyOptions) *haproxyCluster {
	t.Helper()
	return startHAProxyClusterArgs(t, opts)
}

// startHAProxyClusterArgs is startHAProxyCluster with more arguments for
// every node, after the cluster's own (a flag given twice takes the last).
func startHAProxyClusterArgs(t *testing.T, opts prosodyOptions, nodeArgs ...string) *haproxyCluster {
	t.Helper()
	bin := haproxyBinary(t)
	for _, n := range haproxyNodes {
		ln, err := net.Listen("tcp", n.ip+":0")
		if err != nil {
			t.Fatalf("loopback address %s: %v", n.ip, err)
		}
		ln.Close()
	}
	p := startProsody(t, opts)
	dir := t.TempDir()
	secret := make([]byte, 48)
	rand.Read(secret)
	secretFile := filepath.Join(dir, "cluster-secret")
	if err := os.WriteFile(secretFile, []byte(base64.StdEncoding.EncodeToString(secret)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	c := &haproxyCluster{t: t, P: p, nodes: map[string]*clusterNode{}}
	addrs := map[string]string{}
	for _, n := range haproxyNodes {
		addrs[n.name] = net.JoinHostPort(n.ip, strconv.Itoa(mustFreePort(t)))
	}
	for _, n := range haproxyNodes {
		addr, admin, agent := addrs[n.name], net.JoinHostPort(n.ip, strconv.Itoa(mustFreePort(t))), net.JoinHostPort(n.ip, strconv.Itoa(mustFreePort(t)))
		args := []string{"--listen", addr, "--admin-listen", admin, "--agent-listen", agent,
			"--node-id", n.name, "--cluster-secret-file", secretFile,
			"--upstream", p.Domain + "=" + p.Addr, "--upstream-tls", "plaintext", "--log-level", "debug"}
		for _, peer := range haproxyNodes {
			if peer.name != n.name {
				args = append(args, "--peer", peer.name+"="+addrs[peer.name])
			}
		}
		b := startBinary(t, append(args, nodeArgs...)...)
		b.Addr, b.AdminAddr, b.URL = addr, admin, "http://"+addr+"/http-bind"
		c.nodes[n.name] = &clusterNode{boshdProcess: b, Name: n.name, AgentAddr: agent}
	}

	front, stats := freeAddr(t), freeAddr(t)
	cfg := haproxyConfig(t, front, stats, c.nodes)
	cfgFile := filepath.Join(dir, "haproxy.cfg")
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	c.haLog = &logBuffer{}
	cmd := exec.Command(bin, "-f", cfgFile, "-db")
	cmd.Stdout, cmd.Stderr = c.haLog, c.haLog
	var err error
	if c.haproxy, err = startProcess(cmd); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.haproxy.Kill()
		if t.Failed() {
			t.Logf("HAProxy log (last %d lines):\n%s", boshdLogTail, c.haLog.Tail(boshdLogTail))
		}
	})
	c.URL, c.WSURL, c.statsURL = "http://"+front+"/http-bind", "ws://"+front+"/xmpp-websocket", "http://"+stats+"/stats;csv"
	for _, n := range haproxyNodes {
		c.WaitState(n.name, "UP")
	}
	return c
}

// mustFreePort is freePort failing t.
func mustFreePort(t *testing.T) int {
	t.Helper()
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	return port
}

// haproxyConfig returns contrib/haproxy/haproxy.cfg with its addresses
// replaced: the frontend's bind by front, the stats listener's by stats,
// and each server's address and agent port by its node's. Every one of
// them must be found, so that the test runs the file's own shape.
func haproxyConfig(t *testing.T, front, stats string, nodes map[string]*clusterNode) string {
	t.Helper()
	data, err := os.ReadFile("../contrib/haproxy/haproxy.cfg")
	if err != nil {
		t.Fatal(err)
	}
	cfg := string(data)
	replace := func(re *regexp.Regexp, with func(m []string) string) {
		t.Helper()
		n := 0
		cfg = re.ReplaceAllStringFunc(cfg, func(s string) string {
			n++
			return with(re.FindStringSubmatch(s))
		})
		if n != 1 {
			t.Fatalf("haproxy.cfg: %d lines match %s, want 1", n, re)
		}
	}
	replace(regexp.MustCompile(`(?m)^(\tbind) :5280$`), func(m []string) string { return m[1] + " " + front })
	replace(regexp.MustCompile(`(?m)^(\tbind) 127\.0\.0\.1:8404$`), func(m []string) string { return m[1] + " " + stats })
	for name, n := range nodes {
		_, agentPort, _ := net.SplitHostPort(n.AgentAddr)
		re := regexp.MustCompile(`(?m)^(\tserver ` + name + `) \S+( .* agent-port) \d+( .*)$`)
		replace(re, func(m []string) string { return m[1] + " " + n.Addr + m[2] + " " + agentPort + m[3] })
	}
	return cfg
}

// Stats returns HAProxy's status of each server of the boshd backend
// (UP, DOWN, DRAIN, …) and its current connections.
func (c *haproxyCluster) Stats() (status map[string]string, conns map[string]int, err error) {
	hc := &http.Client{Timeout: eventTimeout}
	_, data, err := readAll(hc.Get(c.statsURL))
	if err != nil {
		return nil, nil, err
	}
	rows, err := csv.NewReader(strings.NewReader(strings.TrimPrefix(string(data), "# "))).ReadAll()
	if err != nil || len(rows) == 0 {
		return nil, nil, fmt.Errorf("stats: %v: %q", err, data)
	}
	col := map[string]int{}
	for i, name := range rows[0] {
		col[name] = i
	}
	status, conns = map[string]string{}, map[string]int{}
	for _, row := range rows[1:] {
		if len(row) <= col["status"] || row[col["pxname"]] != "boshd" {
			continue
		}
		status[row[col["svname"]]] = row[col["status"]]
		conns[row[col["svname"]]], _ = strconv.Atoi(row[col["scur"]])
	}
	return status, conns, nil
}

// WaitState waits until HAProxy reports node's status starting with state.
func (c *haproxyCluster) WaitState(node, state string) {
	c.t.Helper()
	var last string
	if !wait.For(eventTimeout, func() bool {
		status, _, err := c.Stats()
		if err != nil {
			last = err.Error()
			return false
		}
		last = status[node]
		return strings.HasPrefix(last, state)
	}) {
		c.t.Fatalf("HAProxy does not see %s %s within %v: %q", node, state, eventTimeout, last)
	}
}

// nodeOf returns the node id in sid, the part before its first dot.
func nodeOf(sid string) string {
	name, _, _ := strings.Cut(sid, ".")
	return name
}

// Login logs user in through HAProxy and returns the client and the node
// holding its session, which must be one of the cluster's.
func (c *haproxyCluster) Login(user string) (*Client, string) {
	c.t.Helper()
	cl, _ := login(c.t, c.URL, c.P, user, "PLAIN", "web")
	node := nodeOf(cl.SID())
	if c.nodes[node] == nil {
		c.t.Fatalf("%s: sid %q names no node of the cluster", user, cl.SID())
	}
	return cl, node
}

// Metrics returns the Prometheus text of node's admin listener.
func (c *haproxyCluster) Metrics(node string) string {
	c.t.Helper()
	hc := &http.Client{Timeout: eventTimeout}
	_, data, err := readAll(hc.Get("http://" + c.nodes[node].AdminAddr + "/metrics"))
	if err != nil {
		c.t.Fatalf("%s metrics: %v", node, err)
	}
	return string(data)
}

// sumMetric returns the sum of every sample of the metric named name, all
// labels together, in Prometheus text.
func sumMetric(text, name string) float64 {
	var sum float64
	for _, line := range strings.Split(text, "\n") {
		rest, ok := strings.CutPrefix(line, name)
		if !ok || (rest != "" && rest[0] != ' ' && rest[0] != '{') {
			continue
		}
		fields := strings.Fields(rest)
		if v, err := strconv.ParseFloat(fields[len(fields)-1], 64); err == nil {
			sum += v
		}
	}
	return sum
}

// CheckOwnersOnly fails the test if any node was sent a request for a
// session it does not hold: it would have logged "unknown sid" (debug) or
// forwarded the request (boshd_forwarded_requests_total).
func (c *haproxyCluster) CheckOwnersOnly() {
	c.t.Helper()
	c.CheckOwnersSince(nil)
}

// Forwarded returns how many requests each running node has forwarded.
func (c *haproxyCluster) Forwarded() map[string]float64 {
	c.t.Helper()
	f := map[string]float64{}
	for _, n := range haproxyNodes {
		if c.nodes[n.name].Running() {
			f[n.name] = sumMetric(c.Metrics(n.name), "boshd_forwarded_requests_total")
		}
	}
	return f
}

// CheckOwnersSince is CheckOwnersOnly counting only the requests forwarded
// since before (a map from Forwarded; nil: since the start).
func (c *haproxyCluster) CheckOwnersSince(before map[string]float64) {
	c.t.Helper()
	for _, n := range haproxyNodes {
		node := c.nodes[n.name]
		if !node.Running() {
			continue
		}
		if lines := grepLines(node.Log(), "unknown sid"); lines != "" {
			c.t.Errorf("%s got requests for sessions it does not hold:\n%s", n.name, lines)
		}
		if f := sumMetric(c.Metrics(n.name), "boshd_forwarded_requests_total") - before[n.name]; f != 0 {
			c.t.Errorf("%s forwarded %v requests: HAProxy sent them to the wrong node", n.name, f)
		}
	}
}

// drainState is the answer of a node's /drain.
type drainState struct {
	Draining  bool  `json:"draining"`
	Sessions  int64 `json:"sessions"`
	WebSocket int64 `json:"websocket"`
}

// Drain sends method /drain to node's admin listener and returns the state
// it answers.
func (c *haproxyCluster) Drain(node, method string) drainState {
	c.t.Helper()
	req, err := http.NewRequest(method, "http://"+c.nodes[node].AdminAddr+"/drain", nil)
	if err != nil {
		c.t.Fatal(err)
	}
	resp, data, err := readAll((&http.Client{Timeout: eventTimeout}).Do(req))
	if err != nil {
		c.t.Fatalf("%s /drain on %s: %v", method, node, err)
	}
	var st drainState
	if resp.StatusCode != http.StatusOK || json.Unmarshal(data, &st) != nil {
		c.t.Fatalf("%s /drain on %s: %d %q", method, node, resp.StatusCode, data)
	}
	return st
}

// chatInOrder sends n messages from one client to another and checks that they
// arrive once each and in order.
func chatInOrder(t *testing.T, from *Client, fromJID string, to *Client, toJID, tag string, n int) {
	t.Helper()
	for i := range n {
		from.Send(fmt.Sprintf("<message xmlns='%s' to='%s' type='chat' id='%s-%d'><body>%s %d</body></message>", nsClient, toJID, tag, i, tag, i))
	}
	for i := range n {
		m := to.WaitFor(fmt.Sprintf("%s message %d", tag, i), isStanza("message", func(e *Element) bool {
			return e.Attr("from") == fromJID && strings.HasPrefix(e.ChildText(nsClient, "body"), tag+" ")
		}))
		if got, want := m.ChildText(nsClient, "body"), fmt.Sprintf("%s %d", tag, i); got != want {
			t.Fatalf("%s: got %q, want %q: lost, repeated or out of order", tag, got, want)
		}
	}
}

// TestHAProxyRouting is issue 17's point 2 with real parts: sessions made
// through HAProxy spread over the nodes, and every request of a session
// then reaches the node holding it, with no forwarding; a payload carrying
// another node's sid (an IBB <open/>) does not steer its request.
func TestHAProxyRouting(t *testing.T) {
	parallel(t)
	c := startHAProxyCluster(t, prosodyOptions{})
	users := []string{"alice", "bob", "carol"}
	clients := map[string]*Client{}
	jids := map[string]string{}
	on := map[string]string{} // user to node
	for _, u := range users {
		cl, node := c.Login(u)
		clients[u], on[u] = cl, node
		jids[u] = u + "@" + c.P.Domain + "/web"
		goOnline(t, cl)
	}
	t.Logf("sessions: %v", on)
	if on["alice"] == on["bob"] && on["bob"] == on["carol"] {
		t.Errorf("leastconn put every session on %s", on["alice"])
	}
	for _, u := range users {
		if n := parseMetric(c.Metrics(on[u]), "boshd_sessions_active"); n < 1 {
			t.Errorf("%s's session is not on %s, which its sid names", u, on[u])
		}
	}

	// Chat in a ring, then pings, many requests each.
	chatInOrder(t, clients["alice"], jids["alice"], clients["bob"], jids["bob"], "a2b", 10)
	chatInOrder(t, clients["bob"], jids["bob"], clients["carol"], jids["carol"], "b2c", 10)
	chatInOrder(t, clients["carol"], jids["carol"], clients["alice"], jids["alice"], "c2a", 10)
	for _, u := range users {
		for range 5 {
			clients[u].Sync()
		}
	}

	// A message whose payload names, in a sid attribute, a node whose
	// use-server rule comes before the sender's: were the ACL to look
	// past the <body> start tag, the request would go there.
	sender := ""
	for _, u := range users {
		if on[u] != "n1" && (sender == "" || on[u] > on[sender]) {
			sender = u
		}
	}
	if sender == "" {
		t.Fatal("no session on a node other than n1")
	}
	receiver := users[(indexOf(users, sender)+1)%len(users)]
	for i := range 3 {
		clients[sender].Send(fmt.Sprintf("<message xmlns='%s' to='%s' id='ibb%d'><open xmlns='http://jabber.org/protocol/ibb' block-size='4096' sid='n1.x%d'/><body>ibb %d</body></message>", nsClient, jids[receiver], i, i, i))
	}
	for i := range 3 {
		m := clients[receiver].WaitFor(fmt.Sprintf("ibb message %d", i), isStanza("message", attrIs("id", fmt.Sprintf("ibb%d", i))))
		if open := m.Child("http://jabber.org/protocol/ibb", "open"); open == nil || open.Attr("sid") != fmt.Sprintf("n1.x%d", i) {
			t.Errorf("message %d arrived without its <open sid='n1.x%d'/>: %s", i, i, m)
		}
	}
	clients[sender].Sync()
	c.CheckOwnersOnly()

	for _, u := range users {
		checkTerminateType(t, clients[u].Terminate(""))
	}
}

// indexOf returns the index of s in list, -1 if absent.
func indexOf(list []string, s string) int {
	for i, v := range list {
		if v == s {
			return i
		}
	}
	return -1
}

// TestHAProxyWebSocket checks that WebSocket upgrades through HAProxy
// spread over the nodes by leastconn and that sessions on different nodes
// talk to each other.
func TestHAProxyWebSocket(t *testing.T) {
	parallel(t)
	c := startHAProxyCluster(t, prosodyOptions{})
	users := []string{"alice", "bob", "carol"}
	clients := map[string]*wsClient{}
	for _, u := range users {
		ws := dialWS(t, u, c.WSURL, nil)
		ws.Login(c.P, "PLAIN", u, "ws")
		clients[u] = ws
	}
	perNode := map[string]float64{}
	total := 0.0
	for _, n := range haproxyNodes {
		perNode[n.name] = parseMetric(c.Metrics(n.name), "boshd_websocket_sessions_active")
		total += perNode[n.name]
	}
	t.Logf("WebSocket sessions per node: %v", perNode)
	if total != float64(len(users)) {
		t.Fatalf("%v WebSocket sessions on the nodes, want %d", total, len(users))
	}
	for node, n := range perNode {
		if n == total {
			t.Errorf("leastconn put every WebSocket session on %s", node)
		}
	}
	clients["alice"].Send(fmt.Sprintf("<presence xmlns='%s'/>", nsClient))
	clients["bob"].Send(fmt.Sprintf("<presence xmlns='%s'/>", nsClient))
	clients["alice"].Sync()
	clients["bob"].Sync()
	for i := range 5 {
		clients["alice"].Send(fmt.Sprintf("<message xmlns='%s' to='bob@%s/ws' type='chat' id='w%d'><body>ws %d</body></message>", nsClient, c.P.Domain, i, i))
	}
	for i := range 5 {
		m := clients["bob"].WaitFor(fmt.Sprintf("ws message %d", i), isStanza("message", func(e *Element) bool { return strings.HasPrefix(e.ChildText(nsClient, "body"), "ws ") }))
		if got := m.ChildText(nsClient, "body"); got != fmt.Sprintf("ws %d", i) {
			t.Fatalf("bob got %q, want \"ws %d\"", got, i)
		}
	}
}

// TestHAProxyDrain is issue 17's point 4 through HAProxy: a node drained
// with SIGUSR1 is told to HAProxy by its agent, gets no new session (the
// ones made meanwhile go to the other nodes: a creation that reaches it
// before HAProxy knows is forwarded to a peer), while its own session
// goes on; /drain counts that session until it ends; DELETE /drain puts
// the node back.
func TestHAProxyDrain(t *testing.T) {
	parallel(t)
	c := startHAProxyCluster(t, prosodyOptions{})
	alice, drained := c.Login("alice")
	aliceJID := "alice@" + c.P.Domain + "/web"
	goOnline(t, alice)

	c.nodes[drained].Signal(syscall.SIGUSR1)
	c.nodes[drained].WaitLog(t, `by=SIGUSR1`)
	if st := c.Drain(drained, http.MethodGet); st != (drainState{Draining: true, Sessions: 1}) {
		t.Errorf("/drain on %s: %+v, want draining with alice's session", drained, st)
	}
	if resp, body, err := readAll(http.Get("http://" + c.nodes[drained].AdminAddr + "/readyz")); err != nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("/readyz of the draining node: %v %q, want 503", err, body)
	}
	// New sessions at once, before HAProxy's agent check has seen the
	// drain: forwarded by the node to a peer (it has peers; without, it
	// would refuse them with 503, and HAProxy retry them elsewhere).
	others := []*Client{}
	for _, u := range []string{"bob", "carol", "dave"} {
		cl, node := c.Login(u)
		if node == drained {
			t.Errorf("%s's new session went to %s, which drains", u, node)
		}
		others = append(others, cl)
	}
	c.WaitState(drained, "DRAIN")
	forwarded := c.Forwarded()
	t.Logf("creations the drained node forwarded to a peer before HAProxy saw the drain: %v", forwarded[drained])
	for i := range 3 {
		cl := newClient(t, fmt.Sprintf("late%d", i), c.URL)
		if node := nodeOf(cl.MustCreate().Attr("sid")); node == drained {
			t.Errorf("a session made once HAProxy saw the drain went to %s", node)
		}
		cl.Terminate("")
	}

	// alice's session, on the draining node, goes on both ways.
	bob := others[0]
	goOnline(t, bob)
	bobJID := "bob@" + c.P.Domain + "/web"
	chatInOrder(t, alice, aliceJID, bob, bobJID, "drain-a2b", 5)
	chatInOrder(t, bob, bobJID, alice, aliceJID, "drain-b2a", 5)
	c.CheckOwnersSince(forwarded)

	checkTerminateType(t, alice.Terminate(""))
	eventually(t, eventTimeout, "/drain counting no session once alice left", func() bool {
		return c.Drain(drained, http.MethodGet) == drainState{Draining: true}
	})
	if st := c.Drain(drained, http.MethodDelete); st.Draining {
		t.Errorf("DELETE /drain: %+v", st)
	}
	c.WaitState(drained, "UP")
	if log := c.haLog.String(); !strings.Contains(log, "boshd/"+drained) {
		t.Errorf("HAProxy's log shows no request served by %s", drained)
	}
}

// TestHAProxyNodeKilled is issue 17's point 5 for BOSH: kill -9 of one
// node leaves the sessions on the others untouched, and its own client
// gets item-not-found within 2 s, on the request that was held there and
// on its next one, from another node (which tries to forward it to the
// dead node when forwarding is on).
func TestHAProxyNodeKilled(t *testing.T) {
	parallel(t)
	c := startHAProxyCluster(t, prosodyOptions{})
	// One session on each node: leastconn spreads them, counting
	// connections, not sessions (kept-alive ones included), so it may
	// take more tries than nodes when the machine is busy.
	const tries = 30
	byNode := map[string]*Client{}
	names := map[*Client]string{}
	for i := 0; len(byNode) < len(haproxyNodes) && i < tries; i++ {
		user := testUsers[i%len(testUsers)]
		cl, _ := login(t, c.URL, c.P, user, "PLAIN", fmt.Sprintf("r%d", i))
		node := nodeOf(cl.SID())
		if byNode[node] != nil {
			cl.Terminate("")
			continue
		}
		byNode[node], names[cl] = cl, fmt.Sprintf("%s@%s/r%d", user, c.P.Domain, i)
		goOnline(t, cl)
	}
	if len(byNode) < len(haproxyNodes) {
		t.Fatalf("sessions on %d nodes after %d tries", len(byNode), tries)
	}
	const victim = "n2"
	dead := byNode[victim]
	deadSID := dead.SID()

	killed := time.Now()
	if !c.nodes[victim].Kill() {
		t.Fatal("the killed node was not reaped")
	}
	terminal, at, err := dead.waitTerminal(killed.Add(eventTimeout))
	if err != nil {
		t.Fatalf("the killed node's client: %v", err)
	}
	if terminal.Attr("condition") != "item-not-found" || at.Sub(killed) > 2*time.Second {
		t.Errorf("the killed node's client got %s after %v, want item-not-found within 2s", terminal, at.Sub(killed).Round(time.Millisecond))
	}
	t.Logf("the held request of the killed node's client: %s after %v", terminal.Attr("condition"), at.Sub(killed).Round(time.Millisecond))

	// Its next request, as a client that missed the answer would send.
	raw := newClient(t, "after-kill", c.URL)
	start := time.Now()
	ex := raw.RawPost(fmt.Sprintf("<body xmlns='%s' sid='%s' rid='%d'/>", nsHTTPBind, deadSID, dead.NextRID()))
	if took := time.Since(start); ex.Body.Attr("condition") != "item-not-found" || took > 2*time.Second {
		t.Errorf("next request for the killed node's session: %s after %v, want item-not-found within 2s", ex.Raw, took.Round(time.Millisecond))
	}
	// Both answers came from a node that tried to forward the request to
	// the dead one and gave up at once: unreachable (connection refused),
	// or error (a kept-alive connection to it reset).
	failed := 0.0
	for _, node := range []string{"n1", "n3"} {
		m := c.Metrics(node)
		for _, outcome := range []string{"unreachable", "error"} {
			failed += parseMetric(m, `boshd_forwarded_requests_total{outcome="`+outcome+`",peer="`+victim+`"}`)
		}
	}
	if failed < 2 {
		t.Errorf("the other nodes counted %v requests they could not forward to %s, want at least the 2 answered item-not-found", failed, victim)
	}
	c.WaitState(victim, "DOWN")

	// The others see nothing: they talk both ways, still on their nodes.
	a, b := byNode["n1"], byNode["n3"]
	chatInOrder(t, a, names[a], b, names[b], "after-kill-1to3", 5)
	chatInOrder(t, b, names[b], a, names[a], "after-kill-3to1", 5)
	for _, node := range []string{"n1", "n3"} {
		if lines := grepLines(c.nodes[node].Log(), "level=ERROR"); lines != "" {
			t.Errorf("%s logged errors:\n%s", node, lines)
		}
		if n := parseMetric(c.Metrics(node), "boshd_sessions_active"); n != 1 {
			t.Errorf("%s holds %v sessions, want its 1", node, n)
		}
	}
	checkTerminateType(t, a.Terminate(""))
	checkTerminateType(t, b.Terminate(""))
}
