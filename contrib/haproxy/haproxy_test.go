// Package haproxy_test checks contrib/haproxy/haproxy.cfg: the ACLs that
// route a BOSH request to the node holding its session
// (docs/design/004-cluster.md). integration/haproxy_test.go runs the file
// in HAProxy itself.
package haproxy_test

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"
)

// words splits one line of an HAProxy configuration into its words as
// HAProxy 2.6 does (configuration manual, "Quoting and escaping"): words
// are separated by blanks; "…" groups a word in which backslash escapes
// still apply and $ would expand an environment variable (refused here:
// a regex anchor there would not reach the regex); '…' groups one taken
// as it is; outside single quotes \ followed by a blank, #, \, ' or "
// stands for that character, and any other backslash is kept; # outside
// quotes starts a comment.
func words(line string) ([]string, error) {
	var out []string
	var w strings.Builder
	inWord := false
	quote := byte(0)
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case quote == '\'':
			if c == '\'' {
				quote = 0
				continue
			}
			w.WriteByte(c)
		case c == '\\' && i+1 < len(line) && strings.IndexByte(" \t#\\'\"", line[i+1]) >= 0:
			i++
			w.WriteByte(line[i])
			inWord = true
		case quote == '"':
			switch c {
			case '"':
				quote = 0
			case '$':
				return nil, fmt.Errorf("$ in a double-quoted word expands a variable: %q", line)
			default:
				w.WriteByte(c)
			}
		case c == '"' || c == '\'':
			quote = c
			inWord = true
		case c == '#':
			i = len(line)
		case c == ' ' || c == '\t':
			if inWord {
				out = append(out, w.String())
				w.Reset()
				inWord = false
			}
		default:
			w.WriteByte(c)
			inWord = true
		}
	}
	if quote != 0 {
		return nil, fmt.Errorf("unterminated quote: %q", line)
	}
	if inWord {
		out = append(out, w.String())
	}
	return out, nil
}

// config is what the test reads from haproxy.cfg.
type config struct {
	acls       map[string]string // ACL name to its req.body regex
	useServer  map[string]string // server name to the ACL that selects it
	servers    []string          // server names, in order
	aclInOrder []string
}

