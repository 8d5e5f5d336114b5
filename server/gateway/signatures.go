package gateway

import (
	"context"
	"fmt"

	"github.com/jetstreamproto/jsp/jsperr"
	"github.com/jetstreamproto/jsp/security/msgsig"
	"github.com/jetstreamproto/jsp/server/services"
	"github.com/jetstreamproto/jsp/server/services/keys"
	"github.com/jetstreamproto/jsp/session"
	"github.com/jetstreamproto/jsp/wire"
)

// Signed envelopes on ingress (JSP §4.3). A PUBLISH, COMMAND or MESSAGE
// that carries a signature is checked before anything else handles it:
//
//	jsp-signer, ts, nonce present   else SIGNATURE_MALFORMED
//	jsp-signer = session's device   else SIGNER_MISMATCH (a session may only
//	                                     send what its own device signed)
//	ts within Signatures.MaxSkew    else SIGNATURE_STALE
//	device registered, active       else SIGNER_UNKNOWN / SIGNER_REVOKED
//	Ed25519 over the signing bytes  else SIGNATURE_INVALID
//	nonce not seen from the device  else SIGNATURE_REPLAYED
//
// A refused message is answered with ERROR {code, ref = its id} and the
// session goes on; the refusal is logged through the sampled refusal log.
// An accepted envelope travels on unchanged: the gateway sets only sender
// and seq, which the signature does not cover, and in bus mode the stored
// message is the whole envelope (storedMessage), so replays from storage
// carry signature, nonce and timestamp and stay verifiable.
//
// The replay memory (msgsig.Guard) is per gateway: a device's sessions on
// one gateway share it. Across gateways, a replay would need a session
// authenticated as the same device (SIGNER_MISMATCH otherwise), that is its
// key, and a PUBLISH replayed there is still de-duplicated by its id at
// commit (JSP §4.4).

// newSignatureGuard builds the gateway's replay memory from cfg.
func newSignatureGuard(cfg *Config) (*msgsig.Guard, error) {
	sc := cfg.Signatures
	if sc.Now == nil {
		sc.Now = cfg.Now
	}
	g, err := msgsig.NewGuard(sc)
	if err != nil {
		return nil, fmt.Errorf("gateway: signatures: %w", err)
	}
	return g, nil
}

// checkSigned verifies a signed envelope that arrived in in; it returns
// false, after refusing the message, when the envelope may not go on.
// Unsigned envelopes pass: signatures are optional (JSP §4.3).
func (h *host) checkSigned(ctx context.Context, in session.Incoming) bool {
	env := in.Envelope
	if env == nil || len(env.Signature) == 0 {
		return true
	}
	err := h.verifySigned(ctx, env)
	if err == nil {
		return true
	}
	if jsperr.CodeOf(err) == jsperr.Internal {
		h.log.Warn("gateway: signed message not verified", "type", in.Type.String(), "err", err)
		err = jsperr.New(jsperr.Internal, "signature not verified")
	} else {
		h.g.refusalLog.log("gateway: signed message refused", "type", in.Type.String(), "code", jsperr.CodeOf(err).String(),
			"reason", err.Error(), "session", h.id, "user", h.user, "device", h.auth.Device, "remote", h.ident.RemoteAddr)
	}
	h.refuse(env.ID, err)
	return false
}

func (h *host) verifySigned(ctx context.Context, env *wire.Envelope) error {
	id, err := msgsig.SignerOf(env)
	if err != nil {
		return err
	}
	if h.auth.Device == "" || id.String() != h.auth.Device {
		dev := h.auth.Device
		if dev == "" {
			dev = "none"
		}
		return jsperr.Newf(jsperr.SignerMismatch, "envelope signed by device %s; the session's device is %s", id, dev)
	}
	_, err = h.g.sigGuard.Check(ctx, h.g.cfg.Devices, env)
	return err
}

// registerKeys adds the keys service, which publishes device keys to
// verifying clients, when the gateway has a device registry.
func registerKeys(cfg *Config, r *services.Registry) error {
	if cfg.Devices == nil {
		return nil
	}
	svc, err := keys.New(cfg.Devices)
	if err != nil {
		return err
	}
	return svc.Register(r)
}
