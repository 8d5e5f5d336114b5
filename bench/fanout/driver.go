package main

import (
	"fmt"
	"os"

	"github.com/jetstreamproto/jsp/bench/loadgen"
)

func driverMain(system string, args []string) error {
	if system != "jsp" && system != "jsp-shm" && system != "jsp-base" && system != "jsp-live" && system != "jsp-live-base" {
		return fmt.Errorf("driver %q: this binary drives jsp; benchpeer drives centrifugo and nats", system)
	}
	return loadgen.DriverMain(system, args, os.Stdout, func(f *loadgen.DriverFlags) (loadgen.System, error) {
		return jspSystem{url: f.Addr}, nil
	})
}
