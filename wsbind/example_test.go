package wsbind_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"

	"github.com/boshd/boshd/bosh"
	"github.com/boshd/boshd/config"
	"github.com/boshd/boshd/gateway"
	"github.com/boshd/boshd/wsbind"
)

// A Go program serves BOSH and XMPP over WebSocket side by side, from one
// gateway: one count of sessions against max_sessions, one set of
// upstreams, one poller for idle sockets, one set of metrics.
func Example() {
	cfg := config.Default()
	cfg.Upstreams = map[string]string{"example.org": "127.0.0.1:5222"}
	g, err := gateway.New(cfg, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer g.Close()
	ws := wsbind.NewHandler(g)
	mux := http.NewServeMux()
	mux.Handle(cfg.Path, bosh.NewHandlerWith(g))
	mux.Handle(cfg.WebSocketPath, ws)
	srv := httptest.NewServer(mux)
	defer srv.Close()

	// A request that is not a WebSocket handshake is refused before
	// anything is dialled.
	resp, err := http.Get(srv.URL + cfg.WebSocketPath)
	if err != nil {
		fmt.Println(err)
		return
	}
	resp.Body.Close()
	fmt.Println(cfg.WebSocketPath, resp.Status)

	// At the end, every session is told (close code 1012) before the
	// gateway closes.
	if err := ws.Shutdown(context.Background()); err != nil {
		fmt.Println(err)
	}
	fmt.Println(ws.Stats().Live, "sessions")
	// Output:
	// /xmpp-websocket 400 Bad Request
	// 0 sessions
}
