package natsbus

import (
	"slices"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/jetstreamproto/jsp/server/bus"
)

// jsStreamSubjects are the JetStream API and protocol subjects a client
// needs to create, write, read and consume stream (and, for a KV bucket,
// its stream KV_<bucket>): stream info and create/update, consumer
// create/info/pull/delete, direct and message get, acks and flow-control
// replies. Names are literal tokens, so one role cannot reach another
// role's streams.
func jsStreamSubjects(stream string) []string {
	return []string{
		"$JS.API.STREAM.INFO." + stream,
		"$JS.API.STREAM.CREATE." + stream,
		"$JS.API.STREAM.UPDATE." + stream,
		"$JS.API.STREAM.MSG.GET." + stream,
		"$JS.API.DIRECT.GET." + stream,
		"$JS.API.DIRECT.GET." + stream + ".>",
		"$JS.API.CONSUMER.CREATE." + stream,
		"$JS.API.CONSUMER.CREATE." + stream + ".>",
		"$JS.API.CONSUMER.DURABLE.CREATE." + stream + ".>",
		"$JS.API.CONSUMER.INFO." + stream + ".>",
		"$JS.API.CONSUMER.MSG.NEXT." + stream + ".>",
		"$JS.API.CONSUMER.DELETE." + stream + ".>",
		"$JS.ACK." + stream + ".>",
		"$JS.FC." + stream + ".>",
	}
}

// ServerPermissions renders role permissions as nats-server user
// permissions: the bus subjects as given, plus the JetStream API subjects
// of the role's streams and buckets and the publish subjects of its
// buckets ($KV.<bucket>.>). Everything else is denied.
func ServerPermissions(p bus.Permissions) *server.Permissions {
	pub := slices.Clone(p.Publish.Allow)
	pub = append(pub, "$JS.API.INFO")
	for _, s := range p.Streams {
		pub = append(pub, jsStreamSubjects(s)...)
	}
	for _, b := range p.Buckets {
		pub = append(pub, jsStreamSubjects("KV_"+b)...)
		pub = append(pub, "$KV."+b+".>")
	}
	sp := &server.Permissions{
		Publish:   &server.SubjectPermission{Allow: pub, Deny: slices.Clone(p.Publish.Deny)},
		Subscribe: &server.SubjectPermission{Allow: slices.Clone(p.Subscribe.Allow), Deny: slices.Clone(p.Subscribe.Deny)},
	}
	if p.AllowResponses {
		// One reply per request received, within the server's default
		// window.
		sp.Response = &server.ResponsePermission{MaxMsgs: 1}
	}
	return sp
}

// UserFor returns a nats-server user with the role permissions p. With
// ServerConfig.VerifyAndMap, name is the identity from the client
// certificate and password is empty.
func UserFor(name, password string, p bus.Permissions) *server.User {
	return &server.User{Username: name, Password: password, Permissions: ServerPermissions(p)}
}

// ClientFor returns a client configuration that logs in as a role user:
// its inbox prefix is the one the permissions allow.
func ClientFor(name, password string, p bus.Permissions) ClientConfig {
	return ClientConfig{Name: name, User: name, Password: password, InboxPrefix: p.Inbox}
}
