package bosh

import (
	"flag"
	"net/http"
	"net/http/httptest"

	"github.com/boshd/boshd/config"
)

// parkAfter is park_after in the tests: they run with every held request
// parked at once (0, the default here), and again with -park-after=-1s,
// which turns parking off, so both ways of holding a request pass the
// same tests (scripts/test runs both).
var parkAfter = flag.Duration("park-after", 0, "park_after for the tests; negative turns parking off")

// setParking sets the parking keys of cfg from -park-after.
func setParking(cfg *config.Config) {
	cfg.ParkHeld = *parkAfter >= 0
	cfg.ParkAfter = max(*parkAfter, 0)
}

// newParkingServer starts h as boshd serves it: through a Listener, so
// held requests may be parked.
func newParkingServer(h http.Handler) *httptest.Server {
	hs := httptest.NewUnstartedServer(h)
	ln := NewListener(hs.Listener)
	hs.Listener = ln
	hs.Config.ConnContext = ln.ConnContext
	hs.Start()
	return hs
}
