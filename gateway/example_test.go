package gateway_test

import (
	"errors"
	"fmt"
	"net/http/httptest"
	"strings"

	"github.com/boshd/boshd/config"
	"github.com/boshd/boshd/gateway"
)

// One Gateway as a binding uses it: where a client's stream goes, the
// session slot its address takes, and the Origin of a WebSocket upgrade.
func Example() {
	cfg := config.Default()
	cfg.Upstreams = map[string]string{"example.org": "127.0.0.1:5222"}
	cfg.MaxSessionsPerIP = 1
	cfg.CORSOrigins = []string{"https://app.example.com"}
	g, err := gateway.New(cfg, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer g.Close()

	target, err := g.Target("example.org", "")
	fmt.Println(target.Domain, target.Addr, err)
	_, err = g.Target("elsewhere.example", "")
	var te *gateway.TargetError
	if errors.As(err, &te) {
		fmt.Println(te.Condition)
	}

	r := httptest.NewRequest("GET", "http://chat.example.org/xmpp-websocket", nil)
	r.RemoteAddr = "192.0.2.7:40000"
	ip, _ := g.ClientIP(r)
	release, err := g.Acquire(ip)
	fmt.Println(ip, err)
	_, err = g.Acquire(ip)
	fmt.Println(err)
	release()

	for _, origin := range []string{"https://app.example.com", "http://chat.example.org", "https://evil.example"} {
		r.Header.Set("Origin", origin)
		fmt.Println(origin, g.AllowOrigin(r))
	}

	hm := httptest.NewRecorder()
	gateway.HostMeta(
		gateway.Link{Rel: gateway.RelBOSH, Href: "https://chat.example.org/http-bind"},
		gateway.Link{Rel: gateway.RelWebSocket, Href: "wss://chat.example.org/xmpp-websocket"},
	).ServeHTTP(hm, httptest.NewRequest("GET", "https://example.org"+gateway.HostMetaJSONPath, nil))
	fmt.Println(strings.Count(hm.Body.String(), `"rel"`), "links")
	// Output:
	// example.org 127.0.0.1:5222 <nil>
	// host-unknown
	// 192.0.2.7 <nil>
	// max_sessions_per_ip (1) reached
	// https://app.example.com true
	// http://chat.example.org true
	// https://evil.example false
	// 2 links
}
