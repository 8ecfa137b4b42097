// Package handoff is the mechanics of a live upgrade between two boshd
// processes (docs/design/005-live-upgrade.md): the old one, the parent,
// starts the new binary as a child that inherits its listening sockets
// and one end of a socket pair; the child builds everything on the
// inherited sockets and says it is ready, or why it failed; the parent
// then stops accepting, and from then on tells the child, over the
// pair, how many sessions it still serves and when it will exit.
//
// The parent's side is Start and Child, and Keep for the copies of its
// sockets it keeps until it exits; the child's is FromEnv and Parent. What is served on the sockets, and when the parent exits, is
// the caller's business (cmd/boshd).
//
// What happens when a side fails:
//   - The child fails before it is ready (its configuration refused, a
//     socket it cannot open, a crash): Child.WaitReady kills it if it
//     still runs, reaps it and returns why: the reason the child sent
//     (Parent.Fail), else its exit status. Nothing was handed over.
//   - The child is not ready within the bound: the same, killed.
//   - The child dies after it was ready: the parent has stopped
//     accepting, but a parent that kept copies of its sockets (Keep)
//     takes them back (Spares.Take) and accepts again; connections made
//     meanwhile waited in the socket's queue. The parent keeps serving
//     the sessions it held; the child's are lost with it.
//   - The parent dies: the child reads the end of the pair
//     (Parent.Watch returns) and stops forwarding to it.
package handoff
