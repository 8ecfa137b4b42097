package gateway

// Drain marks the server as draining (docs/design/004-cluster.md,
// "Drain"): from then on Draining reports true, Ready fails, and the
// bindings refuse new sessions with 503 and Retry-After, before anything
// is dialled or counted, so that a load balancer sends them to another
// node; every session already open goes on until it ends. It reports
// whether the server was not draining already. Undrain undoes it.
func (g *Gateway) Drain() bool { return g.draining.CompareAndSwap(false, true) }

// Undrain ends draining: new sessions are admitted again, and Ready no
// longer fails for it. It reports whether the server was draining.
func (g *Gateway) Undrain() bool { return g.draining.CompareAndSwap(true, false) }

// Draining reports whether Drain was called and not undone since.
// Stopping is a separate state: a server that stops while draining is
// both.
func (g *Gateway) Draining() bool { return g.draining.Load() }