// readConfig reads haproxy.cfg's ACLs, use-server rules and servers.
func readConfig(t *testing.T) config {
	t.Helper()
	f, err := os.Open("haproxy.cfg")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	c := config{acls: map[string]string{}, useServer: map[string]string{}}
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		w, err := words(sc.Text())
		if err != nil {
			t.Fatalf("haproxy.cfg:%d: %v", n, err)
		}
		switch {
		case len(w) == 0:
		case w[0] == "acl" && len(w) >= 3 && w[2] == "req.body":
			if len(w) != 6 || w[3] != "-m" || w[4] != "reg" {
				t.Fatalf("haproxy.cfg:%d: want acl NAME req.body -m reg REGEX, got %q", n, w)
			}
			c.acls[w[1]] = w[5]
			c.aclInOrder = append(c.aclInOrder, w[1])
		case w[0] == "use-server":
			if len(w) != 4 || w[2] != "if" {
				t.Fatalf("haproxy.cfg:%d: want use-server NAME if ACL, got %q", n, w)
			}
			c.useServer[w[1]] = w[3]
		case w[0] == "server":
			c.servers = append(c.servers, w[1])
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return c
}

func TestWords(t *testing.T) {
	for _, tc := range []struct {
		line string
		want []string
		err  bool
	}{
		{line: "\tacl a req.body -m reg x  # comment", want: []string{"acl", "a", "req.body", "-m", "reg", "x"}},
		{line: `a "b c" 'd "e' f\ g \# \\ \s`, want: []string{"a", "b c", `d "e`, "f g", "#", `\`, `\s`}},
		{line: `"['\"]n1\."`, want: []string{`['"]n1\.`}},
		{line: `'\'`, want: []string{`\`}},
		{line: `"^x$"`, err: true},
		{line: `"open`, err: true},
	} {
		got, err := words(tc.line)
		if tc.err {
			if err == nil {
				t.Errorf("words(%q) = %q, want an error", tc.line, got)
			}
			continue
		}
		if err != nil || strings.Join(got, "|") != strings.Join(tc.want, "|") {
			t.Errorf("words(%q) = %q, %v; want %q", tc.line, got, err, tc.want)
		}
	}
}

// TestRouting checks each node's ACL against request bodies as clients
// send them: it must match the node's own sid in the <body> start tag,
// with either quote, and nothing else — another node's sid, a sid inside
// a payload (IBB, Jingle), an attribute that only ends in sid.
func TestRouting(t *testing.T) {
	c := readConfig(t)
	if len(c.servers) < 2 {
		t.Fatalf("servers %q: want a cluster", c.servers)
	}
	for _, node := range c.servers {
		acl := c.useServer[node]
		if acl != "sid_"+node || c.acls[acl] == "" {
			t.Errorf("server %s: selected by ACL %q with regex %q; want sid_%s, matching its sid", node, acl, c.acls[acl], node)
		}
	}
	if len(c.acls) != len(c.servers) {
		t.Errorf("ACLs %q for servers %q: want one per server", c.aclInOrder, c.servers)
	}
	// HAProxy's regexes are PCRE; these use nothing Go's RE2 reads
	// otherwise.
	const (
		ns  = `xmlns='http://jabber.org/protocol/httpbind'`
		ibb = `<iq xmlns='jabber:client' type='set' id='i1' to='bob@example.org/r'><open xmlns='http://jabber.org/protocol/ibb' block-size='4096' sid='%s.x1'/></iq>`
	)
	for _, node := range c.servers {
		re, err := regexp.Compile(c.acls["sid_"+node])
		if err != nil {
			t.Fatalf("sid_%s: %v", node, err)
		}
		other := "zz"
		for _, s := range c.servers {
			if s != node {
				other = s
				break
			}
		}
		for _, tc := range []struct {
			name  string
			body  string
			match bool
		}{
			{"single quotes", `<body rid='1001' sid='` + node + `.ZlR3Aq' ` + ns + `/>`, true},
			{"double quotes", `<body xmlns="http://jabber.org/protocol/httpbind" rid="1001" sid="` + node + `.ZlR3Aq"/>`, true},
			{"first attribute", `<body sid='` + node + `.a' rid='2'/>`, true},
			{"with a payload", `<body rid='7' sid='` + node + `.a' ` + ns + `><message xmlns='jabber:client' to='b@example.org'><body>hi</body></message></body>`, true},
			{"XML declaration", "<?xml version='1.0' encoding='UTF-8'?>\n<body rid='3' sid='" + node + ".a'/>", true},
			{"leading white space", "\r\n <body rid='3' sid='" + node + ".a'/>", true},
			{"new lines between attributes", "<body\n  rid='3'\n  sid='" + node + ".a'/>", true},
			{"blanks around =", `<body rid='3' sid = "` + node + `.a"/>`, true},
			{"another node", `<body rid='1' sid='` + other + `.a' ` + ns + `/>`, false},
			{"a longer name", `<body rid='1' sid='` + node + `0.a'/>`, false},
			{"no dot", `<body rid='1' sid='` + node + `a'/>`, false},
			{"no sid: creation", `<body content='text/xml; charset=utf-8' hold='1' rid='1' to='example.org' ver='1.6' wait='60' ` + ns + `/>`, false},
			{"IBB sid in the payload", `<body rid='8' sid='` + other + `.a' ` + ns + `>` + fmt.Sprintf(ibb, node) + `</body>`, false},
			{"IBB sid in a body without sid", `<body rid='8' ` + ns + `>` + fmt.Sprintf(ibb, node) + `</body>`, false},
			{"sid in a message's body text", `<body rid='8' sid='` + other + `.a'><message xmlns='jabber:client'><body>sid='` + node + `.a'</body></message></body>`, false},
			{"an attribute ending in sid", `<body rid='1' data-sid='` + node + `.a' sid='` + other + `.b'/>`, false},
			{"another root element", `<iq sid='` + node + `.a'/>`, false},
			{"> in a value before sid", `<body route='xmpp:a>b' sid='` + node + `.a'/>`, false},
		} {
			if got := re.MatchString(tc.body); got != tc.match {
				t.Errorf("sid_%s on %s: matched %v, want %v: %s", node, tc.name, got, tc.match, tc.body)
			}
		}
	}
}

// TestRoutingNeedsBody checks that the frontend buffers the body before a
// server is chosen: without it, req.body is empty when use-server runs.
func TestRoutingNeedsBody(t *testing.T) {
	data, err := os.ReadFile("haproxy.cfg")
	if err != nil {
		t.Fatal(err)
	}
	var errs []error
	for _, want := range []string{"option http-buffer-request", "balance leastconn", "option redispatch", "retry-on conn-failure empty-response 503", "agent-check"} {
		if !strings.Contains(string(data), want) {
			errs = append(errs, fmt.Errorf("haproxy.cfg lacks %q", want))
		}
	}
	if err := errors.Join(errs...); err != nil {
		t.Error(err)
	}
}

// TestReadme checks that README.md's "Several nodes" shows this file as
// it is.
func TestReadme(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := os.ReadFile("haproxy.cfg")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(readme), "\n## Several nodes\n")
	if !ok {
		t.Fatal(`README.md has no "## Several nodes" section`)
	}
	_, block, ok := strings.Cut(section, "\n```haproxy\n")
	if !ok {
		t.Fatal(`README.md's "Several nodes" has no haproxy block`)
	}
	block, _, _ = strings.Cut(block, "```")
	if block != string(cfg) {
		t.Errorf("README.md's haproxy block differs from haproxy.cfg; copy the file into it")
	}
}
