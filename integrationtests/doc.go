// Package integrationtests holds the tests that run the server as real
// processes: the multi-node test starts a three-node NATS cluster, two
// cores and two gateways (`jsp` binaries built into a temporary
// directory) and PostgreSQL on loopback, and kills them with SIGKILL while
// clients exchange messages. The package has no code of its own; its
// tests run with `make test` (`go test ./...`) and are skipped with
// -short.
package integrationtests
