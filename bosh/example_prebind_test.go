package bosh_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/boshd/boshd/bosh"
	"github.com/boshd/boshd/config"
)

// A Go web application that embeds the handler serves its own prebind_url:
// it knows its user, logs them in through Prebind (no HTTP hop, no
// token), and gives the browser what Converse.js's prebind_url and
// Strophe.js's attach() take. Here the user's domain is not one the
// handler serves, so Prebind refuses before dialling anything, naming the
// field at fault.
func ExampleHandler_Prebind() {
	cfg := config.Default()
	cfg.Upstreams = map[string]string{"example.org": "127.0.0.1:5222"}
	h, err := bosh.NewHandler(cfg, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer h.Shutdown(context.Background())

	// The application's own prebind_url, behind its own login.
	prebindURL := func(w http.ResponseWriter, r *http.Request) {
		jid, password := "alice@example.net", "the password the application keeps" // from the application's session
		ip, _ := h.Gateway().ClientIP(r)                                           // the browser's, behind trusted_proxies
		s, err := h.Prebind(r.Context(), bosh.PrebindRequest{JID: jid, Resource: "web", Password: password, ClientIP: ip})
		if err != nil {
			var pe *bosh.PrebindError
			if errors.As(err, &pe) {
				http.Error(w, pe.Msg, pe.Status)
			}
			return
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]string{"jid": s.JID, "sid": s.SID, "rid": fmt.Sprint(s.RID)})
	}
	_ = prebindURL // mounted on the application's mux

	_, err = h.Prebind(context.Background(), bosh.PrebindRequest{JID: "alice@example.net", Password: "secret"})
	var pe *bosh.PrebindError
	if errors.As(err, &pe) {
		fmt.Println(pe.Status, pe.Field, pe.Msg)
	}
	// Output: 400 jid domain "example.net" is not served here
}
