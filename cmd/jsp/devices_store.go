package main

import (
	"errors"

	"github.com/jetstreamproto/jsp/server/auth"
	"github.com/jetstreamproto/jsp/server/gateway"
)

// devicesStore is the --devices value that keeps the device registry in
// the database, shared by every gateway of the cluster and managed with
// `jsp admin device`.
const devicesStore = "store"

// storeAuth sets cfg's authenticator, token refresh and device registry to
// ones over the node's database.
func storeAuth(n nodeFlags, nd *node, cfg *gateway.Config) error {
	if nd.store == nil {
		return errors.New("--devices store needs a database: give the gateway --db")
	}
	reg, err := auth.NewStoreDevices(nd.store)
	if err != nil {
		return err
	}
	a, err := n.authWith(reg)
	if err != nil {
		return err
	}
	cfg.Authenticate, cfg.Refresh, cfg.Devices = a.Authenticate, a.Refresh, reg
	return nil
}
