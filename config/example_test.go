package config_test

import (
	"errors"
	"fmt"
	"os"

	"github.com/boshd/boshd/config"

	"github.com/spf13/pflag"
)

func ExampleLoad() {
	// A real program passes os.Args[1:] and os.Environ().
	args := []string{"--upstream", "example.org=127.0.0.1:5222", "--upstream", "example.net=", "--max-wait", "30s"}
	environ := []string{"BOSHD_LISTEN=0.0.0.0:5280", "BOSHD_MAX_WAIT=45s", "HOME=/root"}

	cfg, err := config.Load(args, environ, os.Stderr)
	switch {
	case errors.Is(err, pflag.ErrHelp):
		return // the usage has been printed: exit 0
	case errors.Is(err, config.ErrVersion):
		fmt.Println("boshd (devel)")
		return
	case err != nil:
		fmt.Println(err)
		return
	}
	fmt.Println("listen:", cfg.Listen)
	fmt.Println("upstreams:", cfg.Upstreams)
	fmt.Println("max_wait:", cfg.MaxWait)
	fmt.Println("log level:", cfg.SlogLevel())
	// Output:
	// listen: 0.0.0.0:5280
	// upstreams: map[example.net: example.org:127.0.0.1:5222]
	// max_wait: 30s
	// log level: INFO
}

func ExampleConfig_Validate() {
	cfg := config.Default()
	cfg.MaxWait = 0
	cfg.LogLevel = "loud"
	fmt.Println(cfg.Validate())
	// Output:
	// config: max_wait: must be between 1s and 1h, got "0s"
	// config: log_level: must be debug, info, warn or error, got "loud"
}
