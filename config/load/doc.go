// Package load reads a boshd configuration (a [config.Config]) from the
// command line, the environment and a YAML file, as the boshd command does.
//
// [Config] builds it from four sources. Later sources override earlier
// ones, key by key:
//
//  1. the built-in defaults of [config.Default];
//  2. a YAML file, named by the --config flag or the BOSHD_CONFIG
//     environment variable (no file is read when neither is set);
//  3. environment variables BOSHD_<KEY>, such as BOSHD_LISTEN or
//     BOSHD_MAX_WAIT;
//  4. command-line flags --<key-with-dashes>, such as --listen or
//     --max-wait.
//
// The keys, their flags, variables, defaults and help texts all come from
// [config.Settings]. A map or list set by a source replaces the one of an
// earlier source whole: --upstream example.org=127.0.0.1:5222 serves
// example.org only, not also the default localhost.
//
// The YAML file uses the keys as they are (max_wait: 30s); a key the file
// does not know is an error naming that key. Durations are written in Go
// syntax ("30s", "1m30s") or as a whole number of seconds (30). In the
// environment, BOSHD_UPSTREAMS is a comma-separated list of
// domain=host:port pairs, and BOSHD_ROUTE_ALLOW, BOSHD_CORS_ORIGINS and
// BOSHD_TRUSTED_PROXIES comma-separated lists. On the command line,
// --upstream domain=host:port, --route-allow, --cors-origins and
// --trusted-proxies may be repeated.
//
// The sources are merged with github.com/spf13/viper and the command line is
// parsed with github.com/spf13/pflag; a program that embeds boshd's handler
// and builds its Config itself needs neither, and does not import this
// package. Config uses its own viper instance and reads the environment
// from its argument, never from the process, so that it has no global
// state and can be called from parallel tests.
package load
