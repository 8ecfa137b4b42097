// Package config holds the configuration of a boshd server: what it
// listens on, which XMPP servers it connects BOSH clients to and how, and the
// limits it puts on BOSH sessions.
//
// A [Config] is a plain struct. A program that embeds boshd's handler
// builds one from [Default], changes the fields it needs and passes it to
// bosh.NewHandler; [Config.Validate] checks it, each problem naming its key
// and the bad value, for example:
//
//	config: max_wait: must be between 1s and 1h, got "0s"
//
// [Settings] is the one list of the configuration keys: each [Setting]
// gives a key's name, default, help text, whether a reload applies it,
// and the rule Validate checks. Everything else is derived from it: the
// defaults, the command-line flags and BOSHD_* environment variables and
// --help of the boshd command, boshd.example.yaml, and the keys that
// bosh.Handler.Reload leaves for a restart.
//
// Reading a Config from a YAML file, the environment and the command line
// is the job of package github.com/boshd/boshd/config/load, which uses
// viper and pflag. This package imports neither, so that a program that
// embeds the handler does not depend on them.
package config
