package load_test

import (
	"errors"
	"fmt"
	"os"

	"github.com/boshd/boshd/config/load"
)

func ExampleConfig() {
	// A real program passes os.Args[1:] and os.Environ().
	args := []string{"--upstream", "example.org=127.0.0.1:5222", "--upstream", "example.net=", "--max-wait", "30s"}
	environ := []string{"BOSHD_LISTEN=0.0.0.0:5280", "BOSHD_MAX_WAIT=45s", "HOME=/root"}

	cfg, err := load.Config(args, environ)
	switch {
	case errors.Is(err, load.ErrHelp):
		load.Usage(os.Stdout)
		return // exit 0
	case errors.Is(err, load.ErrVersion):
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
