// Package sdnotify speaks systemd's notify protocol (sd_notify(3)): one
// datagram of "NAME=value" lines to the Unix socket named by the
// environment variable NOTIFY_SOCKET, telling a unit of Type=notify that
// the service is ready, reloading, stopping, or that another process is
// now its main one.
//
// A process started without NOTIFY_SOCKET gets a nil *Notifier, whose
// methods do nothing: the caller never checks whether systemd is there.
package sdnotify
